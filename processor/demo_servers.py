"""Local servers for `complaints demo`: pymap (IMAP, in memory) and an SMTP sink, on loopback.

Nothing here is used in production. pymap and aiosmtpd come with the `demo` extra
(`pip install 'complaint-processor[demo]'`); they are imported only when the demo starts, so
the rest of the processor runs without them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from processor.errors import ComplaintsError, MailboxError

log = logging.getLogger("processor.demo")

LOOPBACK = "127.0.0.1"
DEMO_USER = "complaints"
DEMO_PASSWORD = "demo-password"
START_TIMEOUT_S = 30.0
INSTALL_HINT = "pip install 'complaint-processor[demo]'"


@dataclass(frozen=True)
class SentMail:
    """One message the SMTP sink accepted, and where it was written."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    path: Path


class _SmtpSink:
    """aiosmtpd handler: keeps every accepted message and writes it to outbox-sink/NNN.eml."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._received: list[SentMail] = []

    def snapshot(self) -> tuple[SentMail, ...]:
        with self._lock:
            return tuple(self._received)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content = bytes(envelope.original_content or envelope.content)
        with self._lock:
            path = self.directory / f"{len(self._received) + 1:03d}.eml"
            path.write_bytes(content)
            self._received.append(
                SentMail(envelope.mail_from, tuple(envelope.rcpt_tos), content, path))
        log.info("demo SMTP sink accepted a mail for %s -> %s",
                 ", ".join(envelope.rcpt_tos), path.name)
        return "250 Message accepted"


@dataclass(frozen=True)
class DemoServers:
    """Where the demo's servers listen, and what the SMTP sink has received so far."""

    imap_host: str
    imap_port: int
    imap_user: str
    imap_password: str
    smtp_host: str
    smtp_port: int
    _sink: _SmtpSink = field(repr=False, compare=False)

    @property
    def received(self) -> tuple[SentMail, ...]:
        """Mail accepted by the SMTP sink, oldest first."""
        return self._sink.snapshot()


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ComplaintsError(f"the demo needs the Python package '{module}', which is missing",
                              hint=INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def _pymap_argv(port: int) -> list[str]:
    # pymap has no `python -m pymap`; its console script only calls pymap.main.main.
    return [
        sys.executable, "-c", "import sys; from pymap.main import main; sys.exit(main())",
        "--host", LOOPBACK, "--port", str(port), "--no-tls",
        "--no-service", "admin", "--no-service", "managesieve", "--no-service", "swim",
        "dict", "--demo-user", DEMO_USER, "--demo-password", DEMO_PASSWORD,
    ]


@contextlib.contextmanager
def _pymap(port: int, log_path: Path) -> Iterator[None]:
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(_pymap_argv(port), stdin=subprocess.DEVNULL,
                                   stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _port_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace").strip()[-2000:]
                raise ComplaintsError(
                    f"the demo IMAP server (pymap) did not start on {LOOPBACK}:{port}"
                    + (f":\n{output}" if output else ""),
                    hint=f"see {log_path}; is pymap installed? {INSTALL_HINT}")
            time.sleep(0.05)  # poll interval between connect attempts
        log.info("demo IMAP server (pymap) listening on %s:%d", LOOPBACK, port)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _smtp(sink: _SmtpSink, port: int) -> Iterator[None]:
    from aiosmtpd.controller import Controller

    controller = Controller(sink, hostname=LOOPBACK, port=port, enable_SMTPUTF8=True)
    try:
        controller.start()
    except Exception as exc:  # aiosmtpd raises bare RuntimeError/OSError subclasses
        raise ComplaintsError(f"the demo SMTP sink could not listen on {LOOPBACK}:{port}: {exc}",
                              hint="retry; another program may have taken the port") from exc
    log.info("demo SMTP sink listening on %s:%d", LOOPBACK, port)
    try:
        yield
    finally:
        controller.stop()


@contextlib.contextmanager
def demo_servers(workdir: Path) -> Iterator[DemoServers]:
    """Run pymap and an SMTP sink on free loopback ports for as long as the block lasts.

    The IMAP mailbox lives in memory and is gone afterwards; mail sent to the sink is kept
    in `workdir/outbox-sink/001.eml`, `002.eml`, ... and in `DemoServers.received`.
    """
    _require("pymap")
    _require("aiosmtpd")
    workdir.mkdir(parents=True, exist_ok=True)
    sink_dir = workdir / "outbox-sink"
    sink_dir.mkdir(exist_ok=True)
    sink = _SmtpSink(sink_dir)
    imap_port, smtp_port = _free_port(), _free_port()
    with _pymap(imap_port, workdir / "pymap.log"), _smtp(sink, smtp_port):
        yield DemoServers(LOOPBACK, imap_port, DEMO_USER, DEMO_PASSWORD,
                          LOOPBACK, smtp_port, sink)


def load_examples(servers: DemoServers, folder: str, paths: Iterable[Path]) -> int:
    """APPEND each .eml file to `folder` (created when missing); returns how many."""
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError

    raws = []
    for path in paths:
        try:
            raws.append(path.read_bytes())
        except OSError as exc:
            raise ComplaintsError(f"cannot read example mail {path}: {exc.strerror}") from exc
    try:
        client = IMAPClient(servers.imap_host, servers.imap_port, ssl=False, timeout=30)
        try:
            client.login(servers.imap_user, servers.imap_password)
            if folder.upper() != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in raws:
                client.append(folder, raw)
        finally:
            with contextlib.suppress(Exception):
                client.logout()
    except (IMAPClientError, OSError) as exc:
        raise MailboxError(f"could not load the examples into {folder}: {exc}") from exc
    log.info("loaded %d example mail(s) into %s", len(raws), folder)
    return len(raws)
