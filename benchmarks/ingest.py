"""Throughput runs: the floor scripts and `complaints poll --once` over the same loaded corpus.

Each run is a child process timed from spawn to exit (interpreter start included, for the floor
as for the desk) and reaped with wait4 for its own peak RSS.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.desk import Desk, Measured, run_child
from benchmarks.proctree import Helpers
from benchmarks.services import Dovecot


@dataclass(frozen=True)
class Throughput:
    label: str
    mails: int
    seconds: float
    peak_rss_mib: float
    inner_seconds: float | None = None  # the tool's own figure, without process start
    detail: str = ""
    cpu_seconds: float | None = None  # of the measured process itself (all its threads)
    helpers: Helpers | None = None  # its worker processes, if it started any

    @property
    def cpu(self) -> str:
        """Where the CPU time went, e.g. "CPU 13.2 s, and 12.1 s in 2 processes below it"."""
        if self.cpu_seconds is None:
            return ""
        below = "" if self.helpers is None else (
            f", and {self.helpers.cpu_seconds:.1f} s in {self.helpers.processes} "
            f"process{'es' if self.helpers.processes > 1 else ''} below it (peak RSS "
            f"{self.helpers.peak_rss_mib:.0f} MiB)")
        return f"CPU {self.cpu_seconds:.1f} s{below}"

    @property
    def rate(self) -> float:
        return self.mails / self.seconds if self.seconds else float("nan")


def measure_floor(dovecot: Dovecot, user: str, mode: str, root: Path) -> Throughput:
    argv = [sys.executable, "-m", "benchmarks.floor", "--host", dovecot.host, "--port",
            str(dovecot.port), "--user", user, "--mode", mode]
    measured = run_child(argv, _env(dovecot), root, f"floor-{mode}").check(f"floor {mode}")
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    return Throughput(f"floor {mode}", int(result["count"]), measured.seconds,
                      measured.peak_rss_mib, float(result["seconds"]),
                      cpu_seconds=measured.cpu_seconds, helpers=measured.helpers)


def measure_poll(dovecot: Dovecot, user: str, db_url: str, root: Path, label: str,
                 expected: int, *, acknowledge: bool = True, **processing: object) -> Throughput:
    desk = Desk(root, db_url, dovecot.port, user, dovecot.password,
                processing=dict(processing), acknowledge=acknowledge).write()
    desk.upgrade()
    measured, counts = desk.poll_once()
    if counts["fetched"] != expected:
        raise RuntimeError(f"{label}: poll --once fetched {counts['fetched']} of {expected} "
                           f"mails:\n{measured.stdout}\n{measured.stderr[-3000:]}")
    detail = (f"stored {counts['stored']}, duplicates {counts['duplicates']}, ignored "
              f"{counts['ignored']}, quarantined {counts['quarantined']}")
    return Throughput(label, counts["fetched"], measured.seconds, measured.peak_rss_mib,
                      counts["ms"] / 1000, detail, measured.cpu_seconds, measured.helpers)


def _env(dovecot: Dovecot) -> dict[str, str]:
    return dict(os.environ, DOVECOT_TEST_PASSWORD=dovecot.password)


__all__ = ["Measured", "Throughput", "measure_floor", "measure_poll"]
