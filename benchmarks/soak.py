"""Memory of the service over a long stream of mail: `complaints run` idles on the INBOX while
mail arrives in groups, as a desk sees it all day, and its resident memory is read after each
group is answered.

The other memory figures are peaks of one `poll --once`; a service runs for weeks, so what
matters there is whether its memory keeps growing with the mail it has handled. Each group is
appended with one MULTIAPPEND and the next waits until every mail of it has been answered (the
SMTP sink's condition variable, no sleeping), so the desk files groups of the given size: large
enough to reach the worker processes, whose memory is counted with the service's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.desk import running_service
from benchmarks.generate import single_complaint
from benchmarks.proctree import resident_mib
from benchmarks.services import Dovecot

ANSWER_TIMEOUT_SECONDS = 120.0
# Above processor.prepare.MIN_PARALLEL_MAILS, so the groups are prepared by the workers.
GROUP_MAILS = 50
# Memory read after this share of the stream is the baseline: imports, caches and the worker
# processes are warm by then.
WARM_SHARE = 0.1


@dataclass(frozen=True)
class Soak:
    mails: int
    # (mails answered so far, resident MiB of the service and its worker processes), per group
    samples: list[tuple[int, float]]
    missing: int
    peak_rss_mib: float  # of the service process alone, over the whole run

    @property
    def warm(self) -> tuple[int, float]:
        wanted = max(GROUP_MAILS, int(self.mails * WARM_SHARE))
        return next((s for s in self.samples if s[0] >= wanted), self.samples[-1])

    @property
    def end(self) -> tuple[int, float]:
        return self.samples[-1]

    @property
    def growth_per_1000(self) -> float:
        """MiB the resident memory grew per 1,000 mails after the baseline."""
        (start, warm), (stop, end) = self.warm, self.end
        return (end - warm) * 1000 / (stop - start) if stop > start else float("nan")


def measure_soak(dovecot: Dovecot, root: Path, db_url: str, mails: int,
                 group: int = GROUP_MAILS) -> Soak:
    samples: list[tuple[int, float]] = []
    missing = answered = 0
    with running_service(dovecot, root, db_url, "benchsoak", "soak") as service, \
            dovecot.connect(service.user) as client:
        for first in range(0, mails, group):
            batch = [single_complaint(10_000_000 + index)
                     for index in range(first, min(first + group, mails))]
            client.multiappend("INBOX", [{"msg": raw, "flags": ()} for _, raw in batch])
            # One deadline for the group, so a desk that stops answering costs one timeout.
            deadline = time.monotonic() + ANSWER_TIMEOUT_SECONDS
            unanswered = sum(1 for mid, _ in batch if service.sink.wait_for(
                mid, max(0.0, deadline - time.monotonic())) is None)
            if unanswered == len(batch):  # not one answer: waiting on would take hours
                raise RuntimeError(f"`complaints run` answered none of the {len(batch)} mails "
                                   f"after the first {answered}; see {root / 'soak.err'}")
            missing += unanswered
            answered += len(batch)
            samples.append((answered, resident_mib(service.pid)))
    if not samples:
        raise RuntimeError("no mail was streamed")
    assert service.measured is not None
    return Soak(mails, samples, missing, service.measured.peak_rss_mib)


def describe_soak(soak: Soak) -> str:
    (warm_at, warm), (end_at, end) = soak.warm, soak.end
    peak = max(rss for _, rss in soak.samples)
    text = (f"{warm:.0f} MiB after {warm_at} mails, {end:.0f} MiB after {end_at} "
            f"(max {peak:.0f}; {soak.growth_per_1000:+.1f} MiB per 1,000 mails); "
            f"the service alone peaked at {soak.peak_rss_mib:.0f} MiB")
    if soak.missing:
        text += f"; {soak.missing} never answered"
    return text
