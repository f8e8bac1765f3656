"""Peak memory of one `complaints poll --once` that ingests a single mail with a large attachment.

The mail is generated, appended and dropped here; the raw mail (base64, about 1.37 times the
attachment) is over the default 25 MB size limit, so this run raises `max_message_bytes` the
way a desk that accepts such mail would. `measure_over_limit` does the opposite: a mail over
the limit, kept unparsed in the quarantine, which must not be held whole either.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from benchmarks.generate import big_attachment_mail
from benchmarks.ingest import Throughput, measure_poll
from benchmarks.services import Dovecot


def measure_big_attachment(dovecot: Dovecot, root: Path, megabytes: int) -> Throughput:
    return _one_big_mail(dovecot, root, megabytes, f"{megabytes} MB attachment", "stored 1",
                         lambda size: max(2 * size, 25 * 1024 * 1024))


def measure_over_limit(dovecot: Dovecot, root: Path, megabytes: int) -> Throughput:
    """One mail of about `megabytes` MB over `max_message_bytes`: quarantined unparsed."""
    return _one_big_mail(dovecot, root, max(1, round(megabytes / 1.37)),
                         f"{megabytes} MB over the limit", "quarantined 1",
                         lambda size: min(size // 2, 25 * 1024 * 1024))


def _one_big_mail(dovecot: Dovecot, root: Path, attachment_mb: int, label: str,
                  expected: str, limit: Callable[[int], int]) -> Throughput:
    """`poll --once` of one mail with an `attachment_mb` attachment, under the size limit
    `limit(size of the mail)`; `expected` is what its output must say it did."""
    user = dovecot.new_user("benchbig")
    try:
        raw = big_attachment_mail(attachment_mb)
        size = len(raw)
        dovecot.load(user, [raw])
        del raw
        root.mkdir(parents=True, exist_ok=True)
        result = measure_poll(dovecot, user, f"sqlite:///{root / 'desk.sqlite3'}", root, label,
                              1, max_message_bytes=limit(size))
    finally:
        dovecot.drop_user(user)
    if expected not in result.detail:
        raise RuntimeError(f"the {label} mail: expected {expected!r}, got {result.detail}")
    return result
