"""How many batches the poller fetches ahead of the one it files: four while they are small,
fewer when the batches not yet filed would hold more than MAX_UNFILED_BYTES."""

from __future__ import annotations

import threading
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
                                smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch,
                                ahead: int) -> tuple[list[int], int]:
    """How many batches were fetched when each was filed, and the most ever fetched and not
    yet filed. The batches are fetched on the connection's own thread while others are
    filed: before filing each, this waits (on the fetches, not on the clock) until the
    `ahead` batches after it are fetched; a poller that fetches fewer ahead makes it time out."""
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp,
                     processing={"batch_size": BATCH, "parse_processes": 0})
    desk.deliver(*make_mails(BATCHES * BATCH))
    fetched: list[int] = []
    seen: list[int] = []
    filed = 0
    most_unfiled = 0
    changed = threading.Condition()
    real_fetch, real_ingest = Poller._fetch, Poller._ingest

    def fetch(self, connection, ctx, sized):  # type: ignore[no-untyped-def]
        nonlocal most_unfiled
        with changed:
            fetched.append(len(sized[0]))
            most_unfiled = max(most_unfiled, len(fetched) - filed)
            changed.notify_all()
        return real_fetch(self, connection, ctx, sized)

    def ingest(self, connection, ctx, batch):  # type: ignore[no-untyped-def]
        nonlocal filed
        with changed:
            wanted = min(filed + 1 + ahead, BATCHES)
            assert changed.wait_for(lambda: len(fetched) >= wanted, timeout=30), (
                f"filing batch {filed + 1}: only {len(fetched)} fetched, {wanted} expected")
            seen.append(len(fetched))
        outcomes = real_ingest(self, connection, ctx, batch)
        with changed:
            filed += 1
        return outcomes

    monkeypatch.setattr(Poller, "_fetch", fetch)
    monkeypatch.setattr(Poller, "_ingest", ingest)
    try:
        desk.poll()
        assert sum(fetched) == BATCHES * BATCH and desk.desk_account.count("INBOX") == 0
        return seen, most_unfiled
    finally:
        desk.runtime.engine.dispose()
        desk.deployment.close()


def test_four_small_batches_are_fetched_ahead(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen, most_unfiled = _fetched_before_each_filing(tmp_path, sqlite_url, dovecot,
                                                     smtp_delivering, monkeypatch, ahead=4)
    assert BATCHES_AHEAD == 4
    assert seen == [5, 6, 7, 8, 8, 8, 8, 8]  # batches fetched when each is filed
    assert most_unfiled == 5  # the one being filed and four ahead, never more


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
    seen, most_unfiled = _fetched_before_each_filing(tmp_path, sqlite_url, dovecot,
                                                     smtp_delivering, monkeypatch, ahead=1)
    assert seen == [2, 3, 4, 5, 6, 7, 8, 8]
    assert most_unfiled == 2
