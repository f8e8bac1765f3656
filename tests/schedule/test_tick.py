"""The scheduler with a controllable clock: escalation, reminders, automatic resolution.

Mail is ingested on the real clock; `tick` is then called with "now" moved forward, and what it
queued is sent through the real SMTP server into Dovecot.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processor.db import session_scope
from processor.db.models import Suppression
from processor.runtime import open_runtime
from processor.scheduler import schedule_from_mapping, tick
from tests.schedule.helpers import Scene


def _escalations(s: Scene) -> list[str]:
    return [t for _, t in s.texts_to(s.lead)]


def test_first_response_breach_escalated_exactly_once_across_restarts(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice in March.", msgid="<e1@customer.example>"))
    case = s.desk.case("C-000001")
    assert case.first_response_due_at is not None
    before = case.first_response_due_at - timedelta(minutes=1)
    assert s.tick(before).escalated == ()
    late = case.first_response_due_at + timedelta(minutes=1)
    assert s.tick(late).escalated == ("C-000001 first-response",)
    assert s.tick(late + timedelta(minutes=5)).escalated == ()
    # A restarted process (a new runtime on the same database) does not escalate again.
    restarted = open_runtime(s.desk.deployment.settings(s.desk.desk_account.password),
                             with_rules=True)
    again = tick(restarted.engine, restarted.settings, late + timedelta(hours=1))
    restarted.engine.dispose()
    assert again.escalated == ()
    s.send()
    [mail] = s.desk.inbox_of(s.lead)
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert mail["Subject"].startswith("[C-000001]") and mail["Auto-Submitted"] == "auto-generated"
    assert "C-000001" in text and "首次答复" in text and "未分配" in text
    assert f"优先级：{case.priority}" in text and f"类别：{case.category}" in text
    [event] = [d for k, d in s.desk.events("C-000001") if k == "escalated"]
    assert event["breach"] == "first-response" and event["to"] == s.lead
    assert "target of" in str(event["reason"])


def test_resolution_breach_escalated_once_and_names_the_holder(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice in March.", msgid="<r1@customer.example>"))
    case = s.desk.case("C-000001")
    answered = case.opened_at + timedelta(hours=1)
    s.set_case("C-000001", status="open", first_response_at=answered, assignee="Li Lei")
    target = case.opened_at + timedelta(hours=(case.sla_hours or 48) * 4)
    assert s.tick(target - timedelta(minutes=1)).escalated == ()
    assert s.tick(target + timedelta(minutes=1)).escalated == ("C-000001 resolution",)
    assert s.tick(target + timedelta(days=3)).escalated == ()
    s.send()
    [text] = _escalations(s)
    assert "Li Lei" in text and "解决" in text


def test_regulator_case_escalates_at_half_its_target(scene: Scene) -> None:
    s = scene
    s.round(s.mail("网络故障", "再不解决我就向工信部投诉。", msgid="<g1@customer.example>"),
            s.mail("Wrong bill", "I was charged twice in March.", msgid="<g2@other.example>",
                   sender="other@customer.example"))
    regulator, normal = s.desk.case("C-000001"), s.desk.case("C-000002")
    assert "regulator" in regulator.tags and "regulator" not in normal.tags
    hours = regulator.sla_hours or 0
    assert hours > 0
    half = regulator.opened_at + timedelta(hours=hours / 2)
    assert s.tick(half - timedelta(minutes=1)).escalated == ()
    assert s.tick(half + timedelta(minutes=1)).escalated == ("C-000001 first-response",)
    assert normal.first_response_due_at is not None
    assert normal.first_response_due_at > half + timedelta(minutes=1)  # not late yet
    # Appeals are shortened the same way.
    s.set_case("C-000002", is_appeal=True)
    normal_half = normal.opened_at + (normal.first_response_due_at - normal.opened_at) / 2
    # (By then the regulator case has also passed half of its resolution target: 4 x 4 h / 2.)
    assert s.tick(normal_half + timedelta(minutes=1)).escalated == (
        "C-000002 first-response", "C-000001 resolution")
    s.send()
    assert any("工信部" not in t and "50%" in t for t in _escalations(s))


def test_pending_case_reminded_then_resolved_on_schedule(scene: Scene) -> None:
    s = scene
    s.round(s.mail("系统卡顿", "系统总是卡顿。", msgid="<w1@customer.example>"))
    start = datetime.now(UTC)
    s.set_case("C-000001", status="pending", updated_at=start, first_response_at=start,
               details={"details": {}, "missing": ["time", "frequency"]}, category="other")
    assert s.tick(start + timedelta(days=4, hours=23)).reminded == ()
    reminder_at = start + timedelta(days=5, minutes=1)
    assert s.tick(reminder_at).reminded == ("C-000001",)
    assert s.tick(reminder_at + timedelta(minutes=5)).reminded == ()
    assert s.tick(reminder_at + timedelta(days=6, hours=23)).auto_resolved == ()
    resolve_at = reminder_at + timedelta(days=7, minutes=1)
    result = s.tick(resolve_at)
    assert result.auto_resolved == ("C-000001",) and result.reminded == ()
    assert s.tick(resolve_at + timedelta(minutes=5)).auto_resolved == ()
    case = s.desk.case("C-000001")
    assert case.status == "resolved" and case.resolved_at == resolve_at
    s.send()
    texts = [t for _, t in s.texts_to(s.complainant)]
    assert len(texts) == 3  # acknowledgement, reminder, closing mail
    assert "已等待您补充信息 5 天" in texts[1] and "问题是什么时候发生的" in texts[1]
    assert "已被标记为已解决" in texts[2] and "重新开启" in texts[2]
    kinds = s.kinds("C-000001")
    assert kinds.count("pending-reminder") == 1 and kinds.count("auto-resolved") == 1
    events = dict(s.desk.events("C-000001"))
    assert "5 days" in str(events["pending-reminder"]["reason"])


def test_an_answer_restarts_the_wait(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice.", msgid="<a1@customer.example>"))
    start = datetime.now(UTC)
    s.set_case("C-000001", status="pending", updated_at=start, category="other")
    assert s.tick(start + timedelta(days=5, minutes=1)).reminded == ("C-000001",)
    # The complainant answers (activity), staff set it pending again later: a new wait.
    answered = start + timedelta(days=6)
    s.set_case("C-000001", updated_at=answered)
    assert s.tick(answered + timedelta(days=4)).reminded == ()
    # Seven days after the first reminder: not resolved, since that reminder belongs to the
    # earlier wait; the new wait is five days old, so it gets its own reminder.
    result = s.tick(start + timedelta(days=12, minutes=2))
    assert result.auto_resolved == () and result.reminded == ("C-000001",)


def test_per_category_schedule_and_switch_off(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice.", msgid="<b1@customer.example>"))
    start = datetime.now(UTC)
    s.set_case("C-000001", status="pending", updated_at=start, category="billing")
    runtime = s.desk.runtime
    # The built-in rules/lifecycle/schedule.toml reminds billing cases after 3 days.
    assert s.tick(start + timedelta(days=3, minutes=1)).reminded == ("C-000001",)
    s.set_case("C-000001", updated_at=start + timedelta(days=4))
    off = schedule_from_mapping({"category": {"billing": {"enabled": False}}},
                                runtime.settings.lifecycle)
    later = start + timedelta(days=30)
    result = tick(runtime.engine, runtime.settings, later, renderer=runtime.renderer,
                  store=runtime.store, schedule=off)
    assert result.reminded == () and result.auto_resolved == ()
    assert s.desk.case("C-000001").status == "pending"


def test_bounced_complainant_reminder_skipped_with_reason(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice.", msgid="<x1@customer.example>"))
    start = datetime.now(UTC)
    s.set_case("C-000001", status="pending", updated_at=start, category="other")
    with session_scope(s.desk.runtime.engine) as session:
        session.add(Suppression(address=s.complainant.lower(), reason="550 no such user",
                                since=start, until=start + timedelta(days=60)))
    result = s.tick(start + timedelta(days=5, minutes=1))
    assert result.reminded == () and result.skipped[0].startswith("C-000001 pending-reminder: "
                                                                  "bounce-suppressed")
    assert s.tick(start + timedelta(days=5, minutes=10)).skipped == ()  # recorded once
    [skip] = [d for k, d in s.desk.events("C-000001") if k == "pending-reminder-skipped"]
    assert str(skip["reasons"][0]).startswith("bounce-suppressed")  # type: ignore[index]
    # The case still resolves on schedule, without a mail to the bounced address.
    result = s.tick(start + timedelta(days=12, minutes=2))
    assert result.auto_resolved == ("C-000001",)
    assert [k for k, _ in s.desk.events("C-000001")].count("auto-resolved") == 1
    assert not any(m.kind in ("pending-reminder", "auto-resolved") for m in s.desk.outbox())


def test_nothing_sent_for_resolved_or_closed_cases(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice.", msgid="<n1@customer.example>"),
            s.mail("Slow line", "The line is slow.", msgid="<n2@other.example>",
                   sender="other2@customer.example"))
    start = datetime.now(UTC)
    s.set_case("C-000001", status="resolved", resolved_at=start, updated_at=start)
    s.set_case("C-000002", status="closed", closed_at=start, updated_at=start)
    queued = len(s.desk.outbox())
    for days in (1, 3, 6, 13):
        result = s.tick(start + timedelta(days=days))
        assert result.escalated == result.reminded == result.auto_resolved == ()
    assert len(s.desk.outbox()) == queued
    for ref in ("C-000001", "C-000002"):
        assert not {"escalated", "pending-reminder", "auto-resolved"} & set(s.kinds(ref))


def test_complaints_tick_command_reports_its_work(scene: Scene) -> None:
    s = scene
    s.round(s.mail("Wrong bill", "I was charged twice.", msgid="<t1@customer.example>"))
    s.set_case("C-000001", first_response_due_at=datetime.now(UTC) - timedelta(minutes=1))
    output = s.desk.deployment.command(["tick"], s.desk.desk_account.password).stdout
    assert "escalated 1 case(s): C-000001 first-response" in output
    assert "closed 0 case(s)" in output
    again = s.desk.deployment.command(["tick"], s.desk.desk_account.password).stdout
    assert "escalated 0 case(s)" in again
