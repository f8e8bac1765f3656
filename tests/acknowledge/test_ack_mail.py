"""The acknowledgement as the complainant receives it: read back from their own mailbox."""

from __future__ import annotations

from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime

from tests.acknowledge.conftest import Desk

SENT = datetime(2026, 11, 3, 7, 4, tzinfo=UTC)


def complaint(
    sender: str,
    subject: str,
    body: str,
    *,
    charset: str = "utf-8",
    message_id: str = "<c1@customer.example>",
    extra: str = "",
) -> bytes:
    encoded_subject = Header(subject, charset).encode()
    return (
        f"From: {sender}\r\nTo: complaints@example.com\r\nSubject: {encoded_subject}\r\n"
        f"Message-ID: {message_id}\r\nDate: {format_datetime(SENT)}\r\n"
        f"MIME-Version: 1.0\r\n{extra}Content-Type: text/plain; charset={charset}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode("ascii") + body.encode(charset)


def test_chinese_technical_fault_ack_asks_for_missing_details(desk: Desk) -> None:
    sender = desk.complainant()
    body = "你们的系统最近总是卡顿，通话经常掉线，我的客户都打不进来。请尽快处理。秘密内容XYZ"
    desk.deliver(
        complaint(
            sender, "系统卡顿，通话掉线", body, charset="gbk", message_id="<zh-1@customer.example>"
        )
    )
    desk.poll()
    assert desk.send().sent == 1
    [ack] = desk.inbox_of(sender)
    case = desk.case_of(sender)
    assert case.category == "technical_fault"
    assert ack["Subject"] == f"[{case.reference}] 系统卡顿，通话掉线"
    assert ack["In-Reply-To"] == "<zh-1@customer.example>"
    assert "<zh-1@customer.example>" in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    assert ack["X-Complaints-Loop"] == "test-desk"
    assert ack["Return-Path"] == "<>"  # the null envelope sender
    assert ack["Message-ID"].endswith("@desk.example.com>")
    assert ack["From"].addresses[0].addr_spec == "complaints@example.com"
    text = ack.get_body(("plain",)).get_content()
    html = ack.get_body(("html",)).get_content()
    assert case.reference in text and case.reference in html
    assert "技术故障" in text or "技术" in text
    # What the team still needs for a technical fault, asked in Chinese:
    assert "什么时候" in text or "时间" in text
    assert "秘密内容XYZ" not in text and "秘密内容XYZ" not in html  # nothing echoed


def test_english_agent_conduct_ack(desk: Desk) -> None:
    sender = desk.complainant()
    desk.deliver(
        complaint(
            sender,
            "Rude agent",
            "The agent was rude and hung up on me. I expect an apology.",
            message_id="<en-1@customer.example>",
        )
    )
    desk.poll()
    desk.send()
    [ack] = desk.inbox_of(sender)
    case = desk.case_of(sender)
    assert case.category == "agent_conduct"
    assert ack["Subject"] == f"[{case.reference}] Rude agent"
    text = ack.get_body(("plain",)).get_content()
    assert "agent" in text.lower() and "number" in text.lower()  # asks for the agent number
    assert "What resolution would you like" not in text  # "I expect an apology" said it
    assert "hung up on me" not in text  # nothing of the complaint is echoed
    kinds = [kind for kind, _ in desk.events(case.reference)]
    assert kinds[:3] == ["case-opened", "classified", "ack-queued"]


def test_header_injection_through_subject_and_display_name(desk: Desk) -> None:
    sender = desk.complainant()
    raw = (
        f"From: =?utf-8?q?Eve=0D=0ABcc:_victim@evil.example?= <{sender}>\r\n"
        "To: complaints@example.com\r\n"
        "Subject: =?utf-8?q?Help=0D=0ABcc:_victim2@evil.example=0D=0AX-Evil:_1?="
        + " very long"
        * 60
        + "\r\n"
        "Message-ID: <inj-1@customer.example>\r\n\r\nplease help\r\n"
    ).encode()
    desk.deliver(raw)
    desk.poll()
    desk.send()
    [received] = desk.smtp.received
    assert received.rcpt_tos == (sender,)
    [ack] = desk.inbox_of(sender)
    names = [name.lower() for name in ack.keys()]
    assert "bcc" not in names and "x-evil" not in names
    assert names.count("to") == 1 and names.count("subject") == 1
    assert [a.addr_spec for a in ack["To"].addresses] == [sender]
    assert len(ack["Subject"]) <= 200
