"""Hand-written mails from the clients our customers use: what the processor must see in each."""

from __future__ import annotations

import pytest

from processor.mail import ParsedMessage, parse_message
from tests.mail.conftest import sample


def parsed(name: str) -> ParsedMessage:
    return parse_message(sample(name))


NEW_TEXT = {
    "gmail-en.eml": "The engineer never came. I want a refund for November.\n\nAlice",
    "gmail-en-wrapped.eml": "Still charged twice, see attached statement.",
    "outlook-en.eml": "Nobody called me back as promised.\n\nRegards,\nCarol",
    "outlook-original-message.eml": "Please handle this one urgently.",
    "apple-mail.eml": "That is not acceptable.",
    "thunderbird.eml": "Answers inline.\n\nSunday evening.\n\nTwice.",
    "plain-quoting.eml": "Yes: 12 High Street.\n0123 456 789",
    "outlook-zh.eml": "你们的客服态度太差了，我要求经理回电。\n\n李四",
    "original-zh.eml": "请尽快处理。",
    "foxmail.eml": "问题还是没有解决，请再派人来。\n\n赵六",
    "qq-mail.eml": "我已经等了三天了！",
    "netease-163.eml": "好的，谢谢。",
    "netease-126.eml": "转给你们看看。",
    "zai-xiedao.eml": "我不同意这个处理结果。",
    "gmail-zh.eml": "话费被多扣了五十元。",
    "huawei-signature.eml": "家里信号太差，打电话总是断线。",
    "big5-reply.eml": "網絡仍然很慢，請盡快處理。",
}


@pytest.mark.parametrize(("name", "expected"), NEW_TEXT.items())
def test_new_text_keeps_only_what_the_sender_wrote(name: str, expected: str) -> None:
    message = parsed(name)
    assert message.new_text == expected
    assert expected.split("\n")[0] in message.text
    assert not message.defects


@pytest.mark.parametrize(("name", "sender", "subject", "normalized", "language"), [
    ("outlook-zh.eml", "李四", "回复: 投诉", "投诉", "zh"),
    ("original-zh.eml", "张三", "转发：投诉", "投诉", "zh"),
    ("qq-mail.eml", "钱七", "回复：投诉", "投诉", "zh"),
    ("netease-126.eml", "周星", "转发：投诉", "投诉", "zh"),
    ("big5-reply.eml", "陳大文", "回覆: 投訴", "投訴", "zh"),
    ("gmail-en-wrapped.eml", "Bob Jones", "RE: RE: Fwd: Billing", "Billing", "en"),
])
def test_headers_decoded_from_chinese_charsets(name: str, sender: str, subject: str,
                                               normalized: str, language: str) -> None:
    message = parsed(name)
    assert message.from_ is not None and message.from_.name == sender
    assert message.subject == subject
    assert message.normalized_subject == normalized
    assert message.language == language


def test_malformed_encoded_words_and_parameters() -> None:
    message = parsed("headers-malformed.eml")
    assert message.from_ is not None
    # Encoded word inside a quoted display name; domain lower-cased, local part kept.
    assert (message.from_.name, message.from_.address) == ("王小明", "Wang@example.cn")
    # Words glued together, a character split across two words, lower-case charset names.
    assert message.subject == "投诉宽带问题 end"
    assert [a.name for a in message.to] == ["Service Desk", "Bob"]
    assert message.cc[0].name == "Someone"
    assert "header: unknown charset 'x-unknown-cs' in encoded word" in message.defects
    assert message.in_reply_to == "<orig-1@example.com>"
    assert message.references == ("<a@x>", "<b@y>", "<c@z>")
    names = [a.filename for a in message.attachments]
    # Foxmail's encoded word inside a quoted filename; RFC 2231 continuations with charset;
    # a path stripped to its last component; a default name for an unnamed part.
    assert names == ["发票.pdf", "投诉材料.txt", "passwd", "attachment-4.png"]
    assert message.attachments[0].payload.startswith(b"%PDF")
    assert message.header("subject") == "投诉宽带问题  end"


def test_html_only_mail_becomes_readable_text() -> None:
    message = parsed("html-only-qq.eml")
    assert message.text == "您好，\n\n第一段\n第二行\n\n一\n二\n\nA B\nC D\n\n详情见这里。"
    assert message.html is not None and "<script>" in message.html
    assert "alert" not in message.text and "ignored" not in message.text
    (logo,) = message.attachments
    assert (logo.filename, logo.inline, logo.content_id) == ("logo.png", True, "logo@qq")


def test_alternative_prefers_plain_unless_it_is_a_stub() -> None:
    assert parsed("alternative-plain.eml").text == "Plain version wins."
    assert parsed("alternative-stub.eml").text == "The real complaint text."


def test_calendar_tnef_and_signature_are_attachments_never_body() -> None:
    calendar = parsed("alternative-plain.eml").attachments
    assert [a.content_type for a in calendar] == ["text/calendar"]
    message = parsed("special-attachments.eml")
    assert message.text == "See attached."
    assert [a.filename for a in message.attachments] == ["winmail.dat", "smime.p7s"]


def test_broken_transfer_encodings_are_repaired_and_reported() -> None:
    message = parsed("broken-encodings.eml")
    assert message.text == "Café =ZZ broken escape and a soft break."
    assert message.attachments[0].payload == b"hello world"
    assert "text/plain: invalid quoted-printable escape kept literally" in message.defects
    assert "attachment: broken base64 repaired" in message.defects


@pytest.mark.parametrize(("name", "text", "defect"), [
    ("undeclared-gbk.eml", "你们的宽带服务太差了", "text/plain: charset detected as gb18030"),
    ("mislabelled-utf8.eml", "客服电话一直打不通。",
     "text/plain: declared iso-8859-1 but content is utf-8"),
    ("wrong-gb2312.eml", "镕和堃都不在GB2312里。", None),
    ("undecodable.eml", "ok \ufffd\ufffd\ufffd\ufffd end",
     "text/plain: 4 undecodable bytes replaced (decoded as utf-8)"),
])
def test_charsets_detected_or_replaced(name: str, text: str, defect: str | None) -> None:
    message = parsed(name)
    assert message.text.startswith(text)
    if defect is None:
        assert not message.defects
    else:
        assert defect in message.defects


@pytest.mark.parametrize(("name", "reason"), [
    ("autoreply-zh.eml", "auto-reply subject: '自动回复：投诉'"),
    ("autoreply-outlook.eml", "Auto-Submitted: auto-replied"),
    ("mailing-list.eml", "Precedence: bulk"),
    ("bounce.eml", "null Return-Path (a bounce)"),
    ("bounce.eml", "multipart/report (a delivery or read report)"),
])
def test_automatic_mail_is_recognised(name: str, reason: str) -> None:
    message = parsed(name)
    assert message.auto_submitted
    assert reason in message.auto_reasons


@pytest.mark.parametrize("name", sorted(NEW_TEXT))
def test_mail_from_people_is_not_automatic(name: str) -> None:
    assert not parsed(name).auto_submitted


def test_bounce_report_parts_are_attachments() -> None:
    message = parsed("bounce.eml")
    assert message.text == "This is the mail system. Your message could not be delivered."
    assert [a.content_type for a in message.attachments] == [
        "message/delivery-status", "message/rfc822"]
    assert message.forwarded[0].subject == "Your case C-000123"


def test_forwarded_message_is_parsed_and_reachable() -> None:
    message = parsed("forwarded-rfc822.eml")
    assert message.text == "Forwarding the complaint below."
    (inner,) = message.forwarded
    assert inner.subject == "投诉" and inner.text == "网络又断了。"
    assert inner.from_ is not None and inner.from_.name == "张三"
    assert [a.filename for a in message.all_attachments()] == ["complaint.eml", "photo.jpg"]
    assert message.as_json()["forwarded"][0]["subject"] == "投诉"


def test_iso_2022_jp_and_lower_case_q_words() -> None:
    body = "苦情です。".encode("iso-2022-jp")
    raw = (b"From: =?iso-2022-jp?B?GyRCOzNFRBsoQg==?= <yamada@example.jp>\r\n"
           b"Subject: =?utf-8?q?caf=C3=A9_?= =?utf-8?q?ok?=\r\n"
           b"Content-Type: text/plain; charset=ISO-2022-JP\r\n\r\n" + body)
    message = parse_message(raw)
    assert message.from_ is not None and message.from_.name == "山田"
    assert message.subject == "café ok"
    assert message.text == "苦情です。"
    assert message.language == "ja"


def test_usable_tells_an_empty_result_from_a_real_mail() -> None:
    assert parsed("gmail-en.eml").usable
    assert not parse_message(b"\r\n\r\n").usable
