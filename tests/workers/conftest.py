"""Several `complaints run` processes against one database, each with its own log file.

A worker's standard error goes to a file, not a pipe: a busy worker logs a line per mail and
would block on a full pipe that nobody reads until the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deployment import Deployment


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def name_prefix(self) -> str:
        """The start of the name the worker goes by in the registry and the leases
        (host:pid:token; the token is its own)."""
        return f"{socket.gethostname()}:{self.proc.pid}:"

    def owns(self, name: object) -> bool:
        return isinstance(name, str) and name.startswith(self.name_prefix)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stopped_by_signal(self) -> bool:
        """Whether the process is stopped (SIGSTOP, as a `:stop` failpoint does to itself):
        the state letter in /proc/<pid>/stat, after the command name in parentheses."""
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rpartition(")")[2].split()[0] in ("T", "t")

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@dataclass
class Workers:
    tmp: Path
    started: list[WorkerProcess]

    def start(self, deployment: Deployment, password: str, *args: str,
              **env: str) -> WorkerProcess:
        index = len(self.started)
        log_path = self.tmp / f"worker-{index}.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen([sys.executable, "-m", "processor", *(args or ("run",))],
                                    env={**deployment.env(password), **env},
                                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        worker = WorkerProcess(proc, log_path)
        self.started.append(worker)
        return worker


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    group = Workers(tmp_path, [])
    try:
        yield group
    finally:
        for worker in group.started:
            if worker.proc.poll() is None:
                os.kill(worker.proc.pid, signal.SIGCONT)  # a test may have frozen it
            worker.kill()


def wait_until(condition: Callable[[], object], timeout: float = 120.0,
               what: str = "condition") -> float:
    """Wait for a state we can only observe by asking (the database, the server); returns the
    time it took."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic() - started
        # Between questions: each is a query, and asking faster takes the CPU from the workers
        # being watched, which on a two-core machine is most of what slows them.
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
