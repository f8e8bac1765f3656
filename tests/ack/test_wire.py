"""processor.wire: what writing mail bytes ourselves could get wrong, checked against the
stdlib parser (modern policy and the compat32 decoder): encoded-words that do not decode to
the exact text, folds in the wrong place, lines that are too long, display names that turn
into extra recipients, bodies that do not come back byte for byte, and a message object that
says something other than its bytes."""

from __future__ import annotations

import copy
import dataclasses
import email
import email.header
import email.policy
import random
import re
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage

import pytest

from processor import wire
from processor.compose import (
    InvalidHeader,
    clean_header_text,
    compose_ack,
    compose_case_mail,
    compose_staff_notification,
    make_message_id,
    outgoing_copy,
)
from processor.mail.model import Address
from processor.render import RenderedBody
from tests.ack.helpers import DESK, DOMAIN, INSTALLATION, parsed

NOW = datetime(2024, 6, 3, 4, 0, tzinfo=UTC)
LONG_ZH = ("宽带又断网了，已经三天无法上网，客服电话一直打不通，请尽快派人上门维修并给予赔偿。"
           "宽带账号 12345678，地址：北京市朝阳区某某街道某某小区")


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def header_lines(raw: bytes) -> list[bytes]:
    return raw[:raw.index(b"\r\n\r\n")].split(b"\r\n")


def rfc2047_decoded(folded: str) -> str:
    """The compat32 decoder: unfolds, then joins adjacent encoded-words as RFC 2047 says."""
    return str(email.header.make_header(email.header.decode_header(folded.replace("\r\n", ""))))


def mail_with(*headers: wire.WireHeader, text: str = "x\n",
              html: str | None = None) -> wire.ComposedMessage:
    return wire.message(list(headers), text, html)


def assert_well_formed(raw: bytes) -> None:
    assert raw.isascii()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    for line in header_lines(raw):
        assert len(line) <= 78, line
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998


# --- unstructured text (Subject)


SUBJECTS = [
    LONG_ZH,
    f"[C-000123] {LONG_ZH}",
    "[C-000123] Broadband down for three days again, nobody answers the phone, I want a refund",
    "[C-000123] Ünïcödé in a mostly English subject, café and naïve",
    "[C-000123] 👨‍👩‍👧 family plan 🙂 overcharged",
    "e\u0301" * 60,
    "x" * 200,  # one word longer than a line: must be encoded, not left as a 210-octet line
    "a  b",  # repeated spaces survive
    " leading and trailing ",
    "=?utf-8?q?not_an_encoded_word?= as text",
    "literal ?= and =? and _ and = signs",
    "[C-000123] 网络 ok 故障 again 再次",
    "",
]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_subject_round_trips_exactly(subject: str) -> None:
    header = wire.unstructured("Subject", subject)
    assert header == subject  # the object says what the wire says
    raw = mail_with(header).as_bytes()
    assert_well_formed(raw)
    back = parse(raw)
    assert back["Subject"] == subject
    assert not back["Subject"].defects
    # A second, independent decoder (the compat32 one most older code uses) agrees.
    assert rfc2047_decoded(email.message_from_bytes(raw)["Subject"]) == subject


def test_long_chinese_subject_is_folded_into_encoded_words() -> None:
    raw = mail_with(wire.unstructured("Subject", f"[C-000123] {LONG_ZH}")).as_bytes()
    lines = [line for line in header_lines(raw) if line.startswith((b"Subject:", b" "))]
    assert lines[0].startswith(b"Subject: [C-000123] =?utf-8?")
    assert len(lines) > 2 and all(line.startswith(b" =?utf-8?") for line in lines[1:])
    for line in lines:
        for word in line.split():
            if word.startswith(b"=?"):
                assert len(word) <= 75 and word.endswith(b"?=")


def test_plain_english_is_folded_at_spaces_not_encoded() -> None:
    subject = "[C-000123] " + "internet outage " * 12
    subject = subject.strip()
    raw = mail_with(wire.unstructured("Subject", subject)).as_bytes()
    assert b"=?" not in raw.split(b"\r\n\r\n")[0]
    assert parse(raw)["Subject"] == subject


def test_random_text_round_trips() -> None:
    pool = list("abcXYZ019 ,.;:\"'()<>@[]\\=?_-!*/+") + list("网络故障投诉中心") + [
        "é", "\u0301", "\u200d", "👍", "€", "ß", "ı"]
    rng = random.Random(8)
    for _ in range(300):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 120)))
        header = wire.unstructured("Subject", text)
        raw = mail_with(header).as_bytes()
        assert_well_formed(raw)
        assert parse(raw)["Subject"] == text, text


@pytest.mark.parametrize("value", ["a\r\nBcc: x@evil.example", "a\nb", "a\rb", "a\x00b",
                                   "a\x85b", "tab\there", "a\u2028b", "a\x1eb"])
def test_control_characters_never_reach_a_header(value: str) -> None:
    with pytest.raises(InvalidHeader):
        wire.unstructured("Subject", value)
    with pytest.raises((InvalidHeader, ValueError)):  # HeaderAddress refuses CR and LF itself
        wire.addresses("To", [HeaderAddress(value, "a", "example.org")])


def test_clean_header_text_fast_path_agrees_with_the_full_one() -> None:
    # A trailing NUL takes the character-by-character path and is cleaned away.
    rng = random.Random(5)
    pool = list("ab =?_,") + list("网络") + ["é", "\u0301", "\u00a0", "\u3000", "👍"]
    for _ in range(500):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 60)))
        for limit in (10, 180):
            assert clean_header_text(text, limit) == clean_header_text(text + "\x00", limit)


def test_tokens_refuse_spaces_and_controls() -> None:
    for bad in ["<a b@example.org>", "<a@example.org>\r\nBcc: x", "", "<网@example.org>"]:
        with pytest.raises(InvalidHeader):
            wire.tokens("References", [bad])


# --- addresses


NAMES = [
    "Alice Wang",
    '"Alice" <x@evil.example>, Eve',
    "Wang, Xiaoming",
    'back\\slash "quoted" (comment) [x]; y:',
    "王小明",
    "投诉中心 Complaints Desk",
    "O'Brien-Smith",
    "J. R. R. Tolkien",
    "=?utf-8?q?x?=",
    "王" * 78,
    "Very Long English Display Name That Goes On And On Past The Line Length Limit",
    'Quote "inside" a long ASCII name with, commas and <brackets> past the fold limit',
    "😀",
    "",
]


@pytest.mark.parametrize("name", NAMES)
def test_display_names_round_trip_to_one_mailbox(name: str) -> None:
    header = wire.addresses("To", [HeaderAddress(name, "alice", "example.org")])
    raw = mail_with(header).as_bytes()
    assert_well_formed(raw)
    to = parse(raw)["To"]
    assert len(to.addresses) == 1
    assert to.addresses[0].addr_spec == "alice@example.org"
    [(folded_name, addr_spec)] = email.utils.getaddresses([email.message_from_bytes(raw)["To"]])
    assert addr_spec == "alice@example.org"
    assert rfc2047_decoded(folded_name) == name
    if not re.search(r"\?=\s+=\?", header.folded):
        assert to.addresses[0].display_name == name
        assert str(header) == str(to)
    else:
        # The modern parser keeps the space between adjacent encoded-words of a display name
        # (RFC 2047 says to drop it, as it does itself in a Subject); the email package's own
        # folding of such a name shows the same, so only the characters are compared here.
        assert to.addresses[0].display_name.replace(" ", "") == name.replace(" ", "")


def test_random_display_names_stay_one_mailbox() -> None:
    pool = list("abcXYZ019 ,.;:\"'()<>@[]\\=?_-!*/+") + list("网络故障投诉中心") + ["é", "👍"]
    rng = random.Random(2047)
    for _ in range(300):
        name = "".join(rng.choice(pool) for _ in range(rng.randint(1, 78)))
        raw = mail_with(wire.addresses("To", [HeaderAddress(name, "bob", "example.org")]))\
            .as_bytes()
        assert_well_formed(raw)
        assert [a.addr_spec for a in parse(raw)["To"].addresses] == ["bob@example.org"], name
        [(folded_name, addr_spec)] = email.utils.getaddresses(
            [email.message_from_bytes(raw)["To"]])
        assert (rfc2047_decoded(folded_name), addr_spec) == (name, "bob@example.org")


def test_many_recipients_fold_between_addresses() -> None:
    people = [HeaderAddress(f"Person {i}, Team", f"p{i}", "desk.example.com") for i in range(12)]
    people.append(HeaderAddress("", "plain", "desk.example.com"))
    people.append(HeaderAddress("李四", "li", "xn--fsqu00a.xn--fiqs8s"))
    raw = mail_with(wire.addresses("To", people)).as_bytes()
    assert_well_formed(raw)
    back = parse(raw)["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in back] == [
        (a.display_name, a.addr_spec) for a in people]


# --- bodies


BODIES = [
    "Thank you, 谢谢.\n",
    "plain ascii\nsecond line\n",
    "no trailing newline",
    "",
    "x" * 2000 + "\n",  # over 998 octets on one line
    "网" * 1000 + "\n",  # 3,000 octets on one line
    "trailing spaces   \nand tabs\t\n",
    "From the start of a line\n.\n..\n--=_not-a-boundary\n--\n",
    "windows\r\nline\r\nends\r\n",
    "a = b =3D c ?= =? _\n",
    "mixed 中文 and English " * 40 + "\n",
]


@pytest.mark.parametrize("text", BODIES)
def test_text_and_html_bodies_come_back_exactly(text: str) -> None:
    html = f"<p>{text}</p>\n"
    raw = mail_with(wire.unstructured("Subject", "s"), text=text, html=html).as_bytes()
    assert_well_formed(raw)
    plain_part, html_part = parse(raw).iter_parts()
    expected = "\n".join(text.splitlines()) + "\n"
    assert plain_part.get_content().replace("\r\n", "\n") == expected
    assert html_part.get_content().replace("\r\n", "\n") == "\n".join(html.splitlines()) + "\n"
    assert plain_part.get_content_charset() == "utf-8"


def test_body_encoding_is_the_shortest_that_is_7bit() -> None:
    cases = {"short ascii\n": "7bit", "x" * 100 + "\n": "quoted-printable",
             "café au lait, a little non-ascii\n": "quoted-printable", LONG_ZH + "\n": "base64"}
    for text, cte in cases.items():
        part = parse(mail_with(text=text).as_bytes())
        assert part["Content-Transfer-Encoding"] == cte, text


# --- the message object and its bytes


def compose_all() -> list[wire.ComposedMessage]:
    original = dataclasses.replace(
        parsed({"References": "<root@example.org> <prev@example.org>"}),
        subject=LONG_ZH, normalized_subject=LONG_ZH)
    common = dict(message_id=make_message_id(DOMAIN, INSTALLATION),
                  loop_header_name="X-Complaints-Loop", loop_header_value=INSTALLATION, date=NOW)
    body = RenderedBody("您好，谢谢。\n" * 5, "<p>您好，谢谢。</p>\n")
    return [
        compose_ack(case_ref="C-000123", tag_format="[{ref}]", original=original,
                    from_address=Address("投诉中心 Complaints Desk", DESK),
                    to=Address('王小明 "Wang", Xiaoming', "wang@例子.中国"), body=body,
                    **common),  # type: ignore[arg-type]
        compose_staff_notification(case_ref="C-000123", tag_format="[{ref}]", original=original,
                                   from_address=DESK, to=["a@desk.example.com",
                                                          Address("Lead", "b@desk.example.com")],
                                   body=RenderedBody("text\n", None),
                                   reply_to="desk+c-000123@desk.example.com",
                                   **common),  # type: ignore[arg-type]
        compose_case_mail(case_ref="C-000123", tag_format="[{ref}]", subject="Re: 网络故障",
                          from_address=DESK, to=["alice@example.org"], body=body,
                          in_reply_to="<m1@example.org>", references=["<root@example.org>"],
                          attachments=[("报告 " * 30 + ".pdf", "application/pdf", b"%PDF" * 500),
                                       ("notes.txt", "text/plain", "注意\n".encode())],
                          **common),  # type: ignore[arg-type]
    ]


def test_the_object_says_what_its_bytes_say() -> None:
    for msg in compose_all():
        raw = msg.as_bytes()
        assert_well_formed(raw)
        back = parse(raw)
        assert list(msg.keys()) == list(back.keys())
        for name, value in msg.items():
            assert str(value) == str(back[name]), name
            assert not back[name].defects, name
        for name in ("From", "To", "Reply-To"):
            if name in msg:
                assert [(a.display_name, a.addr_spec) for a in msg[name].addresses] == [
                    (a.display_name, a.addr_spec) for a in back[name].addresses]
        assert [p.get_content_type() for p in msg.walk()] == [
            p.get_content_type() for p in back.walk()]
        for ours, theirs in zip(msg.walk(), back.walk(), strict=True):
            if not ours.is_multipart():
                assert ours.get_content() == theirs.get_content()  # type: ignore[attr-defined]
        # The email package's own generator, run over the object, writes the same bytes.
        assert EmailMessage.as_bytes(msg) == raw
        assert msg.raw is raw and msg.as_bytes(policy=email.policy.SMTP) is raw
        assert msg.as_string() == raw.decode("ascii")
        copied = copy.deepcopy(msg)
        assert copied.as_bytes() == raw and copied["To"].addresses == msg["To"].addresses


def test_attachment_names_and_structure() -> None:
    relay = compose_all()[2]
    back = parse(relay.as_bytes())
    assert back.get_content_type() == "multipart/mixed"
    body, pdf, notes = back.iter_parts()  # type: ignore[misc]
    assert body.get_content_type() == "multipart/alternative"
    assert pdf.get_filename() == "报告 " * 30 + ".pdf"
    assert pdf.get_content() == b"%PDF" * 500
    assert notes.get_filename() == "notes.txt"


def test_changing_the_message_after_composing_changes_its_bytes() -> None:
    msg = compose_all()[1]
    before = msg.as_bytes()
    del msg["X-Auto-Response-Suppress"]
    msg["X-Note"] = "added later"
    after = msg.as_bytes()
    assert after != before
    back = parse(after)
    assert "X-Auto-Response-Suppress" not in back and back["X-Note"] == "added later"
    assert back["Subject"] == parse(before)["Subject"]
    lf = compose_all()[0].as_bytes(policy=email.policy.default)
    assert b"\r\n" not in lf and parse(lf)["Subject"].startswith("[C-000123] ")


@pytest.mark.parametrize("text", BODIES)
def test_the_kept_text_is_what_a_reader_decodes(text: str) -> None:
    # outgoing_copy records it instead of decoding the part again: it must be the same text.
    people = (wire.addresses("From", [HeaderAddress("Desk", "desk", "example.com")]),
              wire.addresses("To", [HeaderAddress("", "alice", "example.org")]))
    for msg in (mail_with(*people, text=text), mail_with(*people, text=text, html="<p>x</p>\n")):
        assert msg.plain_text() == msg.get_body(("plain",)).get_content()
        assert outgoing_copy(msg).text == parse(msg.as_bytes()).get_body(
            ("plain",)).get_content()


def test_the_kept_text_is_forgotten_once_the_message_changes() -> None:
    for msg in compose_all():
        assert msg.plain_text() == msg.get_body(("plain",)).get_content()
        plain = msg.get_body(("plain",))
        plain.set_content("changed after composing\n")
        assert msg.plain_text() is None
        assert outgoing_copy(msg).text == "changed after composing\n"


def test_loop_header_cannot_take_a_content_header_name() -> None:
    for name in ("Content-Type", "MIME-Version", "content-transfer-encoding"):
        with pytest.raises(InvalidHeader, match="loop header"):
            compose_case_mail(case_ref="C-000123", tag_format="[{ref}]", subject="s",
                              from_address=DESK, to=["a@example.org"],
                              body=RenderedBody("x\n", None),
                              message_id=make_message_id(DOMAIN, INSTALLATION),
                              loop_header_name=name, loop_header_value="x", date=NOW)


def test_auto_submitted_must_be_a_keyword() -> None:
    with pytest.raises(InvalidHeader):
        compose_case_mail(case_ref="C-000123", tag_format="[{ref}]", subject="s",
                          from_address=DESK, to=["a@example.org"], body=RenderedBody("x\n", None),
                          message_id=make_message_id(DOMAIN, INSTALLATION),
                          loop_header_name="X-Complaints-Loop", loop_header_value="x", date=NOW,
                          auto_submitted="auto-replied\r\nBcc: x@evil.example")


def test_message_ids_too_long_for_a_line_are_dropped() -> None:
    huge = "<" + "a" * 1000 + "@example.org>"
    msg = compose_case_mail(case_ref="C-000123", tag_format="[{ref}]", subject="s",
                            from_address=DESK, to=["a@example.org"],
                            body=RenderedBody("x\n", None),
                            message_id=make_message_id(DOMAIN, INSTALLATION),
                            loop_header_name="X-Complaints-Loop", loop_header_value="x", date=NOW,
                            in_reply_to=huge, references=[huge, "<ok@example.org>"])
    back = parse(msg.as_bytes())
    assert "In-Reply-To" not in back and back["References"] == "<ok@example.org>"
