"""How many batches the poller fetches ahead of the one it files: four while they are small,
fewer when the batches not yet filed would hold more than MAX_UNFILED_BYTES."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor import poller
from processor.poller import BATCHES_AHEAD, Poller
from tests.acknowledge.conftest import make_desk
from tests.mailgen import make_mails
from tests.servers import DovecotServer, SmtpSink

BATCH = 10
BATCHES = 8


def _fetched_before_each_filing(tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
                                smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp,
                     processing={"batch_size": BATCH, "parse_processes": 0})
    desk.deliver(*make_mails(BATCHES * BATCH))
    fetched: list[int] = []
    seen: list[int] = []
    real_fetch, real_ingest = Poller._fetch, Poller._ingest

    def fetch(self, connection, ctx, sized):  # type: ignore[no-untyped-def]
        if sized is not None:
            fetched.append(len(sized[0]))
        return real_fetch(self, connection, ctx, sized)

    def ingest(self, connection, ctx, batch):  # type: ignore[no-untyped-def]
        seen.append(len(fetched))
        return real_ingest(self, connection, ctx, batch)

    monkeypatch.setattr(Poller, "_fetch", fetch)
    monkeypatch.setattr(Poller, "_ingest", ingest)
    try:
        desk.poll()
        assert sum(fetched) == BATCHES * BATCH and desk.desk_account.count("INBOX") == 0
        return seen
    finally:
        desk.runtime.engine.dispose()
        desk.deployment.close()


def test_four_small_batches_are_fetched_ahead(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _fetched_before_each_filing(tmp_path, sqlite_url, dovecot, smtp_delivering,
                                       monkeypatch)
    assert BATCHES_AHEAD == 4
    assert seen == [5, 6, 7, 8, 8, 8, 8, 8]  # batches fetched when each is filed


def test_fewer_ahead_when_they_would_hold_too_much(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = [len(raw) for raw in make_mails(BATCHES * BATCH)]
    batches = [sum(sizes[i:i + BATCH]) for i in range(0, len(sizes), BATCH)]
    # Room for any two batches not yet filed, never for three.
    bound = max(a + b for a, b in zip(batches, batches[1:], strict=False))
    assert min(a + b + c for a, b, c in zip(batches, batches[1:], batches[2:],
                                             strict=False)) > bound
    monkeypatch.setattr(poller, "MAX_UNFILED_BYTES", bound)
    seen = _fetched_before_each_filing(tmp_path, sqlite_url, dovecot, smtp_delivering,
                                       monkeypatch)
    assert seen == [2, 3, 4, 5, 6, 7, 8, 8]
