"""Every attachment of a filed mail is recorded on its message, whether the batch was filed
fast (its attachment rows written at the end with the other deferred rows) or carefully, mail
by mail, after one of its mails failed."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from processor.db import session_scope
from processor.db.models import Attachment, Message, Quarantine
from processor.mail import ParseLimits, parse_message
from tests.acknowledge.conftest import make_desk
from tests.servers import DovecotServer, SmtpSink

MAILS = 30


def _mail(index: int, sender: bool = True) -> bytes:
    msg = EmailMessage()
    if sender:
        msg["From"] = f"cust{index}@customer.example"
    msg["To"] = "complaints@example.com"
    msg["Subject"] = f"complaint {index} with evidence"
    msg["Message-ID"] = f"<att-{index}@customer.example>"
    msg.set_content(f"Please look at the attached evidence, number {index}.")
    for n in range(index % 3):  # none, one or two attachments
        msg.add_attachment(f"log {index}.{n}\n".encode() * (50 + index), maintype="text",
                           subtype="plain", filename=f"log-{index}-{n}.txt")
    if index % 5 == 0:
        msg.add_attachment(bytes(range(256)) * 4, maintype="image", subtype="png",
                           filename=f"截图-{index}.png")
    return msg.as_bytes()


def _expected(raws: list[bytes]) -> dict[str, list[tuple[str, str, int, str]]]:
    expected = {}
    for raw in raws:
        parsed = parse_message(raw, ParseLimits())
        expected[parsed.message_id or ""] = sorted(
            (a.filename, a.content_type, a.size, a.sha256) for a in parsed.attachments)
    return expected


@pytest.mark.parametrize("careful", [False, True], ids=["fast", "careful"])
def test_attachment_rows_belong_to_their_mails(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink,
        careful: bool) -> None:
    # A mail without a sender cannot be filed: its batch is filed again mail by mail.
    raws = [_mail(i, sender=not (careful and i == 7)) for i in range(MAILS)]
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_delivering,
                     processing={"batch_size": MAILS, "parse_processes": 0})
    desk.deliver(*raws)
    try:
        desk.poll()
        expected = _expected([raw for i, raw in enumerate(raws)
                              if not (careful and i == 7)])
        assert sum(map(len, expected.values())) > MAILS // 2
        with session_scope(desk.runtime.engine) as session:
            found: dict[str, list[tuple[str, str, int, str]]] = {}
            for message in session.scalars(select(Message).where(Message.direction == "in")):
                found[message.message_id or ""] = sorted(
                    (a.filename, a.content_type, a.size, a.sha256) for a in message.attachments)
            assert found == expected
            assert len(session.scalars(select(Attachment)).all()) == sum(
                map(len, expected.values()))
            quarantined = session.scalars(select(Quarantine)).all()
            assert len(quarantined) == (1 if careful else 0)
        for filename, _, size, sha256 in (a for rows in expected.values() for a in rows):
            assert desk.runtime.store.path_for(sha256).stat().st_size == size, filename
    finally:
        desk.runtime.engine.dispose()
        desk.deployment.close()
