"""Automatic close after the quiet period, and the case list filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from processor.db import session_scope
from processor.db.models import Case
from processor.scheduler import tick
from tests.acknowledge.conftest import make_desk
from tests.servers import DovecotServer, SmtpSink


def test_resolved_case_closes_after_quiet_days_once(tmp_path: Path, sqlite_url: str,
                                                    dovecot: DovecotServer,
                                                    smtp_server: SmtpSink) -> None:
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_server,
                     lifecycle={"auto_close_days": 14})
    desk.deliver(*[(f"From: c{i}@customer.example\r\nTo: complaints@example.com\r\n"
                    f"Subject: bill {i}\r\nMessage-ID: <tick{i}@x>\r\n\r\nwrong bill\r\n").encode()
                   for i in range(3)])
    desk.poll()
    now = datetime.now(UTC)
    with session_scope(desk.runtime.engine) as session:
        session.execute(update(Case).where(Case.reference == "C-000001").values(
            status="resolved", resolved_at=now - timedelta(days=15),
            last_inbound_at=now - timedelta(days=20)))
        session.execute(update(Case).where(Case.reference == "C-000002").values(
            status="resolved", resolved_at=now - timedelta(days=13),
            last_inbound_at=now - timedelta(days=20)))
        session.execute(update(Case).where(Case.reference == "C-000003").values(
            is_appeal=True, category="appeal"))
    assert tick(desk.runtime.engine, desk.runtime.settings, now).closed == ("C-000001",)
    assert tick(desk.runtime.engine, desk.runtime.settings, now).closed == ()
    assert desk.case("C-000001").status == "closed"
    assert desk.case("C-000002").status == "resolved"
    events = desk.events("C-000001")
    assert events[-1][0] == "status-changed" and events[-1][1]["to"] == "closed"
    password = desk.desk_account.password
    listing = desk.deployment.command(["cases", "--status", "closed"], password).stdout
    assert "C-000001" in listing and "C-000002" not in listing
    appeals = desk.deployment.command(["cases", "--appeal"], password).stdout
    assert "C-000003" in appeals and "C-000001" not in appeals
    old = desk.deployment.command(["cases", "--older-than", "1"], password).stdout
    assert old.strip() == "no cases"
    desk.runtime.engine.dispose()
