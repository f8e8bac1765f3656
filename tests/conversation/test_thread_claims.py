"""Thread claims in one process: a reply filed before its original, and a stranger who claims
someone else's Message-ID first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from processor.db import session_scope
from processor.db.models import Case, Message, Quarantine
from tests.acknowledge.conftest import Desk, opened_desk
from tests.servers import DovecotServer, SmtpSink


def mail(sender: str, message_id: str, subject: str, in_reply_to: str | None = None) -> bytes:
    thread = f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to \
        else ""
    return (f"From: {sender}\r\nTo: complaints@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\n{thread}\r\nThe hotline dropped my call again.\r\n"
            ).encode()


@pytest.fixture
def holding_desk(tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
                 smtp_server: SmtpSink) -> Iterator[Desk]:
    """Strangers' mail naming someone else's thread is held for review."""
    with opened_desk(tmp_path, sqlite_url, dovecot, smtp_server,
                     staff={"unknown_sender_policy": "hold"}) as desk:
        yield desk


@pytest.fixture
def desk(tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
         smtp_server: SmtpSink) -> Iterator[Desk]:
    with opened_desk(tmp_path, sqlite_url, dovecot, smtp_server) as desk:
        yield desk


def _count(desk: Desk, model: type) -> int:
    with session_scope(desk.runtime.engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_an_original_filed_after_its_reply_joins_the_case_the_reply_opened(
        holding_desk: Desk) -> None:
    desk = holding_desk
    sender = desk.complainant()
    desk.deliver(mail(sender, "<second@customer.example>", "Re: dropped calls",
                      in_reply_to="<first@customer.example>"))
    desk.poll()
    desk.deliver(mail(sender, "<first@customer.example>", "dropped calls"))
    desk.poll()
    assert _count(desk, Case) == 1
    assert desk.case_of(sender).complainant_address == sender


def test_a_stranger_claiming_a_message_id_first_does_not_capture_the_original(
        holding_desk: Desk) -> None:
    desk = holding_desk
    sender = desk.complainant()
    desk.deliver(mail("mallory@elsewhere.example", "<m1@elsewhere.example>", "Re: your bill",
                      in_reply_to="<bill-1@customer.example>"))
    desk.poll()
    desk.deliver(mail(sender, "<bill-1@customer.example>", "wrong bill"))
    desk.poll()
    # The complainant's mail opens its own case: neither joined to the stranger's case nor
    # held for review as a stranger's mail on it.
    assert _count(desk, Quarantine) == 0
    assert _count(desk, Case) == 2
    assert desk.case_of(sender).complainant_address == sender


def _selects_while(desk: Desk, action: Callable[[], None]) -> list[str]:
    """The SELECT statements the desk's database saw while `action` ran."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(desk.runtime.engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(desk.runtime.engine, "before_cursor_execute", record)
    return seen


def test_replies_to_cases_of_earlier_batches_cost_no_query_each(desk: Desk) -> None:
    """The cases the batch's replies belong to (by In-Reply-To, by the subject's tag), and who
    took part in them, are read once for the batch: a query per reply would make the second
    count grow with the replies."""
    senders = [desk.complainant() for _ in range(6)]
    desk.deliver(*(mail(s, f"<first-{i}@customer.example>", "dropped calls")
                   for i, s in enumerate(senders)))
    desk.poll()
    refs = [desk.case_of(s).reference for s in senders]

    def reply(i: int, *, by_tag: bool) -> bytes:
        if by_tag:  # answering the acknowledgement, whose subject carries the tag
            return mail(senders[i], f"<again-{i}@customer.example>", f"Re: [{refs[i]}] calls")
        return mail(senders[i], f"<again-{i}@customer.example>", "Re: dropped calls",
                    in_reply_to=f"<first-{i}@customer.example>")

    desk.deliver(reply(0, by_tag=False), reply(1, by_tag=True))
    two = _selects_while(desk, desk.poll)
    desk.deliver(*(reply(i, by_tag=i % 2 == 0) for i in range(2, 6)))
    four = _selects_while(desk, desk.poll)
    assert len(four) == len(two), "\n".join(four)
    with session_scope(desk.runtime.engine) as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 6
        replies = session.scalars(select(Message).where(Message.message_id.like("<again-%"))).all()
        assert len(replies) == 6
        expected = {(r, s, "complainant") for r, s in zip(refs, senders, strict=True)}
        assert {(m.case.reference, m.case.complainant_address, m.author_role)
                for m in replies} == expected
