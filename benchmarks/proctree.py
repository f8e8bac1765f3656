"""A measured process and the processes below it (the desk's worker processes and their
forkserver), read from /proc: their resident memory, their CPU time and their peak RSS.

A process that ends between two readings counts with what was last read of it, or as nothing
if it was never read. Linux only, like the rest of the benchmark.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

# Below a measured run, how often its worker processes are read. Their CPU time is what was
# last read, so a worker's last fifth of a second can be missed; reading more often would take
# more of the two cores the run is measured on.
SAMPLE_SECONDS = 0.2
_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (not `pid` itself), found through each thread's children:
    a child belongs to the thread that started it."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            children = [int(child) for task in Path(f"/proc/{current}/task").iterdir()
                        for child in (task / "children").read_text().split()]
        except OSError:  # ended meanwhile
            continue
        found += children
        pending += children
    return found


def status_kib(pid: int, field: str) -> int | None:
    """A `/proc/PID/status` figure in KiB (VmRSS, VmHWM), or None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of `pid` so far (all its threads), or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields follow its last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def resident_mib(pid: int) -> float:
    """VmRSS of `pid` and of every process below it, in MiB."""
    return sum(status_kib(p, "VmRSS") or 0 for p in [pid, *descendants(pid)]) / 1024


@dataclass(frozen=True)
class Helpers:
    """What the processes below a measured one used: their CPU time added up, and the largest
    peak RSS among them (each is a process of its own, with its own memory)."""

    processes: int
    cpu_seconds: float
    peak_rss_mib: float


class HelperSampler:
    """Reads the processes below `pid` every SAMPLE_SECONDS in a thread, until `stop`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu: dict[int, float] = {}
        self._peak_kib: dict[int, int] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"helpers-of-{pid}", daemon=True)

    def start(self) -> HelperSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            self._read()
            if self._stopped.wait(SAMPLE_SECONDS):
                return

    def _read(self) -> None:
        for pid in descendants(self.pid):
            cpu, peak = cpu_seconds(pid), status_kib(pid, "VmHWM")
            if cpu is not None:
                self._cpu[pid] = cpu
            if peak is not None:
                self._peak_kib[pid] = peak

    def stop(self) -> Helpers:
        """Stop reading, after one last reading of what is still running."""
        self._stopped.set()
        self._thread.join()
        self._read()
        return Helpers(len(self._cpu), sum(self._cpu.values()),
                       max(self._peak_kib.values(), default=0) / 1024)
