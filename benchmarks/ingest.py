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
from benchmarks.services import Dovecot


@dataclass(frozen=True)
class Throughput:
    label: str
    mails: int
    seconds: float
    peak_rss_mib: float
    inner_seconds: float | None = None  # the tool's own figure, without process start
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.mails / self.seconds if self.seconds else float("nan")


def measure_floor(dovecot: Dovecot, user: str, mode: str, root: Path) -> Throughput:
    argv = [sys.executable, "-m", "benchmarks.floor", "--host", dovecot.host, "--port",
            str(dovecot.port), "--user", user, "--mode", mode]
    measured = run_child(argv, _env(dovecot), root, f"floor-{mode}").check(f"floor {mode}")
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    return Throughput(f"floor {mode}", int(result["count"]), measured.seconds,
                      measured.peak_rss_mib, float(result["seconds"]))


def measure_poll(dovecot: Dovecot, user: str, db_url: str, root: Path, label: str,
                 expected: int, **processing: object) -> Throughput:
    desk = Desk(root, db_url, dovecot.port, user, dovecot.password,
                processing=dict(processing)).write()
    desk.upgrade()
    measured, counts = desk.poll_once()
    if counts["fetched"] != expected:
        raise RuntimeError(f"{label}: poll --once fetched {counts['fetched']} of {expected} "
                           f"mails:\n{measured.stdout}\n{measured.stderr[-3000:]}")
    detail = (f"stored {counts['stored']}, duplicates {counts['duplicates']}, ignored "
              f"{counts['ignored']}, quarantined {counts['quarantined']}")
    return Throughput(label, counts["fetched"], measured.seconds, measured.peak_rss_mib,
                      counts["ms"] / 1000, detail)


def _env(dovecot: Dovecot) -> dict[str, str]:
    return dict(os.environ, DOVECOT_TEST_PASSWORD=dovecot.password)


__all__ = ["Measured", "Throughput", "measure_floor", "measure_poll"]
