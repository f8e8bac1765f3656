"""Acknowledgement latency: `complaints run` idles on the INBOX; one mail at a time is appended,
and the clock stops when the SMTP sink accepts the acknowledgement that answers it.

Each mail waits for its answer before the next is appended (a condition variable in the sink,
no sleeping), so the figures are the latency of one complaint on a quiet desk, as a
complainant sees it, over IDLE on loopback.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.desk import running_service
from benchmarks.generate import single_complaint
from benchmarks.services import Dovecot

ANSWER_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Latency:
    samples: list[float]
    missing: int
    peak_rss_mib: float

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 95)


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile; NaN when there is no sample."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def measure_latency(dovecot: Dovecot, root: Path, db_url: str, mails: int) -> Latency:
    samples: list[float] = []
    missing = 0
    with running_service(dovecot, root, db_url, "benchlat", "run") as service, \
            dovecot.connect(service.user) as client:
        # A first mail, not counted: the service is up, idling, and its imports are warm.
        warm_id, warm = single_complaint(-1)
        client.append("INBOX", warm)
        if service.sink.wait_for(warm_id, ANSWER_TIMEOUT_SECONDS) is None:
            raise RuntimeError(f"`complaints run` never answered the first mail; see "
                               f"{root / 'run.err'}")
        for index in range(mails):
            mid, raw = single_complaint(index)
            appended = time.monotonic()
            client.append("INBOX", raw)
            accepted = service.sink.wait_for(mid, ANSWER_TIMEOUT_SECONDS)
            if accepted is None:
                missing += 1
            else:
                samples.append(accepted - appended)
    assert service.measured is not None
    return Latency(samples, missing, service.measured.peak_rss_mib)


def describe(latency: Latency) -> str:
    text = (f"p50 {latency.p50 * 1000:.0f} ms, p95 {latency.p95 * 1000:.0f} ms, "
            f"max {max(latency.samples, default=float('nan')) * 1000:.0f} ms "
            f"over {len(latency.samples)} mails")
    if latency.missing:
        text += f" ({latency.missing} never answered)"
    if latency.samples:
        text += f"; mean {statistics.fmean(latency.samples) * 1000:.0f} ms"
    return text


def idle_floor(dovecot: Dovecot, mails: int) -> list[float]:
    """How long Dovecot takes to tell an IDLE client about an APPEND, with nothing else.

    Dovecot batches mailbox change notifications (about half a second on this version), so
    this is the part of the latency the desk cannot remove."""
    user = dovecot.new_user("benchidle")
    samples = []
    try:
        with dovecot.connect(user) as watcher, dovecot.connect(user) as writer:
            watcher.select_folder("INBOX")
            for index in range(mails):
                watcher.idle()
                _mid, raw = single_complaint(index)
                appended = time.monotonic()
                writer.append("INBOX", raw)
                while not any(len(r) > 1 and r[1] == b"EXISTS"
                              for r in watcher.idle_check(timeout=ANSWER_TIMEOUT_SECONDS)):
                    pass
                samples.append(time.monotonic() - appended)
                watcher.idle_done()
    finally:
        dovecot.drop_user(user)
    return samples
