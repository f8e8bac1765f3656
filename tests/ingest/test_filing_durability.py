"""Batches filed on SQLite commit without waiting for the disk, and are synced before the server
lets go of their mail (processor.db.durability): against Dovecot and a SQLite file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from processor.db import session_scope
from processor.imap import MailboxConnection
from processor.poller import Poller
from tests.acknowledge.conftest import Desk, opened_desk
from tests.mailgen import make_mails
from tests.servers import DovecotServer, SmtpSink

MAILS = 7
BATCH = 3  # three batches: each is synced before it is moved


@pytest.fixture
def desk(tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
         smtp_delivering: SmtpSink) -> Iterator[Desk]:
    with opened_desk(tmp_path, sqlite_url, dovecot, smtp_delivering,
                     processing={"batch_size": BATCH}) as made:
        yield made


def _poll(desk: Desk) -> None:
    mailbox = desk.runtime.settings.mailboxes[0]
    with MailboxConnection(mailbox) as connection:
        Poller(desk.runtime, mailbox).poll(connection)


def _stored(desk: Desk) -> int:
    with session_scope(desk.runtime.engine) as session:
        return int(session.scalar(text(
            "SELECT count(*) FROM messages WHERE direction = 'in'")) or 0)


def test_only_the_filing_commits_unsynced(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    filing = desk.runtime.filing
    assert filing.engine is not desk.runtime.engine
    for engine, synchronous in ((filing.engine, 1), (desk.runtime.engine, 2)):  # NORMAL, FULL
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == synchronous
    # What make_durable syncs is the write-ahead log that the filing's commits went to.
    desk.deliver(*make_mails(1, seed=5))
    _poll(desk)
    database = Path(str(filing.engine.url.database))
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_ino),
                                                 real_fsync(fd))[1])
    filing.make_durable()
    assert synced == [os.stat(database.with_name(database.name + "-wal")).st_ino]


def test_no_mail_leaves_the_folder_before_its_batch_is_synced(desk: Desk) -> None:
    mails = make_mails(MAILS, seed=11)
    desk.deliver(*mails)
    filing = desk.runtime.filing
    real = filing.make_durable
    # At each sync: how many mails had left the INBOX, and how many were committed.
    seen: list[tuple[int, int]] = []

    def recording() -> None:
        seen.append((MAILS - desk.desk_account.count("INBOX"), _stored(desk)))
        real()

    filing.make_durable = recording  # type: ignore[method-assign]
    _poll(desk)
    assert len(seen) == 3, seen  # one sync per batch, before its move
    # A batch is moved only after a sync that came after its commit: by each sync, no more
    # mails have gone than were committed by the sync before it.
    committed_before = 0
    for moved, committed in seen:
        assert moved <= committed_before, seen
        committed_before = committed
    assert desk.desk_account.count("INBOX") == 0
    assert sorted(desk.desk_account.fetch_all("Processed")) == sorted(mails)


def test_when_the_disk_refuses_the_sync_no_mail_is_moved(desk: Desk) -> None:
    """The disk's refusal is a fault no real server here can be made to show: make_durable
    raises the OSError an fsync gives then."""
    mails = make_mails(MAILS, seed=13)
    desk.deliver(*mails)
    filing = desk.runtime.filing
    real = filing.make_durable

    def refused() -> None:
        raise OSError(5, "Input/output error")

    filing.make_durable = refused  # type: ignore[method-assign]
    with pytest.raises(OSError, match="Input/output error"):
        _poll(desk)
    assert desk.desk_account.count("INBOX") == MAILS  # nothing left the folder
    assert 0 < _stored(desk) <= MAILS

    filing.make_durable = real  # type: ignore[method-assign]
    _poll(desk)
    assert desk.desk_account.count("INBOX") == 0
    assert sorted(desk.desk_account.fetch_all("Processed")) == sorted(mails)
    assert _stored(desk) == MAILS  # filed once, however often it was polled
