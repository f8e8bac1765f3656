"""`complaints parse`: the JSON shape documented in README, standard input, and clean errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from processor.cli import main
from tests.mail.conftest import SAMPLES, sample

KEYS = {"message_id", "in_reply_to", "references", "date", "from", "to", "cc", "reply_to",
        "subject", "language", "text", "new_text", "html", "attachments", "normalized_subject",
        "auto_submitted", "auto_reasons", "defects"}


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["parse", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_json_of_a_qq_mail_reply() -> None:
    code, out, _ = run(str(SAMPLES / "qq-mail.eml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert KEYS <= data.keys()
    assert data["from"] == {"name": "钱七", "address": "12345@qq.com"}
    assert data["to"] == [{"name": "投诉中心", "address": "complaints@example.com"}]
    assert data["date"] == "2026-11-03T07:04:05Z"
    assert data["subject"] == "回复：投诉" and data["normalized_subject"] == "投诉"
    assert data["language"] == "zh"
    assert data["new_text"] == "我已经等了三天了！"
    assert "原始邮件" in data["text"]
    assert data["html"] is None and data["attachments"] == []
    assert data["auto_submitted"] is False and data["auto_reasons"] == []
    assert data["defects"] == []


def test_json_attachments_and_auto_reply_from_standard_input() -> None:
    code, out, _ = run("-", "--json", stdin=sample("bounce.eml"))
    assert code == 0
    data = json.loads(out)
    assert data["auto_submitted"] is True
    assert "null Return-Path (a bounce)" in data["auto_reasons"]
    first = data["attachments"][0]
    assert set(first) == {"filename", "content_type", "size", "sha256", "inline", "content_id"}
    assert first["content_type"] == "message/delivery-status"
    assert len(first["sha256"]) == 64


def test_json_html_mail_with_inline_image() -> None:
    data = json.loads(run(str(SAMPLES / "html-only-qq.eml"), "--json")[1])
    assert data["html"].startswith("<html>")
    assert data["attachments"][0]["inline"] is True
    assert data["attachments"][0]["content_id"] == "logo@qq"


def test_garbage_input_still_prints_json() -> None:
    code, out, _ = run("-", "--json", stdin=b"\x00\xff not a mail")
    assert code == 0
    assert json.loads(out)["subject"] == ""


def test_human_summary() -> None:
    code, out, _ = run(str(SAMPLES / "forwarded-rfc822.eml"))
    assert code == 0
    assert "Subject:      Fwd: customer complaint" in out
    assert "Attachment:   photo.jpg (image/jpeg, 6 bytes)" in out


def test_missing_file_is_a_message_not_a_traceback() -> None:
    code, _, err = run("/nonexistent/mail.eml")
    assert code == 2
    assert "No such file" in err and "Traceback" not in err

