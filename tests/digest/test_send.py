"""`complaints digest --send`: one mail per period end through the outbox to a real SMTP sink."""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from processor.cli import main
from processor.db import session_scope
from processor.db.models import DigestRun, OutboxMail
from tests.digest.fixture import END
from tests.servers import SmtpSink


def _config(tmp_path: Path, engine: Engine, smtp_port: int | None, language: str = "en") -> Path:
    smtp = (f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\ntls = "none"\n'
            if smtp_port else "")
    path = tmp_path / "complaints.toml"
    path.write_text(
        f'[database]\nurl = "{engine.url.render_as_string(hide_password=False)}"\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n{smtp}'
        f'[digest]\nrecipients = ["lead@example.com", "deputy@example.com"]\n'
        f'hour = 8\ntimezone = "Asia/Shanghai"\nlanguage = "{language}"\n'
        '[mailbox.complaints]\nhost = "127.0.0.1"\naddresses = ["complaints@example.com"]\n',
        encoding="utf-8")
    return path


def _run(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-c", str(config), "digest", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_sent_once_per_date_unless_forced(desk: Engine, tmp_path: Path,
                                          smtp_server: SmtpSink) -> None:
    config = _config(tmp_path, desk, smtp_server.port)
    code, output = _run(config, "--send", "--date", "2026-11-28")
    assert code == 0, output
    assert "queued as outbox mail" in output and "sent" in output
    (mail,) = smtp_server.wait_for(1)
    assert sorted(mail.rcpt_tos) == ["deputy@example.com", "lead@example.com"]

    code, output = _run(config, "--send", "--date", "2026-11-28")
    assert code == 1
    assert "already sent" in output and "--force" in output
    assert "Traceback" not in output

    code, output = _run(config, "--send", "--date", "2026-11-28", "--force")
    assert code == 0, output
    assert len(smtp_server.wait_for(2)) == 2
    with session_scope(desk) as session:
        runs = session.scalars(select(DigestRun)).all()
        assert [run.period_end for run in runs] == [END]
        assert session.scalar(select(func.count()).select_from(OutboxMail)
                              .where(OutboxMail.kind == "digest")) == 2
        assert runs[0].outbox_id == session.scalar(select(func.max(OutboxMail.id)))

    # Another date is another digest.
    code, output = _run(config, "--send", "--date", "2026-11-27")
    assert code == 0, output
    assert len(smtp_server.wait_for(3)) == 3


def test_the_mail(desk: Engine, tmp_path: Path, smtp_server: SmtpSink) -> None:
    config = _config(tmp_path, desk, smtp_server.port, language="zh")
    assert _run(config, "--send", "--date", "2026-11-28")[0] == 0
    (received,) = smtp_server.wait_for(1)
    msg = email.message_from_bytes(received.content, policy=email.policy.default)
    assert msg["From"] == "complaints@example.com"
    assert msg["To"] == "lead@example.com, deputy@example.com"
    assert msg["Subject"] == "投诉日报 2026-11-28：新增 5，未结 8，超时 2"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Complaints-Loop"] == "complaints"
    assert msg["Message-ID"].endswith("@complaints.invalid>")
    assert received.mail_from == "<>"  # null envelope sender: bounces reach no one
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "新增案件          5" in text and "[C-000002]" in text
    assert 'id="open-total"' in html and "[C-000002]" in html


def test_without_smtp_the_mail_waits_in_the_outbox(desk: Engine, tmp_path: Path) -> None:
    config = _config(tmp_path, desk, None)
    code, output = _run(config, "--send", "--date", "2026-11-28")
    assert code == 0, output
    assert "waits in the outbox" in output
    with session_scope(desk) as session:
        assert session.scalar(select(OutboxMail.status).where(OutboxMail.kind == "digest")) \
            == "queued"


def test_printing_json_and_errors(desk: Engine, tmp_path: Path) -> None:
    config = _config(tmp_path, desk, None)
    code, output = _run(config, "--date", "2026-11-28", "--format", "json")
    assert code == 0, output
    assert json.loads(output)["open_total"] == 8
    code, output = _run(config, "--date", "2026-11-28", "--format", "html")
    assert code == 0 and output.startswith("<!DOCTYPE html>")
    code, output = _run(config, "--date", "28/11/2026")
    assert code == 2 and "YYYY-MM-DD" in output
    code, output = _run(config, "--period", "a week")
    assert code == 1 and "not a period length" in output
    code, output = _run(config, "--force")
    assert code == 1 and "--send" in output
    code, output = _run(config, "--send", "--date", "2999-01-01")
    assert code == 1 and "has not come yet" in output
    code, output = _run(config, "--date", "2999-01-01", "--format", "json")
    assert code == 0 and "figures so far" in output
    with session_scope(desk) as session:
        assert session.scalar(select(func.count()).select_from(DigestRun)) == 0
