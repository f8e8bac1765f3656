"""Template rendering: languages, missing-detail questions, overrides, errors with file:line."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from processor.compose import ack_context
from processor.errors import TemplateError
from processor.mail.model import Address, Attachment
from processor.render import TemplateRenderer, builtin_templates_dir, format_when

CST = timezone(timedelta(hours=8))
WHEN = datetime(2024, 6, 3, 14, 30, tzinfo=CST)


TECHNICAL = ("time", "frequency", "scenario", "impact", "expected_resolution")
CONDUCT_WITHOUT_TIME = ("agent_id", "what_was_said", "expected_resolution")
OTHER = ("expected_resolution",)


def ack(missing: tuple[str, ...], subject: str = "My internet is down") -> dict:
    # `missing` comes from the classification (the rules' `needs` per category).
    return ack_context(case_ref="C-000123", subject=subject, category_label="Technical fault",
                       first_answer_by=WHEN, sla_hours=24, missing=missing)


@pytest.fixture()
def renderer() -> TemplateRenderer:
    return TemplateRenderer.with_override(None, default_language="en")


def test_builtin_dir_and_names(renderer: TemplateRenderer) -> None:
    assert builtin_templates_dir() == Path(__file__).resolve().parents[2] / "templates"
    assert {"ack-default", "staff-new-case"} <= renderer.available_templates()
    assert renderer.languages("ack-default") == {"en", "zh"}


def test_english_technical_fault_asks_the_four_questions(renderer: TemplateRenderer) -> None:
    body = renderer.render_pair("ack-default", "en", ack(TECHNICAL))
    for question in ("When did this happen", "How often", "In which situation",
                     "What impact", "What resolution"):
        assert question in body.text and question in (body.html or "")
    assert "agent" not in body.text
    assert "C-000123" in body.text
    assert "Monday 3 June 2024, 14:30 (UTC+08:00)" in body.text
    assert "within 24 hours" in body.text
    assert "keep the reference" in body.text


def test_chinese_agent_conduct_asks_its_own_questions(renderer: TemplateRenderer) -> None:
    body = renderer.render_pair("ack-default", "zh-CN", ack(CONDUCT_WITHOUT_TIME))
    assert "工号" in body.text and "通话中具体说了什么" in body.text
    assert "您希望我们如何解决" in body.text
    assert "什么时候发生" not in body.text  # already given
    assert "频率" not in body.text  # not asked for this category
    assert "2024年6月3日（星期一）14:30" in body.text
    assert body.html is not None and '<html lang="zh">' in body.html


def test_unknown_language_falls_back_to_the_default(renderer: TemplateRenderer) -> None:
    assert "Thank you for contacting us" in renderer.render_pair(
        "ack-default", "fr", ack(OTHER)).text
    zh_default = TemplateRenderer.with_override(None, default_language="zh")
    assert "感谢您与我们联系" in zh_default.render_pair("ack-default", "de", ack(OTHER)).text


def test_html_is_escaped_and_has_no_remote_content(renderer: TemplateRenderer) -> None:
    body = renderer.render_pair("ack-default", "en",
                                ack(OTHER, subject='<img src="http://evil/x">'))
    assert body.html is not None
    assert "<img" not in body.html and "&lt;img" in body.html
    assert "http" not in body.html.replace("&#34;http://evil/x&#34;", "")
    assert "<script" not in body.html


def test_ack_echoes_nothing_but_the_subject(renderer: TemplateRenderer) -> None:
    # The ack context has no field for the complaint's text, and StrictUndefined means a template
    # cannot reach for one: referring to `text` is an error, not silently empty.
    context = ack(OTHER)
    assert "text" not in context
    for language in ("en", "zh"):
        body = renderer.render_pair("ack-default", language, context)
        assert "My internet is down" in body.text


def test_staff_notification_lists_text_details_attachments(renderer: TemplateRenderer) -> None:
    context = {"case_ref": "C-000124", "subject": "Rude agent", "category_label": "Agent conduct",
               "priority": "high", "complainant": Address("张三", "zhang@example.cn"),
               "text": "The agent <b>shouted</b> at me.", "details": {"agent_id": "A-17"},
               "attachments": [Attachment("call.mp3", "audio/mpeg", 2048, "0" * 64, False, None)]}
    for language, words in (("en", "Attachments (1)"), ("zh", "附件（1 个）")):
        body = renderer.render_pair("staff-new-case", language, context)
        assert words in body.text and "call.mp3" in body.text and "A-17" in body.text
        assert "张三 <zhang@example.cn>" in body.text
        assert "The agent <b>shouted</b> at me." in body.text
        assert body.html is not None and "&lt;b&gt;shouted&lt;/b&gt;" in body.html


def test_override_directory_wins_per_file(tmp_path: Path) -> None:
    (tmp_path / "ack-default.en.txt.j2").write_text("Custom {{ case_ref }}\n", encoding="utf-8")
    renderer = TemplateRenderer.with_override(tmp_path)
    body = renderer.render_pair("ack-default", "en", ack(OTHER))
    assert body.text == "Custom C-000123\n"
    assert body.html is not None and "Thank you" in body.html  # not overridden: built-in
    assert "Custom" not in renderer.render_pair("ack-default", "zh", ack(OTHER)).text


def test_text_only_template_has_no_html(tmp_path: Path) -> None:
    (tmp_path / "short.en.txt.j2").write_text("Hi\n", encoding="utf-8")
    body = TemplateRenderer([tmp_path]).render_pair("short", "en", {})
    assert (body.text, body.html) == ("Hi\n", None)
    assert TemplateRenderer([tmp_path]).available_templates() == {"short"}


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.en.txt.j2").write_text("line one\nline two {% if %}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"broken\.en\.txt\.j2:2:"):
        TemplateRenderer([tmp_path]).render_pair("broken", "en", {})


def test_undefined_variable_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "typo.en.txt.j2").write_text("Dear customer\n\n{{ case_rfe }}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"typo\.en\.txt\.j2:3: UndefinedError.*case_rfe"):
        TemplateRenderer([tmp_path]).render_pair("typo", "en", {"case_ref": "C-1"})


def test_error_inside_an_imported_piece_names_that_piece(tmp_path: Path) -> None:
    (tmp_path / "_bits.en.j2").write_text("{% set x = 1 %}\n{{ nope.attr }}\n", encoding="utf-8")
    (tmp_path / "uses.en.txt.j2").write_text('{% import "_bits.en.j2" as bits %}\nok\n',
                                             encoding="utf-8")
    with pytest.raises(TemplateError, match=r"_bits\.en\.j2:2:"):
        TemplateRenderer([tmp_path]).render_pair("uses", "en", {})


def test_missing_template_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="no template nothing.en.txt.j2"):
        TemplateRenderer([tmp_path]).render_pair("nothing", "en", {})


def test_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    (tmp_path / "evil.en.txt.j2").write_text("{{ ''.__class__.__mro__ }}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"evil\.en\.txt\.j2:1:"):
        TemplateRenderer([tmp_path]).render_pair("evil", "en", {})


def test_format_when_accepts_a_ready_string() -> None:
    assert format_when("tomorrow morning", "en") == "tomorrow morning"
    assert format_when(datetime(2024, 6, 9, 8, 5), "zh") == "2024年6月9日（星期日）08:05"


def test_an_edited_template_shows_within_the_listing_interval(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """Jinja is asked whether a file changed at most every LISTING_SECONDS, not at every use
    (each check is a stat that gives the interpreter lock away)."""
    import processor.render as render

    now = [1000.0]
    monkeypatch.setattr(render.time, "monotonic", lambda: now[0])
    template = tmp_path / "note.en.txt.j2"
    template.write_text("first {{ n }}", encoding="utf-8")
    renderer = TemplateRenderer([tmp_path])
    assert renderer.render_file("note.en.txt.j2", {"n": 1}) == "first 1"
    template.write_text("second {{ n }}", encoding="utf-8")
    os.utime(template, (1, 1))  # a time Jinja cannot mistake for the first version's
    now[0] += render.LISTING_SECONDS / 2
    assert renderer.render_file("note.en.txt.j2", {"n": 2}) == "first 2"
    now[0] += render.LISTING_SECONDS
    assert renderer.render_file("note.en.txt.j2", {"n": 3}) == "second 3"
