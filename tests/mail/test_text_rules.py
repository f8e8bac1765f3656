"""Worked examples for the pure text rules: quoting, signatures, subjects, HTML, language."""

from __future__ import annotations

import pytest

from processor.mail import fold_for_matching, normalize_subject
from processor.mail.html import html_to_text
from processor.mail.language import detect_language
from processor.mail.quoting import extract_new_text


@pytest.mark.parametrize(("text", "expected"), [
    ("Fix it.\n-- \nJohn Smith\nACME", "Fix it."),
    ("Fix it.\n\nSent from my iPhone", "Fix it."),
    ("Fix it.\n\nGet Outlook for Android", "Fix it."),
    ("快点修好。\n\n发自我的iPhone", "快点修好。"),
    ("快点修好。\n\n发自我的华为手机\n", "快点修好。"),
    ("快点修好。\n\n发件人：客服\n发送时间：2026年11月3日\n收件人：我\n主题：投诉", "快点修好。"),
    # Full-width colons and letters fold to ASCII before matching.
    ("Ｏｋ.\n\nＦｒｏｍ：Desk\nＳｅｎｔ：today", "Ｏｋ."),
    ("好。\n\n在 2026年11月3日 15:04，某某 写道：\n> 旧", "好。"),
    ("好。\n—— 原始邮件 ——\n发件人：客服", "好。"),
    ("Hi\n\n---------- Forwarded message ---------\nFrom: a", "Hi"),
    ("Hi\n\nBegin forwarded message:\n\nFrom: a", "Hi"),
    ("Hi\n\nOn Mon, 2 Nov 2026, Desk wrote:\n> old\n> older", "Hi"),
    ("Hi\n\nAm 02.11.2026 um 10:00 schrieb Desk:\n> alt", "Hi"),
    # A "From:" line inside the complaint with no header block after it is kept.
    ("From: my flat the noise is unbearable.\nPlease act.", "From: my flat the noise is "
                                                           "unbearable.\nPlease act."),
    ("> only a quote\n> nothing new", ""),
    ("", ""),
])
def test_extract_new_text(text: str, expected: str) -> None:
    assert extract_new_text(text) == expected


@pytest.mark.parametrize(("subject", "expected"), [
    ("Re: RE: Fwd: hello", "hello"),
    ("回复：转发: 投诉 ", "投诉"),
    ("答复: Re：AW: x", "x"),
    ("[Fwd: Re: test]", "test"),
    ("【回复】【转发】主题", "主题"),
    ("Ｒｅ：ｔｅｓｔ", "test"),
    ("RE[2]: x", "x"),
    ("Fw: a (fwd)", "a"),
    ("Reply to me", "Reply to me"),
    ("回复:回复:回复:移动宽带投诉", "移动宽带投诉"),
    ("Re: " * 200 + "deep", "deep"),
])
def test_normalize_subject(subject: str, expected: str) -> None:
    assert normalize_subject(subject) == expected


def test_fold_for_matching() -> None:
    assert fold_for_matching("ＨＥＬＬＯ　１２３：  World") == "hello 123: world"


def test_html_to_text_structure() -> None:
    html = ("<div><div>Hi</div></div><p>A <a href='http://x'>link</a><br>B</p>"
            "<ul><li>one</li><li>two</li></ul><!-- secret --><style>x{}</style>")
    assert html_to_text(html) == "Hi\n\nA link\nB\n\none\ntwo"


def test_html_to_text_deep_nesting_does_not_recurse() -> None:
    assert html_to_text("<div>" * 20000 + "deep" + "</div>" * 20000) == "deep"


@pytest.mark.parametrize(("subject", "text", "language"), [
    ("投诉", "宽带断了 WiFi router", "zh"),
    ("Complaint", "The line is dead.", "en"),
    ("", "Линия не работает", "ru"),
    ("", "", "en"),
])
def test_detect_language(subject: str, text: str, language: str) -> None:
    assert detect_language(subject, text) == language
