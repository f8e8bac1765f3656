"""Large mails: fetched from Dovecot in ranges, stored byte for byte, and never stitched wrongly
or cut short when the mail disappears or changes while it is being fetched."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from processor.blobstore import BlobStore
from processor.config import MailboxSettings, settings_from_mapping
from processor.errors import ConfigError, MailboxError
from processor.imap import MailboxConnection
from processor.mail import parse_message
from tests.deployment import Deployment
from tests.servers import ImapAccount

PASSWORD_ENV = "COMPLAINTS_TEST_LARGE_MAIL_PASSWORD"
PIECE = 1024 * 1024


def large_mail(attachment: bytes, tag: str, padding: int = 0) -> bytes:
    """A complaint with one base64 attachment; `padding` spaces lengthen the text part."""
    boundary = "=_large"
    head = (
        f"From: Big Sender <big-{tag}@customer.example>\r\nTo: complaints@example.com\r\n"
        f"Subject: recording {tag}\r\nMessage-ID: <large-{tag}@customer.example>\r\n"
        "Date: Mon, 02 Nov 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"The recording of the call is attached.{' ' * padding}\r\n"
        f"--{boundary}\r\nContent-Type: video/mp4; name=\"call.mp4\"\r\n"
        'Content-Disposition: attachment; filename="call.mp4"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    body = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return head + body + f"\r\n--{boundary}--\r\n".encode()


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def connect(account: ImapAccount, monkeypatch: pytest.MonkeyPatch,
            piece: int) -> MailboxConnection:
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    settings = MailboxSettings(name="complaints", host=account.host, port=account.port,
                               tls="none", user=account.user, password_env=PASSWORD_ENV,
                               addresses=("complaints@example.com",), fetch_range_bytes=piece)
    return MailboxConnection(settings).connect()


@pytest.fixture
def connection(imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[MailboxConnection]:
    """A connection that fetches mails over PIECE bytes in ranges of PIECE."""
    with connect(imap_account, monkeypatch, PIECE) as conn:
        yield conn


def deliver(account: ImapAccount, conn: MailboxConnection, raws: list[bytes]) -> None:
    """Append, then select: the session then knows the new mails, as after the poller's SEARCH."""
    account.append("INBOX", raws)
    conn.select("INBOX")


def record_fetches(conn: MailboxConnection,
                   after: Callable[[list[bytes], dict], dict] | None = None  # type: ignore[type-arg]
                   ) -> list[list[bytes]]:
    """Record the items of every FETCH the connection sends; `after` may alter the answer
    (the fault injected) or act on the server between two ranges."""
    client = conn.client
    assert client is not None
    original = client.fetch
    calls: list[list[bytes]] = []

    def fetch(messages, data, modifiers=None):  # type: ignore[no-untyped-def]
        items = [bytes(d) for d in data]
        calls.append(items)
        answer = original(messages, data, modifiers)
        return after(items, answer) if after else answer

    client.fetch = fetch  # type: ignore[method-assign]
    return calls


def ranges(calls: list[list[bytes]]) -> list[bytes]:
    return [item for items in calls for item in items if item.startswith(b"BODY.PEEK[]<")]


def test_a_12_mb_mail_polled_in_ranges_is_stored_byte_identical(
    tmp_path: Path, sqlite_url: str, imap_account: ImapAccount
) -> None:
    attachment = random_bytes(9 * 1024 * 1024, seed=12)
    raw = large_mail(attachment, "twelve")
    assert len(raw) > 12_000_000 and len(raw) % PIECE != 0
    dep = Deployment(tmp_path, sqlite_url,
                     {"complaints": (imap_account, ["complaints@example.com"])}).write()
    # The smallest sensible ranges, so this mail takes a dozen of them.
    dep.config_path.write_text(dep.config_path.read_text() + f"fetch_range_bytes = {PIECE}\n")
    dep.upgrade()
    imap_account.append("INBOX", [raw])

    result = dep.command(["poll", "--once"], imap_account.password)

    assert "fetched 1, stored 1" in result.stdout
    raw_sha = hashlib.sha256(raw).hexdigest()
    assert dep.scalar("SELECT raw_sha256 FROM messages WHERE direction = 'in'") == raw_sha
    assert dep.scalar("SELECT size FROM messages WHERE direction = 'in'") == len(raw)
    store = BlobStore(tmp_path / "data" / "blobs")
    assert hashlib.sha256(store.get(raw_sha)).hexdigest() == raw_sha
    attachment_sha = hashlib.sha256(attachment).hexdigest()
    assert dep.scalar("SELECT sha256 FROM attachments") == attachment_sha
    assert dep.scalar("SELECT size FROM attachments") == len(attachment)
    stored_name = str(dep.scalar("SELECT stored_name FROM attachments"))
    assert store.get(stored_name) == attachment
    assert imap_account.count("INBOX") == 0 and imap_account.count("Processed") == 1
    with imap_account.connect() as client:  # fetched with BODY.PEEK: still unread
        client.select_folder("Processed", readonly=True)
        assert [b"\\Seen" in flags for flags in client.get_flags(client.search("ALL")).values()] \
            == [False]
    dep.close()


def test_a_mail_over_the_size_limit_is_kept_byte_identical_through_a_spool_file(
    tmp_path: Path, sqlite_url: str, imap_account: ImapAccount
) -> None:
    """Over `max_message_bytes`, a mail is quarantined unparsed: its bytes go from the server
    to the blob store through a temporary file, range by range (peak memory: benchmarks)."""
    raw = large_mail(random_bytes(9 * 1024 * 1024, seed=13), "over")
    dep = Deployment(tmp_path, sqlite_url,
                     {"complaints": (imap_account, ["complaints@example.com"])},
                     processing={"max_message_bytes": 2 * PIECE}).write()
    dep.config_path.write_text(dep.config_path.read_text() + f"fetch_range_bytes = {PIECE}\n")
    dep.upgrade()
    imap_account.append("INBOX", [raw, large_mail(b"small", "small")])

    result = dep.command(["poll", "--once"], imap_account.password)

    assert "fetched 2, stored 1, duplicates 0, ignored 0, quarantined 1" in result.stdout
    raw_sha = hashlib.sha256(raw).hexdigest()
    assert dep.scalar("SELECT raw_sha256 FROM quarantine") == raw_sha
    assert dep.scalar("SELECT size FROM quarantine") == len(raw)
    assert dep.command_bytes(["quarantine", "show", "1", "--raw"], imap_account.password) == raw
    assert imap_account.count("Quarantine") == 1 and imap_account.count("Processed") == 1
    assert not list(Path(tmp_path / "data" / "blobs").rglob(".tmp-*"))
    dep.close()


def test_a_spooled_mail_is_the_servers_bytes_and_vanishes_with_its_file(
    imap_account: ImapAccount, connection: MailboxConnection
) -> None:
    raw = large_mail(random_bytes(3 * PIECE, seed=14), "spooled")
    deliver(imap_account, connection, [raw, large_mail(random_bytes(3 * PIECE, seed=15), "gone")])
    calls = record_fetches(connection)

    with connection.fetch_spooled(1) as spooled:  # type: ignore[union-attr]
        assert (spooled.uid, spooled.size) == (1, len(raw))
        assert spooled.sha256 == hashlib.sha256(raw).hexdigest()
        assert b"".join(spooled.chunks(100_000)) == raw
        assert all(len(piece) <= PIECE for piece in spooled.chunks(PIECE))
        name = spooled.file.name
    assert spooled.file.closed and len(ranges(calls)) == len(raw) // PIECE + 1  # in ranges
    assert isinstance(name, int)  # an unnamed temporary file: nothing left on disk

    def expunge_after_first_range(items: list[bytes], answer: dict) -> dict:  # type: ignore[type-arg]
        if f"BODY.PEEK[]<0.{PIECE}>".encode() in items:
            imap_account.expunge("INBOX", [2])
        return answer

    record_fetches(connection, expunge_after_first_range)
    assert connection.fetch_spooled(2) is None
    assert connection.fetch_spooled(99) is None


def test_ranges_cover_the_mail_exactly_also_when_it_ends_on_a_range_boundary(
    imap_account: ImapAccount, connection: MailboxConnection
) -> None:
    small = large_mail(b"small", "small")
    uneven = large_mail(random_bytes(2 * PIECE, seed=1), "uneven")
    base = large_mail(random_bytes(2 * PIECE, seed=2), "even")
    # Lengthen the text part until the mail is exactly three ranges long.
    even = large_mail(random_bytes(2 * PIECE, seed=2), "even", padding=3 * PIECE - len(base))
    assert len(even) == 3 * PIECE and len(uneven) % PIECE != 0
    deliver(imap_account, connection, [uneven, small, even])
    calls = record_fetches(connection)

    fetched = list(connection.fetch([1, 2, 3]))

    assert [m.uid for m in fetched] == [1, 2, 3]
    assert [m.raw for m in fetched] == [uneven, small, even]
    assert [m.size for m in fetched] == [len(uneven), len(small), len(even)]
    # The small mail came whole; each large one in ranges of PIECE bytes, asked for in order
    # (the even one with a last, empty range that says it ended).
    assert ranges(calls) == [f"BODY.PEEK[]<{offset}.{PIECE}>".encode()
                             for offset in [*range(0, len(uneven), PIECE),
                                            *range(0, len(even) + 1, PIECE)]]
    assert [b"BODY.PEEK[]", b"RFC822.SIZE"] in calls
    # Nothing reads a mail's INTERNALDATE: it is not asked for (imapclient parsing it was a
    # third of a fetch's time).
    assert not [c for c in calls if b"INTERNALDATE" in c]


def test_whole_mails_are_asked_for_in_parts_of_about_fetch_bytes(
    imap_account: ImapAccount, connection: MailboxConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FETCH response is held about three times over while it is read: a batch of many
    mid-sized mails is asked for in parts, so that stays small; the mails come in order."""
    monkeypatch.setattr("processor.imap.FETCH_BYTES", 3 * 1024)
    mails = [large_mail(random_bytes(1024, seed=10 + i), f"part{i}") for i in range(5)]
    deliver(imap_account, connection, mails)
    sizes = {uid: len(raw) for uid, raw in enumerate(mails, 1)}
    calls = record_fetches(connection)

    fetched = list(connection.fetch([1, 2, 3, 4, 5], sizes))

    assert [m.raw for m in fetched] == mails
    whole = [c for c in calls if c == [b"BODY.PEEK[]", b"RFC822.SIZE"]]
    assert len(whole) >= 2, "the batch was fetched in one response"
    assert [b"RFC822.SIZE"] not in calls  # the sizes given were used, not asked again


def test_a_mail_expunged_between_two_ranges_is_left_out_not_cut_short(
    imap_account: ImapAccount, connection: MailboxConnection
) -> None:
    deliver(imap_account, connection, [large_mail(random_bytes(3 * PIECE, seed=3), "gone"),
                                       large_mail(b"stays", "stays")])

    def expunge_after_first_range(items: list[bytes], answer: dict) -> dict:  # type: ignore[type-arg]
        if f"BODY.PEEK[]<0.{PIECE}>".encode() in items:
            imap_account.expunge("INBOX", [1])
        return answer

    calls = record_fetches(connection, expunge_after_first_range)

    fetched = list(connection.fetch([1, 2]))

    assert [m.uid for m in fetched] == [2]  # the other mail of the batch still comes
    assert len(ranges(calls)) == 2  # the second range found the mail gone
    assert imap_account.uids("INBOX") == [2]


def test_a_mail_expunged_after_its_size_was_read_is_left_out(
    imap_account: ImapAccount, connection: MailboxConnection
) -> None:
    deliver(imap_account, connection, [large_mail(random_bytes(2 * PIECE, seed=4), "early")])

    def expunge_after_size(items: list[bytes], answer: dict) -> dict:  # type: ignore[type-arg]
        if items == [b"RFC822.SIZE"]:
            assert answer[1][b"RFC822.SIZE"] > PIECE
            imap_account.expunge("INBOX", [1])
        return answer

    calls = record_fetches(connection, expunge_after_size)

    assert list(connection.fetch([1])) == []
    assert len(ranges(calls)) == 1


def test_a_mail_expunged_just_before_a_whole_fetch_is_left_out(
    imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    with connect(imap_account, monkeypatch, 0) as whole:
        deliver(imap_account, whole, [large_mail(b"small", "small"), large_mail(b"too", "too")])
        imap_account.expunge("INBOX", [1])

        # Dovecot answers NIL for the body of a mail expunged by another session until it has
        # told this one: that is no mail, not an empty one.
        assert [m.uid for m in whole.fetch([1, 2])] == [2]


def test_a_mail_whose_size_changes_between_ranges_is_refused(
    imap_account: ImapAccount, connection: MailboxConnection
) -> None:
    deliver(imap_account, connection, [large_mail(random_bytes(3 * PIECE, seed=5), "changed")])
    seen: list[int] = []

    def report_another_size(items: list[bytes], answer: dict) -> dict:  # type: ignore[type-arg]
        # Fault injected: IMAP mails are immutable, but a broken server or proxy is not.
        if any(item.startswith(b"BODY.PEEK[]<") for item in items):
            seen.append(1)
            if len(seen) == 2:
                answer[1][b"RFC822.SIZE"] -= 1000
        return answer

    record_fetches(connection, report_another_size)

    with pytest.raises(MailboxError, match="changed while it was being fetched"):
        list(connection.fetch([1]))


def test_fetch_range_bytes_is_zero_or_a_sensible_size() -> None:
    mailbox = {"host": "127.0.0.1", "tls": "none", "addresses": ["c@example.com"]}
    assert settings_from_mapping({"mailbox": {"c": mailbox}}).mailboxes[0].fetch_range_bytes \
        == 4 * 1024 * 1024
    whole = settings_from_mapping({"mailbox": {"c": {**mailbox, "fetch_range_bytes": 0}}})
    assert whole.mailboxes[0].fetch_range_bytes == 0
    with pytest.raises(ConfigError, match="fetch_range_bytes"):
        settings_from_mapping({"mailbox": {"c": {**mailbox, "fetch_range_bytes": 100}}})


def test_a_large_attachment_is_stored_from_its_pieces_as_put_would_store_it(
    tmp_path: Path
) -> None:
    data = random_bytes(3 * PIECE, seed=6)
    (attachment,) = parse_message(large_mail(data, "pieces")).attachments
    streamed, whole = BlobStore(tmp_path / "streamed"), BlobStore(tmp_path / "whole")
    name = streamed.put_stream(attachment.chunks(), attachment.sha256, attachment.size)
    assert name == whole.put(attachment.payload) == hashlib.sha256(data).hexdigest()
    streamed.sync()
    assert streamed.get(name) == data


def test_put_stream_stages_nothing_for_wrong_bytes_and_decodes_nothing_for_known_ones(
    tmp_path: Path
) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(ValueError, match="hash to"):
        store.put_stream([b"not ", b"these"], hashlib.sha256(b"evidence").hexdigest(), 8)
    assert not store.exists(hashlib.sha256(b"evidence").hexdigest())
    assert not list(tmp_path.rglob(".tmp-*"))
    digest = store.put_stream(iter([b"evi", b"dence"]), hashlib.sha256(b"evidence").hexdigest(), 8)
    store.sync()
    assert store.get(digest) == b"evidence"

    def never() -> Iterator[bytes]:
        raise AssertionError("a stored blob was decoded again")
        yield b""

    assert store.put_stream(never(), digest, 8) == digest
