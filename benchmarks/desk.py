"""A throw-away deployment of the desk for one measured run, and child processes measured alone.

Every measured run is its own process (the real `complaints` CLI, or a floor script), run under
benchmarks.peak so its peak RSS is that process's own VmHWM, not the driver's.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.proctree import Helpers, HelperSampler
from benchmarks.services import LOOPBACK, REPO_ROOT, AckSink, Dovecot

PASSWORD_ENV = "COMPLAINTS_BENCH_IMAP_PASSWORD"
DESK_ADDRESS = "complaints@example.com"


@dataclass(frozen=True)
class Measured:
    """One child process: wall time, peak RSS (MiB), exit status and captured output; its own
    CPU time (None if it could not say: killed, or not run under benchmarks.peak) and what the
    processes below it used."""

    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float | None = None
    helpers: Helpers | None = None

    def check(self, what: str) -> Measured:
        if self.returncode != 0:
            raise RuntimeError(f"{what} exited {self.returncode}:\n{self.stdout[-2000:]}\n"
                               f"{self.stderr[-4000:]}")
        return self


def start_child(argv: Sequence[str], env: dict[str, str], workdir: Path,
                name: str) -> tuple[subprocess.Popen[bytes], float, HelperSampler]:
    """Start `argv`; a `python -m MODULE` command runs under benchmarks.peak (see there), and
    the processes it starts are read while it runs."""
    argv = list(argv)
    if argv[1:2] == ["-m"]:
        argv[1:3] = ["-m", "benchmarks.peak", str(workdir / f"{name}.peak"), argv[2]]
    out = open(workdir / f"{name}.out", "wb")  # noqa: SIM115 - closed by finish_child
    err = open(workdir / f"{name}.err", "wb")  # noqa: SIM115
    started = time.monotonic()
    proc = subprocess.Popen(list(argv), env=env, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
                            stdout=out, stderr=err)
    out.close()
    err.close()
    return proc, started, HelperSampler(proc.pid).start()


def finish_child(proc: subprocess.Popen[bytes], started: float, sampler: HelperSampler,
                 workdir: Path, name: str) -> Measured:
    """Reap the child; its peak RSS and CPU time are what it wrote at exit (rusage's peak as
    a fallback, which may include the driver's own: see benchmarks.peak)."""
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    helpers = sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_file = workdir / f"{name}.peak"
    peak_kib, cpu = usage.ru_maxrss, None
    if peak_file.exists():
        peak, cpu_text = peak_file.read_text().split()
        peak_kib, cpu = int(peak), float(cpu_text)
    peak_file.unlink(missing_ok=True)
    return Measured(seconds, peak_kib / 1024, proc.returncode,
                    (workdir / f"{name}.out").read_text("utf-8", "replace"),
                    (workdir / f"{name}.err").read_text("utf-8", "replace"),
                    cpu, helpers if helpers.processes else None)


def run_child(argv: Sequence[str], env: dict[str, str], workdir: Path, name: str) -> Measured:
    proc, started, sampler = start_child(argv, env, workdir, name)
    return finish_child(proc, started, sampler, workdir, name)


@dataclass
class Desk:
    """A configuration file, data directory and database for one run of `complaints`."""

    root: Path
    db_url: str
    imap_port: int
    user: str
    password: str
    smtp_port: int | None = None
    processing: dict[str, object] = field(default_factory=dict)
    acknowledge: bool = True  # False: `[ack] enabled = false`, no acknowledgement composed

    def write(self) -> Desk:
        self.root.mkdir(parents=True, exist_ok=True)
        lines = [
            "[database]", f'url = "{self.db_url}"', "",
            "[storage]", f'data_dir = "{self.root / "data"}"', "",
            "[processing]", *(f"{k} = {_toml(v)}" for k, v in self.processing.items()), "",
            # The benchmark's complainants are all different people, many within a minute:
            # the global ceiling of automatic answers would otherwise hold most acks back.
            "[ack]", 'message_id_domain = "desk.example.com"', 'installation_id = "bench-desk"',
            "global_per_minute = 1000000", *([] if self.acknowledge else ["enabled = false"]),
            "",
            "[mailbox.desk]", f'host = "{LOOPBACK}"', f"port = {self.imap_port}",
            'tls = "none"', f'user = "{self.user}"', f'password_env = "{PASSWORD_ENV}"',
            f'addresses = ["{DESK_ADDRESS}"]', "",
        ]
        if self.smtp_port is not None:
            lines += ["[smtp]", f'host = "{LOOPBACK}"', f"port = {self.smtp_port}",
                      'tls = "none"', 'envelope_sender = "complaints@example.com"',
                      "retry_base_seconds = 1", "retry_cap_seconds = 2", ""]
        self.config_path.write_text("\n".join(lines), encoding="utf-8")
        return self

    @property
    def config_path(self) -> Path:
        return self.root / "complaints.toml"

    def env(self) -> dict[str, str]:
        return dict(os.environ, COMPLAINTS_CONFIG=str(self.config_path),
                    **{PASSWORD_ENV: self.password})

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "processor", *args]

    def upgrade(self) -> None:
        run_child(self.argv("db", "upgrade"), self.env(), self.root, "upgrade").check(
            "complaints db upgrade")

    def poll_once(self, name: str = "poll") -> tuple[Measured, dict[str, int]]:
        """`complaints poll --once`, measured; also the counts and duration it printed."""
        measured = run_child(self.argv("poll", "--once"), self.env(), self.root, name)
        measured.check("complaints poll --once")
        return measured, parse_poll_output(measured.stdout)


_POLL_LINE = re.compile(r"fetched (\d+), stored (\d+), duplicates (\d+), ignored (\d+), "
                        r"quarantined (\d+), (\d+) ms")


def parse_poll_output(stdout: str) -> dict[str, int]:
    found = _POLL_LINE.search(stdout)
    if not found:
        raise RuntimeError(f"no statistics line in the output of poll --once:\n{stdout}")
    keys = ("fetched", "stored", "duplicates", "ignored", "quarantined", "ms")
    return dict(zip(keys, (int(g) for g in found.groups()), strict=True))


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class RunningService:
    """`complaints run` idling on a fresh Dovecot user, answering through an SMTP sink."""

    user: str
    sink: AckSink
    pid: int
    measured: Measured | None = None  # once it has stopped


@contextlib.contextmanager
def running_service(dovecot: Dovecot, root: Path, db_url: str, prefix: str,
                    name: str) -> Iterator[RunningService]:
    """Start the service for the block; at its end, stop it with SIGTERM, drop the user's
    mail, and raise if the service had failed (its peak RSS is then in `measured`)."""
    user = dovecot.new_user(prefix)
    sink = AckSink()
    sink.start()
    desk = Desk(root, db_url, dovecot.port, user, dovecot.password, smtp_port=sink.port).write()
    desk.upgrade()
    proc, started, sampler = start_child(desk.argv("run"), desk.env(), root, name)
    service = RunningService(user, sink, proc.pid)
    try:
        yield service
    finally:
        proc.send_signal(signal.SIGTERM)
        service.measured = finish_child(proc, started, sampler, root, name)
        sink.stop()
        dovecot.drop_user(user)
    if service.measured.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"`complaints run` exited {service.measured.returncode}:\n"
                           f"{service.measured.stderr[-4000:]}")
