"""The digest rendered as HTML and text, parsed back: the figures are where a reader looks."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import Engine

from processor.db import session_scope
from processor.digest import Digest, collect_digest, render_digest
from tests.digest.fixture import END, START, digest_settings


def _digest(engine: Engine, **settings: object) -> Digest:
    with session_scope(engine) as session:
        return collect_digest(session, digest_settings(**settings), START, END)


def _cell(soup: BeautifulSoup, element_id: str) -> str:
    element = soup.find(id=element_id)
    assert element is not None, element_id
    return element.get_text(" ", strip=True)


def _row(soup: BeautifulSoup, element_id: str) -> list[str]:
    row = soup.find(id=element_id)
    assert row is not None, element_id
    return [td.get_text(" ", strip=True) for td in row.find_all("td")[1:]]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_html_carries_the_figures(desk: Engine, language: str) -> None:
    digest = _digest(desk)
    html = render_digest(digest, digest_settings(), language=language).html
    assert html is not None
    soup = BeautifulSoup(html, "html.parser")
    figures = {"new-total": "5", "open-total": "8", "resolved": "2", "closed": "1",
               "awaiting-total": "4", "overdue-total": "2", "due-soon-total": "1",
               "reopened-total": "1", "appeals-total": "1", "regulator-total": "2",
               "quarantined": "1", "outbox-failed": "1"}
    for element_id, value in figures.items():
        assert _cell(soup, element_id) == value, element_id
    unit = "h" if language == "en" else "小时"
    assert _row(soup, "first-response") == [f"4.0 {unit}", f"15.2 {unit}", "3"]
    assert _row(soup, "resolution") == [f"219.0 {unit}", f"386.2 {unit}", "2"]

    rows = soup.find(id="awaiting").find_all("tr")[1:]
    assert [r.find("a").get_text() for r in rows] == [
        "[C-000002]", "[C-000001]", "[C-000009]", "[C-000004]"]
    assert [r.find(class_="hours").get_text(" ", strip=True) for r in rows][:2] == [
        f"23.0 {unit}", f"18.0 {unit}"]
    link = urlsplit(rows[0].find("a")["href"])
    assert (link.scheme, link.path) == ("mailto", "complaints@example.com")
    assert parse_qs(link.query)["subject"] == ["[C-000002]"]
    assert "[C-000007]" in _cell(soup, "appeals")  # the case appealed against
    by_category = _cell(soup, "by-category")
    assert "billing 3" in by_category and "uncategorized 1" in by_category
    assert "brand2 0 1" in _cell(soup, "mailboxes")
    assert "a***@example.com 2 [C-000002] [C-000003]" in _cell(soup, "repeat-senders")

    # Safe in every mail client: no scripts, no remote images or stylesheets, inline CSS only.
    assert soup.find(["script", "img", "link", "style", "iframe"]) is None
    assert all(not a["href"].startswith("http") for a in soup.find_all("a"))
    assert "alice@example.com" not in html and "Complaint number" not in html


def test_text_carries_the_figures(desk: Engine) -> None:
    text = render_digest(_digest(desk), digest_settings(), language="en").text
    assert "Complaint digest for 2026-11-28" in text
    assert "2026-11-27 08:00 to 2026-11-28 08:00 (Asia/Shanghai)" in text
    assert "  New cases             5\n" in text
    assert "  Open at end of period 8\n" in text
    assert "median 4.0 h, 90th percentile 15.2 h (3 cases)" in text
    assert "[C-000002]   billing              waiting 23.0 h" in text
    assert "(appeal of [C-000007])" in text
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "Complaint number" not in text


def test_subjects_appear_when_configured(desk: Engine) -> None:
    digest = _digest(desk, include_subjects=True)
    body = render_digest(digest, digest_settings(include_subjects=True), language="en")
    assert "Complaint number 2" in body.text
    assert "second line" not in body.text
    assert "Complaint number 2" in (body.html or "")


def test_the_empty_day_renders(engine: Engine) -> None:
    for language in ("en", "zh"):
        body = render_digest(_digest(engine), digest_settings(), language=language)
        soup = BeautifulSoup(body.html or "", "html.parser")
        assert soup.find(id="empty") is not None
        assert _cell(soup, "new-total") == "0"
        assert soup.find(id="awaiting") is None
    assert "Nothing happened in this period" in render_digest(
        _digest(engine), digest_settings(), language="en").text
