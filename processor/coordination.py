"""Who may poll what: one worker per SQLite database; folder leases among workers on PostgreSQL.

A `Coordinator` is this process's membership: it registers the worker, beats its heartbeat,
renews the leases it holds and notices those it lost, and gives them up at a clean stop. The
timings all derive from one setting, `workers.takeover_seconds` (T): a lease lives 2T/3 past
its last renewal, is renewed every 2T/9, and standby workers try to take a folder every T/6,
so a folder whose worker died is polled again within 5T/6 < T.

On SQLite the database itself cannot be shared by two writers that each believe they own a
folder, so a second worker is refused outright (an exclusive lock on a file beside the
database) with the advice to use PostgreSQL.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from processor.db import leases
from processor.db.leases import Lease
from processor.errors import WorkerRefused

log = logging.getLogger("processor.coordination")


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]") or "0"
    except OSError:
        return "0"


# Hostnames and pids repeat: containers may share a hostname, each running as pid 1. The
# token (this process's pid namespace, then random) makes every process's name its own, and
# says whether a pid seen in a name can be checked from here at all.
_TOKEN = f"{_pid_namespace()}.{secrets.token_hex(3)}"
_HOST = socket.gethostname()[:60].replace(":", "-")  # names fit outbox.claimed_by (100)


def worker_name() -> str:
    """The name a process goes by in the registry, the leases and the outbox claims:
    host:pid:token."""
    return f"{_HOST}:{os.getpid()}:{_TOKEN}"


def gone_from_here(name: str) -> bool:
    """True only when `name` is a process of this host and pid namespace that no longer runs
    (killed, then restarted): its lease or claims need not wait for their expiry. A name from
    elsewhere is never presumed dead: only its expiry says so."""
    host, _, rest = name.partition(":")
    pid_text, _, token = rest.partition(":")
    if host != _HOST or not pid_text.isdigit() \
            or token.partition(".")[0] != _TOKEN.partition(".")[0] or name == worker_name():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@dataclass(frozen=True, slots=True)
class LeaseTimes:
    ttl: timedelta
    renew_every: float  # seconds
    retry_every: float  # seconds

    @classmethod
    def for_takeover(cls, takeover_seconds: float) -> LeaseTimes:
        return cls(timedelta(seconds=takeover_seconds * 2 / 3), takeover_seconds * 2 / 9,
                   takeover_seconds / 6)


@dataclass
class HeldLease:
    """A lease this process holds, with the local deadline after which it must stop acting:
    if renewals fail (database gone), the lease lapses here before it lapses for the others."""

    lease: Lease
    times: LeaseTimes
    valid_until: float  # time.monotonic()
    lost: bool = False

    def valid(self) -> bool:
        return not self.lost and time.monotonic() < self.valid_until

    def fence(self, session: Session) -> None:
        leases.fence(session, self.lease, self.times.ttl)
        self.valid_until = time.monotonic() + self.times.ttl.total_seconds() * 0.9

    @property
    def worker(self) -> str:
        return self.lease.holder


@dataclass
class Coordinator:
    engine: Engine
    takeover_seconds: float
    name: str = field(default_factory=worker_name)

    def __post_init__(self) -> None:
        self.times = LeaseTimes.for_takeover(self.takeover_seconds)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self._held: dict[tuple[str, str], HeldLease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None
        self._file_lock: _ProcessLock | None = None
        self._beat_failing = False

    # -- membership -------------------------------------------------------------------------
    def start(self, *, heartbeat: bool = True) -> Coordinator:
        """Join: refused on SQLite when another worker runs; raises WorkerRefused."""
        if self.sqlite:
            self._file_lock = _ProcessLock.acquire(self.engine)
        leases.register_worker(self.engine, self.name, socket.gethostname(), os.getpid())
        if heartbeat:
            self._beater = threading.Thread(target=self._beat_loop, name="heartbeat",
                                            daemon=True)
            self._beater.start()
        return self

    def stop(self) -> None:
        """Leave cleanly: give every lease up so another worker takes over at once."""
        self._stop.set()
        if self._beater is not None:
            self._beater.join()
        with self._lock:
            held = list(self._held.values())
            self._held.clear()
        try:
            for lease in held:
                leases.release(self.engine, lease.lease)
            leases.mark_stopped(self.engine, self.name)
        except Exception as exc:  # the leases expire by themselves; say so and go
            log.warning("could not release leases at stop (%s); they expire within %.0f s",
                        exc, self.times.ttl.total_seconds())
        if self._file_lock is not None:
            self._file_lock.release()
            self._file_lock = None

    def __enter__(self) -> Coordinator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- leases -----------------------------------------------------------------------------
    def acquire(self, mailbox: str, folder: str) -> HeldLease | None:
        """The folder's lease for this worker, or None while another live worker holds it."""
        started = time.monotonic()
        lease = leases.try_acquire(self.engine, mailbox, folder, self.name, self.times.ttl,
                                   take_any=self.sqlite, is_dead=gone_from_here)
        if lease is None:
            return None
        held = HeldLease(lease, self.times,
                         started + self.times.ttl.total_seconds() * 0.9)
        with self._lock:
            self._held[(mailbox, folder)] = held
        return held

    def release(self, held: HeldLease) -> None:
        with self._lock:
            self._held.pop((held.lease.mailbox, held.lease.folder), None)
        held.lost = True
        leases.release(self.engine, held.lease)

    def holding(self) -> list[HeldLease]:
        with self._lock:
            return list(self._held.values())

    # -- the heartbeat ----------------------------------------------------------------------
    def beat_once(self) -> None:
        started = time.monotonic()
        leases.beat(self.engine, self.name)
        held = self.holding()
        lost = {(lease.mailbox, lease.folder)
                for lease in leases.renew(self.engine, [h.lease for h in held], self.times.ttl)}
        for entry in held:
            if (entry.lease.mailbox, entry.lease.folder) in lost:
                log.warning("%s/%s: lease lost to another worker; standing by",
                            entry.lease.mailbox, entry.lease.folder)
                entry.lost = True
                with self._lock:
                    self._held.pop((entry.lease.mailbox, entry.lease.folder), None)
            else:
                entry.valid_until = started + self.times.ttl.total_seconds() * 0.9
        released = leases.release_claims_of_dead_workers(
            self.engine, timedelta(seconds=self.takeover_seconds))
        if released:
            log.info("outbox: %d mails claimed by stopped workers are queued again", released)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.times.renew_every):
            try:
                self.beat_once()
                if self._beat_failing:
                    log.info("heartbeat restored")
                self._beat_failing = False
            except Exception as exc:  # database gone: leases lapse locally, then retry
                if not self._beat_failing:
                    log.error("heartbeat failed (%s); the leases held lapse in %.0f s unless "
                              "the database comes back", exc, self.times.ttl.total_seconds())
                self._beat_failing = True


class _ProcessLock:
    """An exclusive lock on `<database>.worker.lock`: one worker per SQLite database.

    Held for the life of the process (released by the kernel if the process dies, so a killed
    worker never leaves it stale). Within one process it is shared, for tests that run the
    service and a poll side by side in one interpreter."""

    _held: dict[Path, tuple[int, int]] = {}  # path -> (fd, users)
    _guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def acquire(cls, engine: Engine) -> _ProcessLock | None:
        database = engine.url.database
        if not database or database == ":memory:":
            return None
        path = Path(database).resolve().with_name(Path(database).name + ".worker.lock")
        with cls._guard:
            if path in cls._held:
                fd, users = cls._held[path]
                cls._held[path] = (fd, users + 1)
                return cls(path)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise WorkerRefused(
                    f"another complaints worker ({other}) is already running on the SQLite "
                    f"database {database}; SQLite allows one worker at a time",
                    hint="stop that worker first, or to run several workers point them all at "
                         "one PostgreSQL database ([database] url = "
                         "\"postgresql://user@host/db\"; see README, Several workers)") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
            cls._held[path] = (fd, 1)
            return cls(path)

    def release(self) -> None:
        with self._guard:
            fd, users = self._held[self.path]
            if users > 1:
                self._held[self.path] = (fd, users - 1)
                return
            del self._held[self.path]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
