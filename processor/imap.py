"""The IMAP edge: one connection to one monitored folder, with library errors mapped to ours.

Everything the poller needs from the server goes through `MailboxConnection`: select a folder
and learn its UIDVALIDITY, list UIDs, fetch mails without setting \\Seen (BODY.PEEK[]), move or
flag them after they are committed locally, and wait for new mail with IDLE.

Mails larger than `fetch_range_bytes` are fetched in ranges of that size
(BODY.PEEK[]<offset.length>) spooled to a temporary file and read back once: a mail fetched
whole is held about three times at once (imaplib's pieces, their join, imapclient's parsed
copy), which for a 41 MB mail is most of the memory `poll --once` needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import io
import logging
import re
import select
import socket
import ssl
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, cast

import imapclient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, IMAPClientReadOnlyError

from processor import __version__
from processor.config import MailboxSettings
from processor.errors import MailboxError, MailboxUnavailable

log = logging.getLogger("processor.imap")

FETCH_BODY = b"BODY[]"
FETCH_BYTES = 2 * 1024 * 1024

CONNECT_TIMEOUT_SECONDS = 30
# Ranges of UIDs in one command (see uid_sets): at most about 12 KB of command line.
UID_SET_RUNS = 1000


def _parts(uids: Sequence[int], sizes: Mapping[int, int], limit: int) -> Iterator[list[int]]:
    """`uids` in order, in parts of at most `limit` bytes (a larger mail is a part alone)."""
    part: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if part and total + size > limit:
            yield part
            part, total = [], 0
        part.append(uid)
        total += size
    if part:
        yield part


@dataclass(frozen=True, slots=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int | None
    exists: int
    # PERMANENTFLAGS as the server announced them; None when it did not (RFC 3501: then
    # every flag is kept).
    permanent_flags: tuple[str, ...] | None = None
    read_only: bool = False  # opened read-only: by EXAMINE, or because the server would not

    def keeps_keyword(self, keyword: str) -> bool:
        """Whether a keyword set on a mail here stays: the server lists it, or `\\*` (any new
        keyword). Exchange keeps no keywords, nor does Dovecot for an account that may not
        change flags (no ACL "w"); both still answer OK to the STORE, and drop it."""
        if self.permanent_flags is None:
            return True
        kept = {flag.lower() for flag in self.permanent_flags}
        return "\\*" in kept or keyword.lower() in kept


@dataclass(frozen=True, slots=True)
class SpooledMail:
    """A mail fetched into a temporary file (MailboxConnection.fetch_spooled); closing it
    removes the file."""

    uid: int
    file: IO[bytes]
    size: int
    sha256: str

    def chunks(self, piece: int = 1024 * 1024) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(piece):
            yield chunk

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> SpooledMail:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class FetchedMail:
    uid: int
    raw: bytes
    size: int


def _without_imaplib_trace(client: imapclient.IMAPClient) -> None:
    """Turn down the trace imapclient asks of imaplib: its debug level 5, sent to the logger
    "imapclient.imaplib" at DEBUG. Printed or not, imaplib builds every message of it first,
    among them the repr() of each response with the mail it fetched, and of a whole FETCH
    response again when it is collected: two thirds of the time spent fetching. At -vv that
    also wrote the mail itself to the log, which nothing else here does. Level 4 keeps, for
    -vv only, the commands and the response lines without the mail they carry."""
    imap = getattr(client, "_imap", None)  # imapclient's imaplib connection
    if imap is not None:
        imap.debug = 4 if logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG) \
            else 0


def _translate(exc: BaseException, action: str) -> Exception:
    if isinstance(exc, ssl.SSLCertVerificationError):
        # Transient like any refused connection (a renewed certificate mends it), but the
        # person reading the log must learn it is the certificate, not the network.
        return MailboxUnavailable(
            f"{action}: the server's certificate is not trusted ({exc.verify_message})",
            hint="set ca_file in the [mailbox.NAME] section to the CA that signed it, or "
                 "verify_certificate = false on a network you trust")
    if isinstance(exc, IMAPClientAbortError | OSError | EOFError | ssl.SSLError) or \
            _SAYS_BYE.search(str(exc)):
        # A BYE is the server closing the connection (RFC 3501 7.1.5), e.g. as it shuts down:
        # imaplib raises it as an abort, but imapclient's IDLE as an unexpected answer.
        return MailboxUnavailable(f"{action}: connection lost ({exc.__class__.__name__}: {exc})")
    return MailboxError(f"{action}: server said {exc}")


_SAYS_BYE = re.compile(r"\*\s+BYE\b", re.IGNORECASE)


def _log_in(client: imapclient.IMAPClient, settings: MailboxSettings) -> None:
    """LOGIN, or AUTHENTICATE PLAIN for a user name or password beyond ASCII.

    LOGIN's strings are 7-bit (imaplib refuses anything else); SASL PLAIN carries UTF-8
    (RFC 4616), which is how a server receives a password such as `pässwörd` or `密码123`.
    """
    if settings.auth == "xoauth2":
        _log_in_with_token(client, settings)
        return
    user, password = settings.user, settings.password()
    if user.isascii() and password.isascii():
        client.login(user, password)
    elif client.has_capability("AUTH=PLAIN"):
        client.plain_login(user, password)
    else:
        raise MailboxError(
            f"logging in to {settings.host}:{settings.port} as {user}: the user name or "
            "password has characters beyond ASCII, which IMAP LOGIN cannot send, and the "
            "server offers no AUTHENTICATE PLAIN",
            hint=f"use an ASCII password for mailbox.{settings.name}, or enable SASL PLAIN "
                 "on the server")
    _identify(client)


def _log_in_with_token(client: imapclient.IMAPClient, settings: MailboxSettings) -> None:
    """AUTHENTICATE XOAUTH2 with a fresh access token (Office 365, Gmail). The token never
    reaches the log: imapclient redacts AUTHENTICATE, and imaplib traces only the length of
    what follows it."""
    where = f"logging in to {settings.host}:{settings.port} as {settings.user}"
    if not client.has_capability("AUTH=XOAUTH2"):
        raise MailboxError(f"{where}: the server offers no AUTHENTICATE XOAUTH2",
                           hint=f'use auth = "password" for mailbox.{settings.name}, or '
                                "check the host and the tls setting (some servers offer it "
                                "only over TLS)")
    token = settings.access_token()
    try:
        client.oauth2_login(settings.user, token)
    except IMAPClientAbortError:
        raise
    except IMAPClientError as exc:
        raise MailboxError(
            f"{where}: the server refused the access token ({exc})",
            hint="run the token command by hand: the token may have expired, or lack the "
                 "IMAP scope (Office 365: https://outlook.office.com/IMAP.AccessAsUser.All; "
                 "Gmail: https://mail.google.com/), or belong to another user") from None
    _identify(client)


def _identify(client: imapclient.IMAPClient) -> None:
    """Name the client with ID (RFC 2971) where the server offers it, as mail clients do.

    NetEase's servers (163.com, 126.com, yeah.net and their enterprise mail) refuse SELECT
    with "Unsafe Login" to a client that has not; others log it. A server that rejects the
    command is no reason to stop: the next step says whether the mailbox can be used.
    """
    if not client.has_capability("ID"):
        return
    try:
        client.id_({"name": "complaint-processor", "version": __version__})
    except IMAPClientAbortError:
        raise
    except IMAPClientError as exc:
        log.debug("the server did not accept our ID command: %s", exc)


def uid_sets(uids: Iterable[int], max_runs: int = UID_SET_RUNS) -> Iterator[list[str]]:
    """UIDs as IMAP sequence sets, each run of consecutive UIDs as one range ([1, 2, 3, 5] is
    "1:3,5"), at most `max_runs` runs to a set, i.e. to a command.

    Listed one by one, the UIDs of a long backlog made a command line longer than servers
    accept (Dovecot's limit is 64 KB, about 10,000 UIDs): a move of all the filed mail a
    refusing server had left in the folder was then refused for good. A range never spans a
    gap, where a mail that is not ours (marked deleted, or flagged) may sit."""
    runs: list[str] = []
    first = last = -1
    for uid in sorted(set(uids)):
        if uid == last + 1 and first >= 0:
            last = uid
            continue
        if first >= 0:
            runs.append(f"{first}:{last}" if last != first else str(first))
        first = last = uid
    if first >= 0:
        runs.append(f"{first}:{last}" if last != first else str(first))
    for start in range(0, len(runs), max_runs):
        yield runs[start:start + max_runs]


class MailboxConnection:
    """A logged-in IMAP session for one configured mailbox."""

    def __init__(self, settings: MailboxSettings) -> None:
        self.settings = settings
        self.client: imapclient.IMAPClient | None = None
        self.folder: str | None = None
        self._paths: dict[str, str] = {}  # configured folder name -> its name on the server

    # -- connection -------------------------------------------------------------------------
    def connect(self) -> MailboxConnection:
        s = self.settings
        try:
            context = self._ssl_context()
            client = imapclient.IMAPClient(
                s.host, port=s.port, ssl=s.tls == "implicit", ssl_context=context,
                timeout=CONNECT_TIMEOUT_SECONDS,
            )
            try:
                _without_imaplib_trace(client)
                if s.tls == "starttls":
                    client.starttls(context)
                _log_in(client, s)
            except BaseException:
                with contextlib.suppress(OSError):  # a refused login leaves no open socket
                    client.shutdown()
                raise
        except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, f"connecting to {s.host}:{s.port} as {s.user}") from None
        self.client = client
        return self

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.settings.tls == "none":
            return None
        context = ssl.create_default_context(cafile=self.settings.ca_file or None)
        if not self.settings.verify_certificate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.logout()
        except (IMAPClientError, OSError, EOFError, ssl.SSLError):
            try:
                client.shutdown()
            except OSError:
                pass

    def __enter__(self) -> MailboxConnection:
        return self.connect() if self.client is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _client(self) -> imapclient.IMAPClient:
        if self.client is None:
            raise MailboxUnavailable("not connected")
        return self.client

    def has_capability(self, name: str) -> bool:
        return bool(self._client.has_capability(name))

    # -- folders ----------------------------------------------------------------------------
    def ensure_folder(self, folder: str) -> str:
        """Make sure the configured folder exists; returns its name on this server.

        On servers whose folders all live under a personal namespace prefix (`INBOX.` on
        cPanel, Courier, Cyrus) a top-level "Processed" cannot exist: it is made there, as mail
        clients do, and `move` and `append` use that name from then on.
        """
        client = self._client
        path = folder
        try:
            if folder.upper() != "INBOX" and not client.folder_exists(folder):
                path = self._under_personal_namespace(folder)
                if path == folder or not client.folder_exists(path):
                    client.create_folder(path)
        except (IMAPClientAbortError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, f"creating folder {folder!r}") from None
        except IMAPClientError as exc:
            # Another worker may have created it between the two calls. (Not asked on a
            # connection already lost: the question would fail untranslated.)
            if not client.folder_exists(path):
                raise _translate(exc, f"creating folder {path!r}") from None
        if path != folder:
            log.debug("folder %r is %r on this server", folder, path)
        self._paths[folder] = path
        return path

    def _under_personal_namespace(self, folder: str) -> str:
        """`folder` with the server's personal namespace prefix, unless it has it or there is
        none (RFC 2342; most servers have an empty prefix)."""
        client = self._client
        if not client.has_capability("NAMESPACE"):
            return folder
        personal = client.namespace().personal
        prefix = personal[0][0] if personal else ""
        if prefix and not folder.upper().startswith(prefix.upper()):
            return prefix + folder
        return folder

    def select(self, folder: str, readonly: bool = False) -> FolderStatus:
        """Select the monitored folder (EXAMINE with `readonly`); "Complaints" is also found as
        "INBOX.Complaints" on a server that keeps every folder under that prefix (see
        ensure_folder). A folder the server opens read-only (the account may read it, not
        change it: a shared mailbox) is opened so, and its status says it is."""
        read_only = readonly
        try:
            try:
                info = self._select(folder, readonly)
            except IMAPClientReadOnlyError:  # imaplib's SELECT answered OK [READ-ONLY]
                info, read_only = self._select(folder, True), True
        except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, f"selecting {folder!r}") from None
        self.folder = folder
        permanent = info.get(b"PERMANENTFLAGS")
        return FolderStatus(
            uidvalidity=int(info[b"UIDVALIDITY"]),
            uidnext=int(info[b"UIDNEXT"]) if b"UIDNEXT" in info else None,
            exists=int(info.get(b"EXISTS", 0)),
            permanent_flags=None if permanent is None else tuple(
                flag.decode("ascii", "replace") if isinstance(flag, bytes) else str(flag)
                for flag in permanent),
            read_only=read_only,
        )

    def _select(self, folder: str, readonly: bool) -> dict:  # type: ignore[type-arg]
        try:
            return self._client.select_folder(folder, readonly=readonly)  # type: ignore[no-any-return]
        except IMAPClientAbortError:
            raise
        except IMAPClientError:
            path = self._under_personal_namespace(folder)
            if path == folder or not self._client.folder_exists(path):
                raise
            return self._client.select_folder(path, readonly=readonly)  # type: ignore[no-any-return]

    # -- reading ----------------------------------------------------------------------------
    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than last_uid, ascending. (`n:*` also matches the highest UID when
        every UID is below n, so the result is filtered.)"""
        return [u for u in self._search(["UID", f"{last_uid + 1}:*"]) if u > last_uid]

    def uids_up_to(self, last_uid: int, unflagged: str | None = None) -> list[int]:
        """UIDs at or below last_uid still in the folder and not marked \\Deleted
        (optionally also without a keyword).

        A marked mail is on its way out: on a server without UIDPLUS that is how `move`
        leaves what it copied, and taking it again would copy it again at every poll."""
        if last_uid <= 0:
            return []
        criteria: list[str] = ["UID", f"1:{last_uid}", "UNDELETED"]
        if unflagged:
            criteria += ["UNKEYWORD", unflagged]
        return [u for u in self._search(criteria) if u <= last_uid]

    def _search(self, criteria: list[str]) -> list[int]:
        try:
            return sorted(int(u) for u in self._client.search(criteria))
        except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, "searching") from None

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        if not uids:
            return {}
        try:
            data = self._client.fetch(list(uids), [b"RFC822.SIZE"])
        except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, "fetching sizes") from None
        return {int(uid): int(item.get(b"RFC822.SIZE", 0)) for uid, item in data.items()}

    def fetch(self, uids: Sequence[int],
              sizes: Mapping[int, int] | None = None) -> Iterator[FetchedMail]:
        """Fetch whole mails with BODY.PEEK[] so nothing is marked \\Seen as a side effect.

        Mails that are gone by the time they are fetched (expunged by someone else) are left
        out. Those over `fetch_range_bytes` are fetched in ranges, one after the other, as the
        iterator reaches them; the others with one FETCH, now. `sizes`: the mails' sizes when
        the caller has asked for them already (asked here otherwise).
        """
        if not uids:
            return iter(())
        piece = self.settings.fetch_range_bytes
        known = sizes if sizes is not None and all(u in sizes for u in uids) \
            else self.sizes(uids)
        large = {uid: known[uid] for uid in uids if 0 < piece < known.get(uid, 0)}
        data: dict = {}  # type: ignore[type-arg]
        # A FETCH response is held about three times over while imaplib reads it and
        # imapclient parses it: asked for in parts of about FETCH_BYTES, that stays small.
        for part in _parts([u for u in uids if u not in large], known, FETCH_BYTES):
            try:
                # Not INTERNALDATE: nothing reads it, and imapclient parsing it into a
                # datetime cost a third of the fetch's time in the filing process.
                data.update(self._client.fetch(part, [b"BODY.PEEK[]", b"RFC822.SIZE"]))
            except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
                raise _translate(exc, "fetching mail") from None
        return self._fetched(uids, data, large, piece)

    def _fetched(self, uids: Sequence[int], data: dict,  # type: ignore[type-arg]
                 large: dict[int, int], piece: int) -> Iterator[FetchedMail]:
        for uid in uids:
            if uid in large:
                mail = self._fetch_in_ranges(uid, large[uid], piece)
                if mail is not None:
                    yield mail
                continue
            item = data.pop(uid, None)
            # Gone meanwhile: no answer, or (Dovecot, before it reports the EXPUNGE) NIL.
            if item is None or item.get(FETCH_BODY) is None:
                continue
            raw = item[FETCH_BODY]
            yield FetchedMail(uid=uid, raw=raw, size=int(item.get(b"RFC822.SIZE", len(raw))))

    def _fetch_in_ranges(self, uid: int, size: int, piece: int) -> FetchedMail | None:
        """One mail in ranges of `piece` bytes; None when it disappeared on the way."""
        with tempfile.TemporaryFile(prefix="complaints-fetch-") as spool:
            if self._spool(uid, size, piece, spool) is None:
                return None
            spool.seek(0)
            raw = spool.read()  # one bytes object of the file's size, read into in place
        return FetchedMail(uid=uid, raw=raw, size=size)

    def fetch_spooled(self, uid: int) -> SpooledMail | None:
        """One mail, in ranges, into a temporary file, hashed on the way: for a mail too large
        to be held (one over the size limit, kept unparsed), which is then never in memory
        whole. None when it is gone. The caller closes it (the file is then removed)."""
        size = self.sizes([uid]).get(uid)
        if size is None:
            return None
        spool = tempfile.TemporaryFile(prefix="complaints-fetch-")
        try:
            digest = hashlib.sha256()
            length = self._spool(uid, size, self.settings.fetch_range_bytes or FETCH_BYTES,
                                 spool, digest)
        except BaseException:
            spool.close()
            raise
        if length is None:
            spool.close()
            return None
        return SpooledMail(uid, spool, length, digest.hexdigest())

    def _spool(self, uid: int, size: int, piece: int, spool: IO[bytes],
               digest: hashlib._Hash | None = None) -> int | None:
        """Write one mail to `spool` in ranges of `piece` bytes; its length, or None when it
        disappeared on the way.

        The end is where the server returns less than was asked for, not the size reported
        before: a mail is never cut short to a size someone said. Each range also asks for
        RFC822.SIZE, so a mail that vanished (NIL, or no answer) or whose size changed between
        ranges is never returned as a stitched or truncated mail.
        """
        offset = 0
        while True:
            items = [f"BODY.PEEK[]<{offset}.{piece}>".encode(), b"RFC822.SIZE"]
            try:
                item = self._client.fetch([uid], items).get(uid)
            except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
                raise _translate(exc, f"fetching uid {uid} at byte {offset}") from None
            chunk = item.get(b"BODY[]<%d>" % offset) if item is not None else None
            if chunk is None:
                log.warning("%s: uid %s disappeared while it was being fetched (at byte %d "
                            "of %d); left out", self.folder, uid, offset, size)
                return None
            reported = int(item.get(b"RFC822.SIZE", size))  # type: ignore[union-attr]
            if reported != size or len(chunk) > piece:
                raise MailboxError(
                    f"uid {uid} in {self.folder!r} changed while it was being fetched "
                    f"(size {size}, now {reported}; {len(chunk)} bytes for a range of "
                    f"{piece}); not filed, the next poll fetches it again")
            spool.write(chunk)
            if digest is not None:
                digest.update(chunk)
            offset += len(chunk)
            if len(chunk) < piece:
                break
            del chunk, item
        if offset != size:
            log.warning("%s: uid %s has %d bytes, the server said %d", self.folder, uid,
                        offset, size)
        return offset

    # -- acting on committed mail ---------------------------------------------------------------
    def move(self, uids: Iterable[int], folder: str) -> None:
        """Move UIDs to another folder: MOVE where advertised, else COPY + \\Deleted + UID EXPUNGE.

        Without UIDPLUS we only mark the copies \\Deleted: a plain EXPUNGE would also remove
        mail that somebody else marked deleted, which is not ours to remove.
        """
        client = self._client
        folder = self._paths.get(folder, folder)
        count = len(set(uids := list(uids)))
        try:
            for uid_set in uid_sets(uids):
                if client.has_capability("MOVE"):
                    client.move(uid_set, folder)
                    continue
                client.copy(uid_set, folder)
                client.add_flags(uid_set, [imapclient.DELETED], silent=True)
                if client.has_capability("UIDPLUS"):
                    client.uid_expunge(uid_set)
        except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, f"moving {count} mails to {folder!r}") from None

    def add_keyword(self, uids: Iterable[int], keyword: str) -> None:
        count = len(set(uids := list(uids)))
        try:
            for uid_set in uid_sets(uids):
                self._client.add_flags(uid_set, [keyword.encode()], silent=True)
        except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, f"flagging {count} mails") from None

    def append(self, folder: str, raw: bytes, flags: Sequence[bytes] = ()) -> None:
        folder = self._paths.get(folder, folder)
        try:
            self._client.append(folder, raw, flags=list(flags))
        except (IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, f"appending to {folder!r}") from None

    # -- waiting ----------------------------------------------------------------------------
    def wait_for_change(self, timeout: float, stop_check_seconds: float = 1.0,
                        should_stop: object = None) -> bool:
        """IDLE until the server reports a change or `timeout` passes; True when it changed.

        IDLE is re-issued by the caller well before the 29-minute limit of RFC 2177.
        `should_stop` (a callable) is consulted every `stop_check_seconds` so SIGTERM is
        honoured promptly while idling.
        """
        client = self._client
        imap, sock = client._imap, client.socket()
        deadline = time.monotonic() + timeout
        try:
            client.idle()
            try:
                while (remaining := deadline - time.monotonic()) > 0:
                    step = min(stop_check_seconds, remaining)
                    # Not imapclient's idle_check: it reads in non-blocking mode and fails on a
                    # response line that arrives in two pieces (imapclient issue #519), as
                    # pymap's `* 1 FETCH (` and the rest can. We read whole lines instead.
                    line = _next_idle_line(imap, sock, step)
                    if line is not None and _is_change(line):
                        return True
                    if callable(should_stop) and should_stop():
                        return False
                return False
            finally:
                client.idle_done()
        except (TimeoutError, IMAPClientError, OSError, EOFError, ssl.SSLError) as exc:
            raise _translate(exc, "waiting with IDLE") from None


def _next_idle_line(imap: imaplib.IMAP4, sock: socket.socket, wait_seconds: float) -> bytes | None:
    """The next whole line the server sends while idling, or None if none begins in time.

    Once a line has begun, the rest is read blocking, bounded by the connection's read timeout:
    a server that stops halfway through a line is a lost connection, not a quiet one.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        begun = _line_has_begun(imap, sock)
        if begun is None:
            raise EOFError("the server closed the connection while idling")
        if begun:
            line: bytes = imap.readline()
            if not line.endswith(b"\n"):
                raise EOFError("the server closed the connection in the middle of a line")
            return line
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return None


def _line_has_begun(imap: imaplib.IMAP4, sock: socket.socket) -> bool | None:
    """Whether input waits, read or buffered, without blocking; None when the server closed.

    imaplib reads through a buffered file, so bytes can wait there that `select` on the socket
    cannot see. Looking takes a non-blocking peek, which consumes nothing.
    """
    previous = sock.gettimeout()
    sock.setblocking(False)
    try:
        try:
            if cast(io.BufferedReader, imap.file).peek(1):
                return True
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False  # TLS: nothing decrypted yet (maybe a record that held no data)
        if isinstance(sock, ssl.SSLSocket):
            return None  # a TLS read that neither blocked nor gave data met the end
        # A plain socket's empty peek means "would block" and "closed" alike; ask the socket.
        try:
            return None if sock.recv(1, socket.MSG_PEEK) == b"" else True
        except BlockingIOError:
            return False
    finally:
        sock.settimeout(previous)


def _is_change(line: bytes) -> bool:
    """Whether an untagged line reports new, changed or removed mail (`* 12 EXISTS`)."""
    words = line.split(None, 3)
    return (len(words) >= 3 and words[0] == b"*"
            and words[2].upper() in (b"EXISTS", b"RECENT", b"EXPUNGE", b"FETCH"))
