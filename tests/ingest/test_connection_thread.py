"""The connection's own thread during a poll: commands in order, batches fetched ahead on it,
and a connection lost while a filed batch is moved loses and doubles nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from processor.ahead import FetchAhead, Sized
from processor.connection_thread import ConnectionThread
from processor.db import session_scope
from processor.db.models import Message
from processor.errors import MailboxUnavailable
from processor.imap import MailboxConnection
from tests.acknowledge.conftest import make_desk
from tests.mailgen import make_mails
from tests.servers import DovecotServer, SmtpSink

# -- ConnectionThread ------------------------------------------------------------------------


def test_commands_run_in_the_order_given_on_one_other_thread() -> None:
    server = ConnectionThread("test")
    ran: list[tuple[int, str]] = []

    def command(n: int) -> int:
        ran.append((n, threading.current_thread().name))
        return n * 10

    for n in range(5):
        server.give(command, n)
    assert server.call(command, 5) == 50
    server.close()
    assert [n for n, _ in ran] == [0, 1, 2, 3, 4, 5]
    names = {name for _, name in ran}
    assert len(names) == 1 and threading.current_thread().name not in names


def test_an_error_of_a_command_given_is_raised_by_the_next_give_or_by_close() -> None:
    server = ConnectionThread("test")

    def lost() -> None:
        raise MailboxUnavailable("connection lost")

    gate = threading.Event()
    server.give(gate.wait)
    server.give(lost)  # behind the gate: it cannot have ended yet, so this give returns
    gate.set()
    server.call(lambda: None)  # `lost` has ended: the next give raises its error
    with pytest.raises(MailboxUnavailable):
        server.give(lambda: None)
    server.close()  # raised once, not again

    other = ConnectionThread("test")
    gate = threading.Event()
    other.give(gate.wait)
    other.give(lost)
    gate.set()
    with pytest.raises(MailboxUnavailable):
        other.close()


# -- FetchAhead --------------------------------------------------------------------------------


def _batches(count: int, size: int) -> list[Sized]:
    return [([n], {n: size}) for n in range(1, count + 1)]


def _ahead(batches: list[Sized], fetched: list[int], most: int, fail_at: int | None = None
           ) -> FetchAhead[Sized]:
    def fetch(sized: Sized) -> Sized:
        if sized[0][0] == fail_at:
            raise MailboxUnavailable("connection lost")
        fetched.append(sized[0][0])
        return sized

    return FetchAhead(iter(batches), fetch, lambda batch: batch[1],
                      lambda queued, upcoming: len(queued) < most)


def test_batches_come_in_order_and_no_more_are_held_than_fit() -> None:
    fetched: list[int] = []
    ahead = _ahead(_batches(6, 100), fetched, most=3)
    ahead.fill()
    assert fetched == [1, 2, 3]  # three fit
    first = ahead.next_batch()
    ahead.fill()
    assert fetched == [1, 2, 3]  # the one taken still counts until it is filed
    ahead.filed()
    ahead.fill()
    assert fetched == [1, 2, 3, 4]
    taken = [first]
    while (batch := ahead.next_batch()) is not None:
        taken.append(batch)
        ahead.filed()
        ahead.fill()
    assert [b[0][0] for b in taken if b] == [1, 2, 3, 4, 5, 6]


def test_a_failed_fetch_gives_what_was_fetched_whole_then_raises_and_fetches_no_more() -> None:
    fetched: list[int] = []
    ahead = _ahead(_batches(6, 100), fetched, most=5, fail_at=3)
    ahead.fill()  # fails on the third, on the connection's thread: kept, not raised there
    assert fetched == [1, 2]
    assert [ahead.next_batch(), ahead.next_batch()] == _batches(2, 100)
    ahead.fill()
    assert fetched == [1, 2]  # nothing more after a failure
    with pytest.raises(MailboxUnavailable):
        ahead.next_batch()


def test_the_filing_thread_waits_for_the_connection_thread() -> None:
    fetched: list[int] = []
    ahead = _ahead(_batches(2, 100), fetched, most=5)
    server = ConnectionThread("test")
    server.give(ahead.fill)
    assert [ahead.next_batch(), ahead.next_batch(), ahead.next_batch()] == [
        *_batches(2, 100), None]
    server.close()


# -- a poll ------------------------------------------------------------------------------------


def test_a_connection_lost_while_moving_loses_and_doubles_nothing(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault is injected (a mock): the connection must die exactly while the first filed
    batch is moved, which no real server can be made to do on cue."""
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_delivering,
                     processing={"batch_size": 10, "parse_processes": 0})
    desk.deliver(*make_mails(30))
    real_move = MailboxConnection.move
    moves: list[int] = []

    def move(self, uids, folder):  # type: ignore[no-untyped-def]
        moves.append(len(list(uids)))
        if len(moves) == 1:
            raise MailboxUnavailable("connection lost (injected)")
        return real_move(self, uids, folder)

    monkeypatch.setattr(MailboxConnection, "move", move)
    try:
        with pytest.raises(MailboxUnavailable):
            desk.poll()
        with session_scope(desk.runtime.engine) as session:
            filed = session.scalar(select(func.count()).where(Message.direction == "in"))
        assert filed is not None and 10 <= filed < 30  # the poll stopped after the first
        assert desk.desk_account.count("INBOX") == 30  # nothing moved: committed, below cursor
        desk.poll()  # moves what was filed, then files the rest
        with session_scope(desk.runtime.engine) as session:
            assert session.scalar(select(func.count()).where(Message.direction == "in")) == 30
        assert desk.desk_account.count("INBOX") == 0
        assert len(desk.outbox()) == 30
    finally:
        desk.runtime.engine.dispose()
        desk.deployment.close()
