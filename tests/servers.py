"""Real servers for the test suite: Dovecot and pymap (IMAP), aiosmtpd (SMTP), PostgreSQL.

Load with ``pytest_plugins = ["tests.servers"]``. Fixtures:

    dovecot        session   DovecotServer: scripts/dovecot-test-server on 127.0.0.1:10143
    dovecot_tls    session   DovecotServer with TLS: IMAPS on 127.0.0.1:10993, STARTTLS on
                             10144, a self-signed certificate for 127.0.0.1 (`ca_file`)
    older_dovecot  session   DovecotServer announcing an older server's capabilities: without
                             MOVE (10145), or RFC 3501 alone: no MOVE, UIDPLUS, IDLE (10147)
    dovecot_without_idle     the second of those
    dovecot_inbox_prefix     session   every folder under "INBOX." with "." between levels,
                             as on cPanel, Courier and Cyrus (10148)
    dovecot_acl    session   access control lists on: `set_rights` takes a right away from
                             the account on one of its folders, as an administrator would (10149)
    dovecot_oauth2 session   (DovecotServer, TokenIssuer): logins with OAuth 2.0 access tokens
                             (XOAUTH2) as well, each checked against the issuer's loopback
                             userinfo endpoint, as a provider's (both on free ports, one pair
                             per test process)
    private_dovecot function DovecotServer on a free port, for this test alone: one that stops
                             or restarts its server must not take the shared one from the tests
                             running beside it (pytest-xdist); stopped and removed afterwards
    imap_account   function  ImapAccount: a fresh Dovecot user, i.e. an isolated empty mailbox
    pymap_server   session   PymapServer: pymap's in-memory backend, one user, on a free port
    smtp_server    function  SmtpSink: aiosmtpd on a free port recording every envelope
    smtp_delivering function SmtpSink that also APPENDs each mail into the Dovecot INBOX of
                             the user named by each recipient's local part
    postgres_url   session   SQLAlchemy URL of a reachable PostgreSQL database

Nothing is mocked: each helper speaks IMAP through imapclient, exactly as the product does.
Waiting is always on an event (a TCP connect that succeeds, a condition variable), never a
blind sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

REPO_ROOT = Path(__file__).resolve().parent.parent
DOVECOT_SCRIPT = REPO_ROOT / "scripts" / "dovecot-test-server"
LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT = 30.0
APPEND_BATCH = 100  # mails per MULTIAPPEND: few round trips, yet no huge single command


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, deadline_s: float,
                  check_alive: Callable[[], None] | None = None) -> None:
    """Poll a TCP connect until it succeeds; `check_alive` may raise to stop early."""
    deadline = time.monotonic() + deadline_s
    while not port_answers(host, port):
        if check_alive is not None:
            check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host}:{port} did not answer within {deadline_s:.0f}s")
        time.sleep(0.05)  # poll interval between connect attempts, not a wait for readiness


# --------------------------------------------------------------------------------------------
# IMAP accounts (shared by Dovecot and pymap)


@dataclass
class ImapAccount:
    """One IMAP login and a few blocking helpers that each use one short connection."""

    host: str
    port: int
    user: str
    password: str

    @contextlib.contextmanager
    def connect(self) -> Iterator[IMAPClient]:
        client = IMAPClient(self.host, self.port, ssl=False, timeout=CONNECT_TIMEOUT)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def create(self, folder: str) -> None:
        """Create `folder` unless it exists already."""
        with self.connect() as client:
            _ensure_folder(client, folder)

    def append(self, folder: str, raws: Iterable[bytes], flags: Sequence[str | bytes] = ()) -> int:
        """Append every raw mail to `folder` (created if needed) over one connection.

        Uses MULTIAPPEND in batches when the server offers it (Dovecot and pymap both do), so
        a backlog of thousands takes one round trip per batch. Returns how many were appended.
        """
        appended = 0
        with self.connect() as client:
            _ensure_folder(client, folder)
            multi = client.has_capability("MULTIAPPEND")
            batch: list[dict[str, object]] = []
            for raw in raws:
                if not multi:
                    client.append(folder, raw, flags=tuple(flags))
                    appended += 1
                    continue
                batch.append({"msg": raw, "flags": tuple(flags)})
                if len(batch) == APPEND_BATCH:
                    client.multiappend(folder, batch)
                    appended += len(batch)
                    batch = []
            if batch:
                client.multiappend(folder, batch)
                appended += len(batch)
        return appended

    def count(self, folder: str) -> int:
        """Messages in `folder`; 0 when the folder does not exist (nothing was ever put there)."""
        with self.connect() as client:
            if not client.folder_exists(folder):
                return 0
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def uids(self, folder: str) -> list[int]:
        """UIDs in `folder`, ascending; [] when the folder does not exist."""
        with self.connect() as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))

    def expunge(self, folder: str, uids: list[int]) -> None:
        """Delete and expunge `uids` from `folder` in a session of its own: someone else
        removing mail while the desk is fetching it."""
        with self.connect() as client:
            client.select_folder(folder)
            client.delete_messages(uids)
            client.expunge()

    def fetch_all(self, folder: str) -> list[bytes]:
        """Every mail of `folder` as raw bytes, in UID order, without setting \\Seen."""
        with self.connect() as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search("ALL"))
            if not uids:
                return []
            fetched = client.fetch(uids, [b"BODY.PEEK[]"])
            return [bytes(fetched[uid][b"BODY[]"]) for uid in uids]

    def folders(self) -> list[str]:
        with self.connect() as client:
            return sorted(str(name) for _flags, _sep, name in client.list_folders())


def _ensure_folder(client: IMAPClient, folder: str) -> None:
    if folder.upper() != "INBOX" and not client.folder_exists(folder):
        client.create_folder(folder)


# --------------------------------------------------------------------------------------------
# Dovecot


@dataclass
class DovecotServer:
    """The Dovecot run by scripts/dovecot-test-server; any user name logs in with `password`."""

    host: str
    port: int
    password: str
    state_dir: Path
    tls_port: int | None = None  # IMAPS; with it, the plain port offers STARTTLS
    capability: str | None = None  # announced after login instead of Dovecot's own list
    inbox_prefix: bool = False  # every folder under "INBOX.", as on cPanel and Courier
    acl: bool = False  # access control lists on (see set_rights)
    oauth2_url: str | None = None  # where access tokens are checked (see TokenIssuer)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.state_dir / "dovecot.log"

    def _run(self, command: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, DOVECOT_TEST_DIR=str(self.state_dir),
                   DOVECOT_TEST_PORT=str(self.port), DOVECOT_TEST_PASSWORD=self.password)
        env.pop("DOVECOT_TEST_TLS_PORT", None)
        if self.tls_port is not None:
            env["DOVECOT_TEST_TLS_PORT"] = str(self.tls_port)
        env.pop("DOVECOT_TEST_CAPABILITY", None)
        if self.capability is not None:
            env["DOVECOT_TEST_CAPABILITY"] = self.capability
        env["DOVECOT_TEST_INBOX_PREFIX"] = "1" if self.inbox_prefix else ""
        env["DOVECOT_TEST_ACL"] = "1" if self.acl else ""
        env["DOVECOT_TEST_OAUTH2_URL"] = self.oauth2_url or ""
        result = subprocess.run([str(DOVECOT_SCRIPT), command], env=env, text=True,
                                capture_output=True, timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/dovecot-test-server {command} failed "
                               f"(exit {result.returncode}):\n{result.stdout}{result.stderr}"
                               f"\nlog: {self.log_path}")
        return result

    def start(self) -> None:
        """Start unless already listening; returns once the port answers."""
        self._run("start")

    def stop(self) -> None:
        """Stop; returns once the port no longer answers. Mailboxes stay on disk."""
        self._run("stop")

    def restart(self) -> None:
        self._run("restart")

    def is_running(self) -> bool:
        return port_answers(self.host, self.port) and (
            self.tls_port is None or port_answers(self.host, self.tls_port))

    def kick(self, user: str) -> None:
        """Drop every connection of `user`, as a server restart or an admin would."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run([doveadm, "-c", str(self.state_dir / "dovecot.conf"), "kick", user],
                       check=True, capture_output=True, timeout=30)

    def set_rights(self, user: str, folder: str, rights: str) -> None:
        """What the account may do in one of its (existing) folders, as IMAP ACL rights
        (RFC 4314: "lr" to see and read only, "lrwstipekxa" for all); on an `acl` instance.
        Written as the folder's dovecot-acl file, which every new session reads."""
        assert self.acl, "set_rights needs an instance started with acl=True"
        directory = self.state_dir / "mail" / user
        if folder.upper() != "INBOX":  # Maildir++: the INBOX is the top directory
            directory /= f".{folder}"
        if not directory.is_dir():
            raise FileNotFoundError(f"{user} has no folder {folder!r} ({directory})")
        acl_file = directory / "dovecot-acl"
        acl_file.write_text(f"owner {rights}\n", encoding="ascii")
        owner = directory.stat()
        if os.geteuid() == 0:  # Dovecot reads it as the mail user
            os.chown(acl_file, owner.st_uid, owner.st_gid)

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate of a TLS instance: the CA file a client trusts."""
        return self.state_dir / "tls-cert.pem"

    def new_user(self, prefix: str = "u") -> str:
        """A user name never used before: logging in with it opens an empty mailbox."""
        return f"{prefix}{uuid.uuid4().hex[:12]}"

    def account(self, user: str | None = None) -> ImapAccount:
        return ImapAccount(self.host, self.port, user or self.new_user(), self.password)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """Dovecot on 127.0.0.1; left running after the session for the next run (start is cheap)."""
    server = _started(DovecotServer(
        host=LOOPBACK,
        port=int(os.environ.get("DOVECOT_TEST_PORT", "10143")),
        password=os.environ.get("DOVECOT_TEST_PASSWORD", "test-secret"),
        state_dir=Path(os.environ.get("DOVECOT_TEST_DIR", "/tmp/complaints-dovecot")),
    ))
    yield server
    if not server.is_running():  # a test stopped it and failed before starting it again
        server.start()


def _started(server: DovecotServer) -> DovecotServer:
    """`server`, started; one already running is kept unless it runs an older configuration
    than the script writes now (skips where Dovecot cannot be had)."""
    have_dovecot = shutil.which("dovecot") or Path("/usr/sbin/dovecot").exists()
    if not have_dovecot and os.geteuid() != 0:
        pytest.skip("Dovecot is not installed and installing it needs root: run "
                    "`sudo scripts/dovecot-test-server start` once, then rerun the tests")
    server.start()
    return server


@pytest.fixture(scope="session")
def dovecot_tls() -> DovecotServer:
    """A second Dovecot instance with TLS, as a real mailbox is reached (see the list above)."""
    return _started(DovecotServer(
        host=LOOPBACK,
        port=int(os.environ.get("DOVECOT_TEST_STARTTLS_PORT", "10144")),
        password=os.environ.get("DOVECOT_TEST_PASSWORD", "test-secret"),
        state_dir=Path(os.environ.get("DOVECOT_TEST_TLS_DIR", "/tmp/complaints-dovecot-tls")),
        tls_port=int(os.environ.get("DOVECOT_TEST_IMAPS_PORT", "10993")),
    ))


# What older servers announce: MOVE (RFC 6851) came in 2013 and is still missing from some
# corporate servers, UIDPLUS with it; the oldest offer RFC 3501 and little else, not even IDLE.
OLDER_SERVERS = {
    "without-move": (10145, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS"),
    "rfc3501-only": (10147, "IMAP4rev1 LITERAL+ ID NAMESPACE"),
}


def _older_dovecot(name: str) -> DovecotServer:
    port, capability = OLDER_SERVERS[name]
    return _further_dovecot(port, name, capability=capability)


def _further_dovecot(port: int, name: str, **kind: Any) -> DovecotServer:
    """Another instance, of a `kind` of its own (DovecotServer's fields), on `port`."""
    return _started(DovecotServer(
        host=LOOPBACK, port=port,
        password=os.environ.get("DOVECOT_TEST_PASSWORD", "test-secret"),
        state_dir=Path(f"/tmp/complaints-dovecot-{name}"), **kind,
    ))


@pytest.fixture(scope="session", params=sorted(OLDER_SERVERS))
def older_dovecot(request: pytest.FixtureRequest) -> DovecotServer:
    """Dovecot announcing less than it can, to take the paths an older server needs."""
    return _older_dovecot(request.param)


@pytest.fixture(scope="session")
def dovecot_without_idle() -> DovecotServer:
    return _older_dovecot("rfc3501-only")


@pytest.fixture(scope="session")
def dovecot_inbox_prefix() -> DovecotServer:
    """Dovecot laid out as cPanel's and Courier's servers are: folders only under "INBOX."."""
    return _further_dovecot(10148, "inbox-prefix", inbox_prefix=True)


@pytest.fixture(scope="session")
def dovecot_acl() -> DovecotServer:
    """Dovecot where the account's rights on a folder can be taken away (see set_rights)."""
    return _further_dovecot(10149, "acl", acl=True)


class TokenIssuer:
    """What an OAuth 2.0 provider's userinfo endpoint does for Dovecot, on loopback: a GET
    with `Authorization: Bearer TOKEN` answers whose token it is. Tokens are issued by the
    test (`issue`) and may be revoked, as a provider expires them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._users: dict[str, str] = {}
        self._lock = threading.Lock()
        self.asked: list[str] = []  # the tokens Dovecot asked about, in order
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                with issuer._lock:
                    issuer.asked.append(token)
                    user = issuer._users.get(token)
                body = json.dumps({"email": user, "active": "true"} if user
                                  else {"active": "false"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, port), Handler)
        threading.Thread(target=self._server.serve_forever, name="token-issuer",
                         daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/userinfo"

    def issue(self, user: str) -> str:
        token = f"tok-{uuid.uuid4().hex}"
        with self._lock:
            self._users[token] = user
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._users.pop(token, None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def dovecot_oauth2() -> Iterator[tuple[DovecotServer, TokenIssuer]]:
    # Each test process (pytest-xdist runs several) has its own issuer, so its own Dovecot
    # asking that issuer, on free ports; stopped and removed at the end of the session.
    issuer = TokenIssuer(free_port())
    server: DovecotServer | None = None
    try:
        server = _further_dovecot(free_port(), f"oauth2-{uuid.uuid4().hex[:12]}",
                                  oauth2_url=issuer.url)
        yield server, issuer
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(server.state_dir, ignore_errors=True)
        issuer.close()


@pytest.fixture
def private_dovecot() -> Iterator[DovecotServer]:
    server = _further_dovecot(free_port(), f"private-{uuid.uuid4().hex[:12]}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.state_dir, ignore_errors=True)


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    """A fresh Dovecot user: an empty INBOX and no other folders."""
    if not dovecot.is_running():  # an earlier test's stop() without start()
        dovecot.start()
    return dovecot.account(dovecot.new_user("acct"))


# --------------------------------------------------------------------------------------------
# pymap


@dataclass
class PymapServer(ImapAccount):
    """pymap's in-memory backend: one user, state lost when the process ends."""

    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def reset(self) -> None:
        """Empty INBOX and delete every other folder: the session shares this one mailbox."""
        with self.connect() as client:
            for _flags, _sep, name in client.list_folders():
                if str(name).upper() != "INBOX":
                    client.delete_folder(name)
            client.select_folder("INBOX")
            uids = client.search("ALL")
            if uids:
                client.delete_messages(uids)
                client.expunge()


def pymap_command(host: str, port: int, user: str, password: str) -> list[str]:
    """argv that starts pymap's in-memory backend with one user, plain IMAP, IMAP only."""
    return [
        sys.executable, "-c", "import sys; from pymap.main import main; sys.exit(main())",
        "--host", host, "--port", str(port), "--no-tls",
        # Only IMAP: if the optional extras are installed these would open more listeners.
        "--no-service", "admin", "--no-service", "managesieve", "--no-service", "swim",
        "dict", "--demo-user", user, "--demo-password", password,
    ]


@pytest.fixture(scope="session")
def pymap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PymapServer]:
    pytest.importorskip("pymap", reason="pymap is not installed: pip install -e '.[test]'")
    port = free_port()
    log_path = tmp_path_factory.mktemp("pymap") / "pymap.log"
    server = PymapServer(LOOPBACK, port, "complaints", "pymap-secret", log_path=log_path)
    with open(log_path, "wb") as log:
        server.process = subprocess.Popen(
            pymap_command(LOOPBACK, port, server.user, server.password),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def check_alive() -> None:
        assert server.process is not None
        if server.process.poll() is not None:
            raise RuntimeError(f"pymap exited with {server.process.returncode}: "
                               f"{log_path.read_text(errors='replace')}")

    try:
        wait_for_port(LOOPBACK, port, 30.0, check_alive)
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


# --------------------------------------------------------------------------------------------
# SMTP


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class SmtpSink:
    """aiosmtpd in a thread that records each accepted envelope and can inject failures.

    `deliver_to`, when set to a DovecotServer, also APPENDs each accepted mail (with a
    Return-Path header, as a delivery agent adds) to the INBOX of the Dovecot user named by
    each recipient's local part; a mail is recorded only after it was delivered, so
    `wait_for` returning means the mail can be read over IMAP.
    """

    def __init__(self, host: str = LOOPBACK, port: int | None = None,
                 deliver_to: DovecotServer | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.deliver_to = deliver_to
        self._received: list[ReceivedMail] = []
        self._changed = threading.Condition()
        # An entry None lets one command pass (fail_next's `after`).
        self._failures: dict[str, list[tuple[int, str] | None]] = {
            "mail": [], "rcpt": [], "data": []}
        self._controller: object | None = None

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again) on the same port."""
        from aiosmtpd.controller import Controller

        if self._controller is not None:
            return
        # A new Controller each time: a stopped one has closed its event loop.
        controller = Controller(_Handler(self), hostname=self.host, port=self.port,
                                enable_SMTPUTF8=True, ready_timeout=10.0)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Close the listener and every open session; the port refuses connections after."""
        if self._controller is not None:
            self._controller.stop()  # type: ignore[attr-defined]
            self._controller = None

    def fail_next(self, code: int, message: str = "Try again later", times: int = 1,
                  at: str = "data", after: int = 0) -> None:
        """Answer `code message` to the next `times` MAIL, RCPT or DATA commands (`at`), once
        `after` more of them were accepted."""
        if at not in self._failures:
            raise ValueError(f"at must be one of {sorted(self._failures)}")
        with self._changed:
            self._failures[at].extend([None] * after + [(code, message)] * times)

    def clear_failures(self) -> None:
        """Forget failures not yet answered: the server accepts everything again."""
        with self._changed:
            for failures in self._failures.values():
                failures.clear()

    def failures_left(self, at: str = "data") -> int:
        """How many injected failures at MAIL, RCPT or DATA have not been answered yet."""
        with self._changed:
            return len(self._failures[at])

    # -- observation ---------------------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedMail]:
        with self._changed:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Block until at least `count` mails were accepted; returns them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._received) >= count, timeout):
                raise AssertionError(f"SMTP sink got {len(self._received)} mail(s) within "
                                     f"{timeout}s, expected {count}")
            return list(self._received)

    # -- called by the handler -------------------------------------------------------------

    def _take_failure(self, at: str) -> str | None:
        with self._changed:
            failure = self._failures[at].pop(0) if self._failures[at] else None
        return f"{failure[0]} {failure[1]}" if failure else None

    def _record(self, mail: ReceivedMail) -> None:
        with self._changed:
            self._received.append(mail)
            self._changed.notify_all()

    def _deliver(self, mail: ReceivedMail) -> None:
        assert self.deliver_to is not None
        sender = mail.mail_from.strip("<>")  # aiosmtpd reports the null sender as "<>"
        delivered = f"Return-Path: <{sender}>\r\n".encode() + mail.content
        for rcpt in mail.rcpt_tos:
            user = rcpt.rsplit("@", 1)[0]
            self.deliver_to.account(user).append("INBOX", [delivered])


class _Handler:
    """aiosmtpd hooks; each returns a status line as aiosmtpd expects."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        failure = self.sink._take_failure("mail")
        if failure:
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        failure = self.sink._take_failure("rcpt")
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        failure = self.sink._take_failure("data")
        if failure:
            return failure
        content = envelope.original_content or envelope.content
        mail = ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(content))
        if self.sink.deliver_to is not None:
            try:
                # imapclient blocks; keep the SMTP loop free for other sessions meanwhile.
                await asyncio.get_running_loop().run_in_executor(None, self.sink._deliver, mail)
            except Exception as exc:  # a test server: report in the reply, do not crash
                return f"451 4.3.0 delivery into Dovecot failed: {exc}"
        self.sink._record(mail)
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    pytest.importorskip("aiosmtpd", reason="aiosmtpd is not installed: pip install -e '.[test]'")
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp_delivering(smtp_server: SmtpSink, dovecot: DovecotServer) -> SmtpSink:
    """`smtp_server` that also delivers each mail into Dovecot (see SmtpSink)."""
    smtp_server.deliver_to = dovecot
    return smtp_server


# --------------------------------------------------------------------------------------------
# PostgreSQL

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _libpq_url(sqlalchemy_url: str) -> str:
    scheme, rest = sqlalchemy_url.split("://", 1)
    return "postgresql://" + rest


def _pg_reachable(url: str) -> str | None:
    """None when `url` connects, else the error text."""
    import psycopg

    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as conn:
            conn.execute("select 1")
        return None
    except psycopg.Error as exc:
        return str(exc).strip()


def _ensure_database(url: str) -> None:
    """Create the URL's database when the server is up but the database is missing."""
    import psycopg

    base, _, name = _libpq_url(url).rpartition("/")
    name = name.split("?", 1)[0]
    with psycopg.connect(f"{base}/postgres", connect_timeout=3, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'create database "{name}"')


def _start_local_postgres() -> None:
    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster"):
        return
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    for version in versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of PostgreSQL (COMPLAINTS_TEST_PG_URL or the local cluster's `test`)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[test]'")
    url = os.environ.get("COMPLAINTS_TEST_PG_URL", DEFAULT_PG_URL)
    error = _pg_reachable(url)
    if error and ("does not exist" in error) and "database" in error:
        _ensure_database(url)
        error = _pg_reachable(url)
    if error and "COMPLAINTS_TEST_PG_URL" not in os.environ:
        _start_local_postgres()
        deadline = time.monotonic() + 30
        while error and time.monotonic() < deadline:
            time.sleep(0.2)  # poll interval while the cluster starts
            error = _pg_reachable(url)
            if error and "does not exist" in error and "database" in error:
                _ensure_database(url)
    if error:
        pytest.skip(f"PostgreSQL not reachable at {url}: {error}. Start it "
                    "(pg_ctlcluster --skip-systemctl-redirect <version> main start) or set "
                    "COMPLAINTS_TEST_PG_URL")
    return url
