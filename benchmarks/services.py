"""The servers a benchmark run needs, started and cleaned up by the run itself.

Dovecot is scripts/dovecot-test-server (any user name logs in with the test password; a new
name is an empty mailbox, removed from disk by `drop_user`), run as an instance of this run
alone (a free port, a fresh state directory, stopped and removed at the end) so that neither
test suites restarting the shared test server nor another benchmark run can cut a measurement
short; SMTP is an aiosmtpd sink in this
process that wakes a waiter for each acknowledgement it accepts; PostgreSQL is the local
server, in which each run creates and drops a database of its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
APPEND_BATCH = 100
APPEND_BATCH_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Dovecot:
    port: int
    state_dir: Path
    host: str = LOOPBACK
    password: str = "test-secret"

    @classmethod
    def private(cls) -> Dovecot:
        """An instance for this run alone: a free port and a fresh state directory."""
        return cls(free_port(), Path(tempfile.mkdtemp(prefix="complaints-bench-dovecot-")))

    def _script(self, command: str) -> None:
        env = dict(os.environ, DOVECOT_TEST_DIR=str(self.state_dir),
                   DOVECOT_TEST_PORT=str(self.port), DOVECOT_TEST_PASSWORD=self.password)
        result = subprocess.run([str(REPO_ROOT / "scripts" / "dovecot-test-server"), command],
                                env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/dovecot-test-server {command} failed:\n"
                               f"{result.stdout}{result.stderr}")

    def start(self) -> None:
        """Start unless it answers already (the script returns once the port is open)."""
        if not _port_answers(self.host, self.port):
            self._script("start")

    def stop_and_remove(self) -> None:
        """Stop this instance and delete its state directory, Maildirs included."""
        try:
            self._script("stop")
        finally:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def new_user(self, prefix: str) -> str:
        return f"{prefix}{uuid.uuid4().hex[:10]}"

    @contextlib.contextmanager
    def connect(self, user: str) -> Iterator[IMAPClient]:
        client = IMAPClient(self.host, self.port, ssl=False, timeout=60)
        try:
            client.login(user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def load(self, user: str, raws: Iterable[bytes], folder: str = "INBOX") -> int:
        """MULTIAPPEND every mail, in batches bounded by count and bytes; returns the count."""
        loaded = 0
        with self.connect(user) as client:
            batch: list[dict[str, object]] = []
            batch_bytes = 0
            for raw in raws:
                batch.append({"msg": raw, "flags": ()})
                batch_bytes += len(raw)
                if len(batch) >= APPEND_BATCH or batch_bytes >= APPEND_BATCH_BYTES:
                    client.multiappend(folder, batch)
                    loaded += len(batch)
                    batch, batch_bytes = [], 0
            if batch:
                client.multiappend(folder, batch)
                loaded += len(batch)
        return loaded

    def move_back(self, user: str, source: str = "Processed", target: str = "INBOX") -> int:
        """Put processed mail back in the INBOX so the next run ingests the same corpus."""
        with self.connect(user) as client:
            if not client.folder_exists(source):
                return 0
            moved = int(client.select_folder(source)[b"EXISTS"])
            if moved:
                # A range, not the list of UIDs: ten thousand UIDs of six digits are a command
                # line longer than Dovecot takes (64 KiB).
                client.move("1:*", target)
            return moved

    def count(self, user: str, folder: str = "INBOX") -> int:
        with self.connect(user) as client:
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def drop_user(self, user: str) -> None:
        """Delete the user's Maildir (the benchmark corpus can be hundreds of megabytes)."""
        if not re.fullmatch(r"[a-z0-9]+", user):
            raise ValueError(f"refusing to delete the mailbox of {user!r}")
        shutil.rmtree(self.state_dir / "mail" / user, ignore_errors=True)


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# -- SMTP ---------------------------------------------------------------------------------------

_IN_REPLY_TO = re.compile(rb"^In-Reply-To:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


class AckSink:
    """aiosmtpd on loopback recording, per original Message-ID, when its answer was accepted.

    The acknowledgement names the complaint in In-Reply-To; the arrival time is taken just
    before the sink answers 250, which is when the sender learns the mail was accepted.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted: dict[str, float] = {}
        self.count = 0
        self._changed = threading.Condition()
        self._controller: object | None = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        controller = Controller(self, hostname=LOOPBACK, port=self.port, enable_SMTPUTF8=True,
                                ready_timeout=10.0)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()  # type: ignore[attr-defined]
            self._controller = None

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        content = envelope.original_content or envelope.content
        found = _IN_REPLY_TO.search(bytes(content))
        with self._changed:
            self.count += 1
            if found:
                self.accepted[found.group(1).decode("ascii", "replace")] = time.monotonic()
            self._changed.notify_all()
        return "250 Message accepted"

    def wait_for(self, message_id: str, timeout: float) -> float | None:
        """The acceptance time of the answer to `message_id`, or None after `timeout`."""
        with self._changed:
            self._changed.wait_for(lambda: message_id in self.accepted, timeout)
            return self.accepted.get(message_id)


# -- PostgreSQL ---------------------------------------------------------------------------------

PG_ADMIN_URL = os.environ.get("COMPLAINTS_BENCH_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database `bench_<random>` on the local server, dropped afterwards."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
