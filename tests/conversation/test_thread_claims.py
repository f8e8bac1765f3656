"""Thread claims in one process: a reply filed before its original, and a stranger who claims
someone else's Message-ID first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from processor.db import session_scope
from processor.db.models import Case, Quarantine
from tests.acknowledge.conftest import Desk, make_desk
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
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_server,
                     staff={"unknown_sender_policy": "hold"})
    yield desk
    desk.runtime.engine.dispose()
    desk.deployment.close()


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
