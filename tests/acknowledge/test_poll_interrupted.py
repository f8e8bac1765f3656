"""A poll cut off while fetching a batch files the batches it had fetched whole, and nothing
else, leaves no files of the batch it did not file behind in the evidence store, and the next
poll files the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.errors import MailboxUnavailable
from processor.imap import MailboxConnection
from processor.prepare import MIN_PARALLEL_MAILS
from tests.acknowledge.conftest import make_desk
from tests.mailgen import make_mails
from tests.servers import DovecotServer, SmtpSink


def test_a_connection_lost_while_fetching_the_next_batch(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault is injected (a mock): the connection must die exactly while the batch after
    the first is fetched, after the first went to the preparing process, which no real server
    can be made to do on cue."""
    batch = MIN_PARALLEL_MAILS + 6  # large enough to be prepared in a worker process
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_delivering,
                     processing={"batch_size": batch, "parse_processes": 1})
    desk.deliver(*make_mails(2 * batch))
    real_fetch = MailboxConnection.fetch
    calls: list[int] = []

    def fetch(self, uids, sizes=None):  # type: ignore[no-untyped-def]
        calls.append(len(uids))
        if len(calls) == 2:
            raise MailboxUnavailable("connection lost (injected)")
        return real_fetch(self, uids, sizes)

    monkeypatch.setattr(MailboxConnection, "fetch", fetch)
    try:
        desk.poll()
    except MailboxUnavailable:
        pass  # raised or recorded as the mailbox's error: either way nothing was filed
    desk.runtime.preparer.close()  # the preparing process has finished writing
    try:
        assert len(calls) == 2, "the fault was not reached"
        blobs = desk.runtime.store.root
        assert not list(blobs.rglob(".tmp-*")), "files of the unfiled batch were left behind"
        # The first batch was fetched whole before the fault: filed, acknowledged and moved.
        assert len(desk.outbox()) == batch
        assert desk.desk_account.count("INBOX") == batch  # the second: fetched again later
        monkeypatch.setattr(MailboxConnection, "fetch", real_fetch)
        desk.poll()
        assert len(desk.outbox()) == 2 * batch
        assert desk.desk_account.count("INBOX") == 0
    finally:
        desk.runtime.engine.dispose()
        desk.deployment.close()
