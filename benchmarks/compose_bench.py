"""Micro-benchmark: compose, queue and record acknowledgements, as ingest does for a new case.

    .venv/bin/python -m benchmarks.compose_bench [--n 2000] [--repeat 3]

Per mail, alternating Chinese and English (text + HTML bodies rendered once from the built-in
ack-default templates, so rendering is not measured): `compose_ack`, then `outbox.queue_mail`
and `casework.record_outgoing` with the outbox row's bytes, as `pipeline._acknowledge` calls
them, against a session and a blob store that only collect (no database, no disk). Prints
mails/s for composing alone and for the three together, best of `--repeat` runs.

To measure another revision (e.g. the one before a change), run this file against a copy of it:
    git archive <rev> processor templates | tar -x -C /tmp/base && cp -r benchmarks /tmp/base
    cd /tmp/base && /work/main/.venv/bin/python -m benchmarks.compose_bench
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from processor import casework
from processor.compose import ack_context, compose_ack, make_message_id
from processor.db.models import Case
from processor.mail import parse_message
from processor.mail.model import ParsedMessage
from processor.outbox import queue_mail
from processor.render import RenderedBody, TemplateRenderer, format_when

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
DESK = "complaints@desk.example.com"
SUBJECTS = {
    "zh": "宽带又断网了，已经三天无法上网，客服电话一直打不通，请尽快派人上门维修并给予赔偿",
    "en": "Broadband down for three days again, nobody answers the phone, I want a refund",
}
SENDERS = {"zh": "王小明 <wang.xiaoming@example.cn>", "en": "Alice Wang <alice@example.org>"}


class _Collecting:
    """What queue_mail and record_outgoing need of a session and a blob store: rows are
    collected, nothing is looked up (`get` finds nothing), blobs are only hashed."""

    no_autoflush = contextlib.nullcontext()

    def __init__(self) -> None:
        self.rows: list[Any] = []
        self.info: dict[str, Any] = {}  # no batch's deferred rows (processor.db.deferred)

    def get(self, *_: Any) -> None:
        return None

    def add(self, row: Any) -> None:
        self.rows.append(row)

    def put(self, raw: bytes) -> str:
        return hashlib.sha256(raw).hexdigest()


def _original(language: str, index: int) -> ParsedMessage:
    raw = (f"From: {SENDERS[language]}\r\nTo: Complaints <{DESK}>\r\n"
           f"Subject: {SUBJECTS[language]}\r\nMessage-ID: <m{index}@example.org>\r\n"
           f"References: <root{index}@example.org>\r\n"
           "Date: Sat, 28 Nov 2026 16:00:00 +0800\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n").encode()
    return parse_message(raw)


def _bodies(renderer: TemplateRenderer) -> dict[str, RenderedBody]:
    bodies = {}
    for language in ("zh", "en"):
        context = ack_context(case_ref="C-000123", subject=SUBJECTS[language],
                              category_label="Network" if language == "en" else "网络故障",
                              first_answer_by=format_when(NOW, language), sla_hours=24,
                              missing=["account_number", "expected_resolution"])
        bodies[language] = renderer.render_pair("ack-default", language, context)
    return bodies


def _timed(work: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="acknowledgements per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    args = parser.parse_args()
    bodies = _bodies(TemplateRenderer.with_override(None))
    originals = [_original(("zh", "en")[i % 2], i) for i in range(args.n)]
    message_ids = [make_message_id("desk.example.com", "desk-bench") for _ in originals]
    case = Case(reference="C-000123", language="zh", complainant_address="a@example.org")

    def compose(index: int) -> Any:
        original = originals[index]
        assert original.from_ is not None
        return compose_ack(case_ref=f"C-{index:06d}", tag_format="[{ref}]", original=original,
                           from_address=DESK, to=original.from_,
                           body=bodies[("zh", "en")[index % 2]], message_id=message_ids[index],
                           loop_header_name="X-Complaints-Loop", loop_header_value="desk-bench",
                           date=NOW)

    def compose_only() -> None:
        for index in range(args.n):
            compose(index)

    def compose_queue_record() -> None:
        sink = _Collecting()
        for index in range(args.n):
            message = compose(index)
            queued = queue_mail(sink, message, kind="ack",  # type: ignore[arg-type]
                                recipients=[originals[index].from_.address],  # type: ignore[union-attr]
                                now=NOW, case=case)
            casework.record_outgoing(sink, sink, case, message, NOW, queued.raw)  # type: ignore[arg-type]

    compose_only()  # warm-up: imports, regex and codec caches
    alone = _timed(compose_only, args.repeat)
    together = _timed(compose_queue_record, args.repeat)
    size = len(compose(0).as_bytes()) + len(compose(1).as_bytes())
    print(f"{args.n} acknowledgements (zh/en alternating, text+HTML, ~{size // 2} bytes each), "
          f"best of {args.repeat}:")
    print(f"  compose_ack alone:                      {args.n / alone:8.0f} mails/s "
          f"({alone / args.n * 1e6:.0f} us/mail)")
    print(f"  compose + queue_mail + record_outgoing: {args.n / together:8.0f} mails/s "
          f"({together / args.n * 1e6:.0f} us/mail)")


if __name__ == "__main__":
    main()
