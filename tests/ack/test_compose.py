"""compose_ack and friends: threading headers, robot markers, and no way to inject a header."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
from datetime import UTC, datetime

import pytest

from processor.compose import (
    InvalidAddress,
    ack_subject,
    clean_header_text,
    compose_ack,
    compose_staff_notification,
    is_our_message_id,
    make_message_id,
    validate_address,
)
from processor.loopguard import robot_signals
from processor.mail import parse_message
from processor.mail.model import Address, ParsedMessage
from processor.render import RenderedBody
from tests.ack.helpers import CTX, DESK, DOMAIN, INSTALLATION, parsed

NOW = datetime(2024, 6, 3, 4, 0, tzinfo=UTC)
BODY = RenderedBody(text="Thank you, 谢谢.\n", html="<p>Thank you, 谢谢.</p>\n")
ACK_HEADERS = ["from", "to", "subject", "date", "message-id", "in-reply-to", "references",
               "auto-submitted", "x-auto-response-suppress", "x-complaints-loop",
               "mime-version", "content-type"]


def ack_for(original: ParsedMessage, to: Address | None = None, **kwargs: object
            ) -> email.message.EmailMessage:
    args: dict = dict(case_ref="C-000123", tag_format="[{ref}]", original=original,
                      from_address=Address("Complaints Desk", DESK),
                      to=to or original.from_, body=BODY,
                      message_id=make_message_id(DOMAIN, INSTALLATION),
                      loop_header_name="X-Complaints-Loop", loop_header_value=INSTALLATION,
                      date=NOW)
    args.update(kwargs)
    return compose_ack(**args)


def on_the_wire(msg: email.message.EmailMessage) -> email.message.EmailMessage:
    """What a receiving MTA sees: the bytes we would send, parsed by the stdlib."""
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


def recipients(msg: email.message.EmailMessage) -> list[str]:
    values = [str(v) for h in ("to", "cc", "bcc") for v in msg.get_all(h, [])]
    return [addr for _, addr in email.utils.getaddresses(values)]


def test_message_ids_are_unguessable_and_recognisable() -> None:
    ids = {make_message_id(DOMAIN, INSTALLATION) for _ in range(100)}
    assert len(ids) == 100
    one = ids.pop()
    assert one.startswith("<") and one.endswith(f".{INSTALLATION}@{DOMAIN}>")
    assert is_our_message_id(one, DOMAIN, INSTALLATION)
    assert is_our_message_id(one.replace(DOMAIN, DOMAIN.upper()), DOMAIN, INSTALLATION)
    assert not is_our_message_id(one, "other.example", INSTALLATION)
    assert not is_our_message_id(one, DOMAIN, "other")
    assert not is_our_message_id(f"<short.{INSTALLATION}@{DOMAIN}>", DOMAIN, INSTALLATION)


def test_ack_headers_and_threading() -> None:
    original = parsed({"References": "<root@example.org> <prev@example.org>"})
    wire = on_the_wire(ack_for(original))
    assert [k.lower() for k in wire.keys()] == ACK_HEADERS
    assert wire["Subject"] == "[C-000123] My internet is down again"
    assert wire["In-Reply-To"] == "<m1@example.org>"
    assert wire["References"].split() == ["<root@example.org>", "<prev@example.org>",
                                          "<m1@example.org>"]
    assert wire["Auto-Submitted"] == "auto-replied"
    assert wire["X-Auto-Response-Suppress"] == "All"
    assert wire["X-Complaints-Loop"] == INSTALLATION
    assert is_our_message_id(wire["Message-ID"], DOMAIN, INSTALLATION)
    assert email.utils.parsedate_to_datetime(wire["Date"]) == NOW
    assert recipients(wire) == ["alice@example.org"]
    assert wire["From"].addresses[0].addr_spec == DESK
    assert wire.get_content_type() == "multipart/alternative"
    plain, html = wire.get_payload()
    assert plain.get_content().replace("\r\n", "\n") == BODY.text
    assert html.get_content().replace("\r\n", "\n") == BODY.html
    assert plain.get_content_charset() == "utf-8"
    assert all(byte < 128 for byte in ack_for(original).as_bytes())  # 7bit-clean for any relay


def test_our_ack_coming_back_is_recognised_as_ours() -> None:
    ack = ack_for(parsed())
    assert {"from-our-address", "our-loop-header", "auto-submitted:auto-replied"} <= set(
        robot_signals(parse_message(ack.as_bytes()), CTX))


def test_references_are_capped_keeping_the_root() -> None:
    refs = " ".join(f"<r{i}@example.org>" for i in range(40))
    wire = on_the_wire(ack_for(parsed({"References": refs})))
    ids = wire["References"].split()
    assert len(ids) == 20
    assert ids[0] == "<r0@example.org>" and ids[-1] == "<m1@example.org>"


def test_original_without_message_id_has_no_threading_headers() -> None:
    wire = on_the_wire(ack_for(parsed({"Message-ID": None})))
    assert "In-Reply-To" not in wire and "References" not in wire


def test_malformed_message_ids_are_dropped() -> None:
    original = dataclasses.replace(parsed(), message_id="<a@b>\r\nBcc: x@evil.example",
                                   references=("not-an-id", "<ok@example.org>"))
    wire = on_the_wire(ack_for(original))
    assert "In-Reply-To" not in wire and wire["References"] == "<ok@example.org>"


# --- injection attempts: the decoded subject or display name must stay one header's value

INJECTIONS = [
    "Hello\r\nBcc: victim@evil.example",
    "Hello\nBcc: victim@evil.example\n\nbody",
    "Hello\rTo: victim@evil.example",
    "=?utf-8?q?a=0D=0ABcc:_x@evil.example?=",
    "x =?utf-8?b?DQpCY2M6IHhAZXZpbC5leGFtcGxl?= y",
    "Hello\u2028Bcc: x@evil.example\u0085Cc: y@evil.example",
    "\u202eevil\u202c ok\x00\x1b[31m",
]


def assert_only_intended(msg: email.message.EmailMessage, headers: list[str],
                         to: list[str], text_in: str = "subject") -> email.message.EmailMessage:
    """Exactly `headers`, exactly `to`, and the hostile text only inside the `text_in` header."""
    wire = on_the_wire(msg)
    assert [k.lower() for k in wire.keys()] == headers
    assert recipients(wire) == to
    assert "evil" not in "".join(str(v) for k, v in wire.items() if k.lower() != text_in)
    for value in wire.values():
        assert "\r" not in str(value) and "\n" not in str(value)
    return wire


@pytest.mark.parametrize("subject", INJECTIONS)
def test_subject_injection_stays_in_the_subject(subject: str) -> None:
    original = dataclasses.replace(parsed(), subject=subject, normalized_subject=subject)
    wire = assert_only_intended(ack_for(original), ACK_HEADERS, ["alice@example.org"])
    assert wire["Subject"].startswith("[C-000123] ")


def test_encoded_word_in_the_raw_subject_decoded_by_the_parser() -> None:
    original = parsed({"Subject": "=?utf-8?q?a=0D=0ABcc:_x@evil.example?="})
    assert_only_intended(ack_for(original), ACK_HEADERS, ["alice@example.org"])


@pytest.mark.parametrize("name", INJECTIONS + ['"Alice" <x@evil.example>, Eve'])
def test_display_name_injection_stays_in_the_display_name(name: str) -> None:
    to = Address(name, "alice@example.org")
    wire = assert_only_intended(ack_for(parsed(), to=to), ACK_HEADERS, ["alice@example.org"],
                                text_in="to")
    assert len(wire["To"].addresses) == 1


def test_parsed_display_name_with_encoded_crlf() -> None:
    # Whatever the parser makes of this From, the ack goes to one plain address or not at all.
    original = parsed({"From": "=?utf-8?q?Eve=0D=0ABcc:_x@evil.example?= <eve@example.org>"})
    assert original.from_ is not None
    try:
        msg = ack_for(original)
    except InvalidAddress:
        return
    assert_only_intended(msg, ACK_HEADERS, [original.from_.address], text_in="to")


@pytest.mark.parametrize("address", [
    "alice@example.org\r\nBcc: x@evil.example", "alice@example.org, x@evil.example",
    "alice", "@example.org", "alice@", "alice@@example.org", "a b@example.org",
    '"a\r\nb"@example.org', "alice@exa mple.org", "alice@-bad-.org", "<alice@example.org>",
    "=?utf-8?q?x?=@example.org", "alice@example.org>", "a" * 65 + "@example.org",
])
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(InvalidAddress):
        validate_address(address)
    with pytest.raises(InvalidAddress):
        ack_for(parsed(), to=Address("x", address))


def test_idn_domains_are_encoded() -> None:
    assert validate_address("li@例子.中国") == "li@xn--fsqu00a.xn--fiqs8s"


def test_very_long_subject_is_cut_at_a_character_boundary() -> None:
    long_en = "Internet outage " * 40
    long_zh = "网络" * 200 + "故障"
    combining = "e\u0301" * 300
    for subject in (long_en, long_zh, combining, "👨‍👩‍👧" * 100):
        result = ack_subject("[C-000123]", subject)
        assert len(result) <= 180 and result.endswith("…")
        assert result.startswith("[C-000123] ")
        original = dataclasses.replace(parsed(), subject=subject, normalized_subject=subject)
        wire = on_the_wire(ack_for(original))
        assert wire["Subject"] == result
    cut_en = ack_subject("[C-000123]", long_en)
    assert (cut_en[len("[C-000123] "):-1] + " ") in long_en  # cut between words
    assert ack_subject("[C-000123]", combining)[-2] == "\u0301"  # e keeps its accent


def test_ack_subject_drops_their_forward_prefixes() -> None:
    wire = on_the_wire(ack_for(parsed({"Subject": "Fwd: 转发: Internet down"})))
    assert wire["Subject"] == "[C-000123] Internet down"


def test_subject_already_carrying_the_tag_is_not_tagged_twice() -> None:
    assert ack_subject("[C-000123]", "Re: [C-000123] still broken") == "Re: [C-000123] still broken"
    assert ack_subject("[C-000123]", "") == "[C-000123]"


def test_clean_header_text() -> None:
    assert clean_header_text(" a\tb \r\n c ") == "a b c"
    assert clean_header_text("x\u202eY\u200dZ") == "xY\u200dZ"
    assert clean_header_text("=?utf-8?q?x?=") == "= ?utf-8?q?x?="


def test_staff_notification() -> None:
    msg = compose_staff_notification(
        case_ref="C-000123", tag_format="[{ref}]",
        original=dataclasses.replace(parsed(), subject="Help\r\nBcc: x@evil.example"),
        from_address=DESK, to=["team@desk.example.com", Address("Lead", "lead@desk.example.com")],
        body=RenderedBody("text\n", None), message_id=make_message_id(DOMAIN, INSTALLATION),
        loop_header_name="X-Complaints-Loop", loop_header_value=INSTALLATION, date=NOW)
    headers = ["from", "to", "subject", "date", "message-id", "auto-submitted",
               "x-auto-response-suppress", "x-complaints-loop", "content-type",
               "content-transfer-encoding", "mime-version"]
    wire = assert_only_intended(msg, headers, ["team@desk.example.com", "lead@desk.example.com"])
    assert wire["Auto-Submitted"] == "auto-generated"
    assert wire.get_content_type() == "text/plain"
    assert wire["Subject"] == "[C-000123] Help Bcc: x@evil.example"


def test_loop_header_name_must_be_a_new_field_name() -> None:
    with pytest.raises(Exception, match="loop header"):
        ack_for(parsed(), loop_header_name="To")
    with pytest.raises(Exception, match="loop header"):
        ack_for(parsed(), loop_header_name="X-Bad: yes")


def test_the_last_check_refuses_a_message_that_would_change_on_the_wire() -> None:
    # Defence in depth: were clean_header_text ever bypassed, Python's own folding would decode
    # this encoded-word into a real line break; the re-parse check must catch that.
    from processor.compose import POLICY, InvalidHeader, _verify_headers

    msg = email.message.EmailMessage(policy=POLICY)
    msg["Subject"] = "x =?utf-8?q?a=0D=0ABcc:_x@evil.example?= y"
    msg.set_content("hi")
    with pytest.raises(InvalidHeader):
        _verify_headers(msg)
