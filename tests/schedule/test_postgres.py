"""The scheduler's queries on PostgreSQL: JSON lookup of the breach, SKIP LOCKED candidates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.acknowledge.conftest import make_desk
from tests.schedule.helpers import Scene
from tests.servers import DovecotServer, SmtpSink


def test_escalation_and_reminder_once_on_postgres(tmp_path: Path, pg_url: str,
                                                  dovecot: DovecotServer,
                                                  smtp_delivering: SmtpSink) -> None:
    lead = f"{dovecot.new_user('lead')}@desk.example.com"
    desk = make_desk(tmp_path, pg_url, dovecot, smtp_delivering,
                     lifecycle={"escalation_address": lead})
    s = Scene(desk, f"{dovecot.new_user('cust')}@customer.example", "", "", lead)
    try:
        s.round(s.mail("Wrong bill", "I was charged twice.", msgid="<pg1@customer.example>"))
        case = desk.case("C-000001")
        assert case.first_response_due_at is not None
        late = case.first_response_due_at + timedelta(minutes=1)
        assert s.tick(late).escalated == ("C-000001 first-response",)
        assert s.tick(late + timedelta(minutes=5)).escalated == ()
        start = datetime.now(UTC)
        s.set_case("C-000001", status="pending", updated_at=start, first_response_at=start,
                   category="other")
        assert s.tick(start + timedelta(days=5, minutes=1)).reminded == ("C-000001",)
        assert s.tick(start + timedelta(days=5, minutes=6)).reminded == ()
        s.send()
        assert len(desk.inbox_of(lead)) >= 1
    finally:
        desk.runtime.engine.dispose()
        desk.deployment.close()
