"""Peak memory of one `complaints poll --once` that ingests a single mail with a large attachment.

The mail is generated, appended and dropped here; the raw mail (base64, about 1.37 times the
attachment) is over the default 25 MB size limit, so this run raises `max_message_bytes` the
way a desk that accepts such mail would. `measure_over_limit` does the opposite: a mail over
the limit, kept unparsed in the quarantine, which must not be held whole either.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.generate import big_attachment_mail
from benchmarks.ingest import Throughput, measure_poll
from benchmarks.services import Dovecot


def measure_big_attachment(dovecot: Dovecot, root: Path, megabytes: int) -> Throughput:
    user = dovecot.new_user("benchbig")
    try:
        raw = big_attachment_mail(megabytes)
        size = len(raw)
        dovecot.load(user, [raw])
        del raw
        root.mkdir(parents=True, exist_ok=True)
        result = measure_poll(dovecot, user, f"sqlite:///{root / 'desk.sqlite3'}", root,
                              f"{megabytes} MB attachment", 1,
                              max_message_bytes=max(2 * size, 25 * 1024 * 1024))
    finally:
        dovecot.drop_user(user)
    if "stored 1" not in result.detail:
        raise RuntimeError(f"the {megabytes} MB mail was not stored: {result.detail}")
    return result


def measure_over_limit(dovecot: Dovecot, root: Path, megabytes: int) -> Throughput:
    """One mail of about `megabytes` MB over `max_message_bytes`: quarantined unparsed."""
    user = dovecot.new_user("benchover")
    try:
        raw = big_attachment_mail(max(1, round(megabytes / 1.37)))
        size = len(raw)
        dovecot.load(user, [raw])
        del raw
        root.mkdir(parents=True, exist_ok=True)
        result = measure_poll(dovecot, user, f"sqlite:///{root / 'desk.sqlite3'}", root,
                              f"{megabytes} MB over the limit", 1,
                              max_message_bytes=min(size // 2, 25 * 1024 * 1024))
    finally:
        dovecot.drop_user(user)
    if "quarantined 1" not in result.detail:
        raise RuntimeError(f"the {megabytes} MB mail was not quarantined: {result.detail}")
    return result
