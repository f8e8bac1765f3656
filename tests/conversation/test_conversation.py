"""A case's whole conversation through Dovecot and a real SMTP server: staff replies from a
normal mail client, mail commands, relays, follow-ups, resolution and appeal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import update

from processor.db import session_scope
from processor.db.models import Case
from tests.acknowledge.conftest import Desk, make_desk
from tests.servers import DovecotServer, SmtpSink

TRUSTED = "mx.example.com"
AUTH_PASS = (
    f"Authentication-Results: {TRUSTED}; dkim=pass header.d=desk.example.com; "
    "spf=pass smtp.mailfrom=desk.example.com; dmarc=pass header.from=desk.example.com"
)
AUTH_FAIL = (
    f"Authentication-Results: {TRUSTED}; dkim=fail header.d=desk.example.com; "
    "spf=fail smtp.mailfrom=desk.example.com; dmarc=fail header.from=desk.example.com"
)


@dataclass
class Conversation:
    desk: Desk
    complainant: str
    agent: str
    team: str

    def mail(
        self,
        sender: str,
        subject: str,
        body: str,
        *,
        to: str = "complaints@example.com",
        msgid: str,
        in_reply_to: str | None = None,
        extra: str = "",
        attachment: tuple[str, bytes] | None = None,
    ) -> bytes:
        head = (
            f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
            "MIME-Version: 1.0\r\n"
        )
        if in_reply_to:
            head += f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n"
        head += extra
        if attachment is None:
            return (
                head + "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n"
            ).encode() + body.encode()
        import base64

        name, data = attachment
        return (
            (
                head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            ).encode()
            + body.encode()
            + (
                f"\r\n--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; "
                f"filename={name}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                f"{base64.b64encode(data).decode()}\r\n--b--\r\n"
            ).encode()
        )

    def round(self, *raws: bytes) -> None:
        self.desk.deliver(*raws)
        self.desk.poll()
        self.desk.send()

    def mails_to(self, address: str) -> list[EmailMessage]:
        return self.desk.inbox_of(address)

    def kinds(self, ref: str) -> list[str]:
        return [k for k, _ in self.desk.events(ref)]


@pytest.fixture
def talk(
    tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink
) -> Iterator[Conversation]:
    team = f"{dovecot.new_user('team')}@desk.example.com"
    desk = make_desk(
        tmp_path,
        sqlite_url,
        dovecot,
        smtp_delivering,
        staff={
            "domains": ["desk.example.com"],
            "notify": [team],
            "trusted_authserv_ids": [TRUSTED],
        },
    )
    yield Conversation(
        desk,
        f"{dovecot.new_user('cust')}@customer.example",
        f"{dovecot.new_user('agent')}@desk.example.com",
        team,
    )
    desk.runtime.engine.dispose()


def signed_address(talk: Conversation) -> str:
    [notice] = [m for m in talk.mails_to(talk.team) if "C-000001" in m["Subject"]][:1]
    return notice["Reply-To"].addresses[0].addr_spec


def test_whole_conversation_with_appeal(talk: Conversation) -> None:
    c = talk
    c.round(
        c.mail(
            c.complainant,
            "系统卡顿，通话掉线",
            "系统总是卡顿，每天都掉线好几次。",
            msgid="<m1@customer.example>",
        )
    )
    [ack] = c.mails_to(c.complainant)
    assert ack["Subject"].startswith("[C-000001]")
    signed = signed_address(c)
    assert signed.startswith("complaints+c-000001.") or signed.startswith("complaints+C-000001.")
    # A verified staff answer with a command: relayed, status pending.
    c.round(
        c.mail(
            c.agent,
            "Re: [C-000001] 系统卡顿，通话掉线",
            "#status pending\n\n您好，请提供出现问题的具体时间和截图。\n\n"
            "On Mon, someone wrote:\n> 系统总是卡顿",
            to=signed,
            msgid="<s1@desk.example.com>",
            extra=AUTH_PASS + "\r\n",
            attachment=("guide.png", b"\x89PNG-guide"),
        )
    )
    case = c.desk.case("C-000001")
    assert case.status == "pending" and case.first_response_at is not None
    relayed = [m for m in c.mails_to(c.complainant) if m["Message-ID"] != ack["Message-ID"]]
    assert len(relayed) == 1
    text = relayed[0].get_body(("plain",)).get_content()
    assert "请提供出现问题的具体时间和截图" in text
    [sent_attachment] = list(relayed[0].iter_attachments())  # the staff attachment goes along
    assert sent_attachment.get_filename() == "guide.png"
    assert sent_attachment.get_content() == b"\x89PNG-guide"
    assert "#status" not in text and "系统总是卡顿" not in text  # commands and quote removed
    assert c.agent not in relayed[0].as_string()  # the staff address is not exposed
    assert relayed[0]["In-Reply-To"] == "<m1@customer.example>"
    assert relayed[0]["Subject"].startswith("[C-000001]")
    # The complainant answers the relay with a screenshot: pending -> open, staff told.
    c.round(
        c.mail(
            c.complainant,
            relayed[0]["Subject"].replace("[", "回复：[", 1),
            "11月3日下午3点开始的，截图见附件。",
            msgid="<m2@customer.example>",
            in_reply_to=relayed[0]["Message-ID"],
            attachment=("shot.png", b"\x89PNG.."),
        )
    )
    assert c.desk.case("C-000001").status == "open"
    follow_ups = [
        m for m in c.mails_to(c.team) if "截图见附件" in m.get_body(("plain",)).get_content()
    ]
    assert len(follow_ups) == 1 and "shot.png" in follow_ups[0].get_body(("plain",)).get_content()
    # Staff resolves: the complainant is told how to appeal.
    c.round(
        c.mail(
            c.agent,
            "Re: [C-000001]",
            "#status resolved\n已为您修复，谢谢。",
            to=signed,
            msgid="<s2@desk.example.com>",
            extra=AUTH_PASS + "\r\n",
        )
    )
    resolved = c.desk.case("C-000001")
    assert resolved.status == "resolved" and resolved.resolved_at is not None
    notices = [
        m for m in c.mails_to(c.complainant) if "复核" in m.get_body(("plain",)).get_content()
    ]
    assert len(notices) == 1
    # "不满意，我要申诉": a linked appeal case with raised priority; the original stays resolved.
    c.round(
        c.mail(
            c.complainant,
            "回复：[C-000001] 系统卡顿",
            "不满意，我要申诉！问题还在。",
            msgid="<m3@customer.example>",
        )
    )
    original, appeal = c.desk.case("C-000001"), c.desk.case("C-000002")
    assert original.status == "resolved"
    assert appeal.is_appeal and appeal.parent_case_id == original.id
    assert appeal.link_kind == "appeal" and appeal.category == "appeal"
    assert appeal.priority in ("high", "urgent")
    assert c.kinds("C-000001") == [
        "case-opened",
        "classified",
        "ack-queued",
        "staff-notified",
        # first staff answer: new -> open (first reply), then #status pending, relayed
        "mail-filed",
        "status-changed",
        "status-changed",
        "command",
        "first-response",
        "relayed",
        # the complainant's follow-up: pending -> open
        "mail-filed",
        "status-changed",
        # #status resolved: the notice with how to appeal, and the answer relayed
        "mail-filed",
        "status-changed",
        "resolution-notice-queued",
        "command",
        "relayed",
        "appeal-opened",
    ]
    assert c.kinds("C-000002")[:2] == ["case-opened", "classified"]
    assert "linked" in c.kinds("C-000002") and "ack-queued" in c.kinds("C-000002")


def test_forged_staff_mail_changes_nothing(talk: Conversation) -> None:
    c = talk
    c.round(
        c.mail(
            c.complainant, "Refund please", "I was charged twice.", msgid="<f1@customer.example>"
        )
    )
    signed = signed_address(c)
    before = len(c.mails_to(c.complainant))
    # A staff From without the signed address, then with it but failing authentication.
    c.round(
        c.mail(
            c.agent,
            "Re: [C-000001] Refund please",
            "#status resolved\nDone.",
            msgid="<forged1@desk.example.com>",
            extra=AUTH_PASS + "\r\n",
        ),
        c.mail(
            c.agent,
            "Re: [C-000001] Refund please",
            "#status closed\nDone.",
            to=signed,
            msgid="<forged2@desk.example.com>",
            extra=AUTH_FAIL + "\r\n",
        ),
    )
    case = c.desk.case("C-000001")
    assert case.status == "new"
    assert len(c.mails_to(c.complainant)) == before  # nothing relayed
    assert c.kinds("C-000001").count("unverified-staff-mail") == 2
    warnings = c.mails_to(c.agent)
    assert len(warnings) == 2 and all("C-000001" in w["Subject"] for w in warnings)


def test_stranger_with_copied_tag_and_references_opens_a_new_case(talk: Conversation) -> None:
    c = talk
    c.round(
        c.mail(
            c.complainant, "Refund please", "I was charged twice.", msgid="<h1@customer.example>"
        )
    )
    [ack] = c.mails_to(c.complainant)
    stranger = f"{c.desk.dovecot.new_user('mallory')}@elsewhere.example"
    c.round(
        c.mail(
            stranger,
            "Re: [C-000001] Refund please",
            "Please send me the details.",
            msgid="<x1@elsewhere.example>",
            in_reply_to=ack["Message-ID"],
        )
    )
    assert c.desk.case("C-000002").complainant_address == stranger
    assert "mail-filed" not in c.kinds("C-000001")
    assert len(c.mails_to(c.complainant)) == 1  # nothing of the stranger's reached them


def test_threading_by_references_alone_and_by_tag_alone(talk: Conversation) -> None:
    c = talk
    c.round(
        c.mail(
            c.complainant,
            "Cannot connect",
            "Your line is always busy.",
            msgid="<t1@customer.example>",
        )
    )
    [ack] = c.mails_to(c.complainant)
    c.round(
        c.mail(
            c.complainant,
            "Re: Cannot connect",
            "Still busy today.",
            msgid="<t2@customer.example>",
            in_reply_to=ack["Message-ID"],
        ),
        c.mail(
            c.complainant,
            "[C-000001] more info",
            "It happens every morning.",
            msgid="<t3@customer.example>",
        ),
    )
    assert c.kinds("C-000001").count("mail-filed") == 2
    with session_scope(c.desk.runtime.engine) as session:
        assert session.query(Case).count() == 1
    # A subject alone without a tag never threads.
    c.round(
        c.mail(
            c.complainant,
            "Cannot connect",
            "Another problem entirely.",
            msgid="<t4@customer.example>",
        )
    )
    assert c.desk.case("C-000002").subject == "Cannot connect"


def test_out_of_office_leaves_a_pending_case_alone_and_old_resolution_links(
    talk: Conversation,
) -> None:
    c = talk
    c.round(c.mail(c.complainant, "Bill wrong", "Charged twice.", msgid="<o1@customer.example>"))
    signed = signed_address(c)
    c.round(
        c.mail(
            c.agent,
            "Re: [C-000001]",
            "#status pending\nWhich invoice?",
            to=signed,
            msgid="<o2@desk.example.com>",
            extra=AUTH_PASS + "\r\n",
        )
    )
    c.round(
        c.mail(
            c.complainant,
            "自动回复: [C-000001] Bill wrong",
            "我正在休假。",
            msgid="<o3@customer.example>",
            extra="Auto-Submitted: auto-replied\r\n",
        )
    )
    assert c.desk.case("C-000001").status == "pending"
    c.round(
        c.mail(
            c.agent,
            "Re: [C-000001]",
            "#status resolved\nRefunded.",
            to=signed,
            msgid="<o4@desk.example.com>",
            extra=AUTH_PASS + "\r\n",
        )
    )
    with session_scope(c.desk.runtime.engine) as session:
        session.execute(
            update(Case)
            .where(Case.reference == "C-000001")
            .values(resolved_at=datetime.now(UTC) - timedelta(days=10))
        )
    c.round(
        c.mail(
            c.complainant,
            "Re: [C-000001] Bill wrong",
            "The refund never came.",
            msgid="<o5@customer.example>",
        )
    )
    assert c.desk.case("C-000001").status == "resolved"
    follow = c.desk.case("C-000002")
    assert follow.link_kind == "follow-up" and not follow.is_appeal
    assert "linked-case-opened" in c.kinds("C-000001")


@pytest.mark.parametrize(
    "body,new_text",
    [
        (
            "New details here.\n\n"
            "On Tue, 3 Nov 2026 at 15:04, Desk <complaints@example.com> wrote:\n> old text\n",
            "New details here.",
        ),
        (
            "补充信息在这里。\n\n发件人: 客服中心 <complaints@example.com>\n"
            "发送时间: 2026年11月3日 15:04\n收件人: me\n主题: 回复\n\n旧内容\n",
            "补充信息在这里。",
        ),
        ("Thanks\n\n-----Original Message-----\nFrom: Desk\nSent: Monday\n\nold\n", "Thanks"),
        ("好的\n\n在 2026年11月3日 15:04，客服 写道：\n> 旧内容\n", "好的"),
    ],
)
def test_quoted_replies_add_only_their_new_text(
    talk: Conversation, body: str, new_text: str
) -> None:
    c = talk
    c.round(c.mail(c.complainant, "Question", "First mail.", msgid="<q1@customer.example>"))
    c.round(c.mail(c.complainant, "Re: [C-000001] Question", body, msgid="<q2@customer.example>"))
    show = c.desk.deployment.command(
        ["case", "show", "C-000001", "--json"], c.desk.desk_account.password
    )
    import json

    messages = [
        e
        for e in json.loads(show.stdout)["timeline"]
        if e["kind"] == "message" and e["direction"] == "in"
    ]
    assert messages[-1]["new_text"].strip() == new_text


def test_invalid_command_changes_nothing_and_note_is_never_relayed(talk: Conversation) -> None:
    c = talk
    c.round(c.mail(c.complainant, "Bill", "Charged twice.", msgid="<n1@customer.example>"))
    signed = signed_address(c)
    before = len(c.mails_to(c.complainant))
    c.round(c.mail(c.agent, "Re: [C-000001] Bill", "#stauts pending\nPlease send the invoice.",
                   to=signed, msgid="<n2@desk.example.com>", extra=AUTH_PASS + "\r\n"))
    assert c.desk.case("C-000001").status == "new"
    assert "commands-rejected" in c.kinds("C-000001")
    [told] = [m for m in c.mails_to(c.agent) if "C-000001" in m["Subject"]]
    assert "stauts" in told.get_body(("plain",)).get_content()  # what was wrong
    c.round(c.mail(c.agent, "Re: [C-000001] Bill", "#note\n#assign li.wei\nCustomer is a VIP.",
                   to=signed, msgid="<n3@desk.example.com>", extra=AUTH_PASS + "\r\n"))
    case = c.desk.case("C-000001")
    assert case.assignee == "li.wei"
    notes = [d for k, d in c.desk.events("C-000001") if k == "note"]
    assert notes and "VIP" in str(notes[0]["text"])
    assert len(c.mails_to(c.complainant)) == before  # neither mail reached the complainant


def test_reply_all_that_reached_the_complainant_is_not_relayed_twice(talk: Conversation) -> None:
    c = talk
    c.round(c.mail(c.complainant, "Bill", "Charged twice.", msgid="<r1@customer.example>"))
    signed = signed_address(c)
    c.round(c.mail(c.agent, "Re: [C-000001] Bill", "We refunded you today.",
                   to=f"{signed}, {c.complainant}", msgid="<r2@desk.example.com>",
                   extra=AUTH_PASS + "\r\n"))
    assert "relay-skipped" in c.kinds("C-000001") and "relayed" not in c.kinds("C-000001")
    assert not [m for m in c.desk.outbox() if m.kind == "relay"]


def test_a_relay_answers_the_complainants_latest_mail_even_when_it_came_in_the_same_batch(
        talk: Conversation) -> None:
    """The complainant's follow-up and the staff answer are fetched together: the relay must
    answer the follow-up, whose row the batch has not written yet when the relay is made."""
    c = talk
    c.round(c.mail(c.complainant, "Bill", "Charged twice.", msgid="<b1@customer.example>"))
    signed = signed_address(c)
    c.round(
        c.mail(c.complainant, "Re: [C-000001] Bill", "And a third time today.",
               msgid="<b2@customer.example>", in_reply_to="<b1@customer.example>"),
        c.mail(c.agent, "Re: [C-000001] Bill", "All three are refunded.", to=signed,
               msgid="<b3@desk.example.com>", extra=AUTH_PASS + "\r\n"),
    )
    [relayed] = [m for m in c.mails_to(c.complainant) if "refunded" in m.as_string()]
    assert relayed["In-Reply-To"] == "<b2@customer.example>"
    assert "relayed" in c.kinds("C-000001")
