"""Worked examples of the pure decisions: summary, whether to answer, targets, pending waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processor.config import AckSettings, LifecycleSettings
from processor.errors import ConfigError
from processor.progress import (
    CaseProgressFacts,
    ProgressLimits,
    plan_progress_reply,
    progress_summary,
)
from processor.scheduler import (
    CategorySchedule,
    decide_pending,
    escalation_target,
    load_schedule,
    schedule_from_mapping,
)

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
OPENED = NOW - timedelta(hours=30)


def facts(**changes: object) -> CaseProgressFacts:
    values: dict[str, object] = dict(
        reference="C-000007", status="open", category="billing", sla_hours=48,
        opened_at=OPENED, first_response_due_at=OPENED + timedelta(hours=48),
        first_response_at=None, resolved_at=None, last_worked_at=None, missing=())
    values.update(changes)
    return CaseProgressFacts(**values)  # type: ignore[arg-type]


def summary(language: str = "en", **changes: object):  # type: ignore[no-untyped-def]
    return progress_summary(facts(**changes), NOW, AckSettings(timezone="UTC"), language, "Billing")


def test_summary_words_per_status_and_target() -> None:
    on_track = summary()
    assert on_track.status_words == "being worked on by our team"
    assert on_track.target_state == "on-track" and on_track.target_met is None
    assert "Tuesday 3 March 2026" in on_track.target_words
    assert on_track.last_worked_words.startswith("not yet")
    overdue = summary(first_response_due_at=NOW - timedelta(hours=1))
    assert overdue.target_state == "overdue" and overdue.target_met is False
    met = summary(first_response_at=OPENED + timedelta(hours=2),
                  last_worked_at=NOW - timedelta(hours=3))
    assert met.target_state == "met" and met.target_met is True
    assert met.last_worked_words.startswith("Monday 2 March 2026, 05:00")
    late = summary(first_response_at=OPENED + timedelta(hours=49))
    assert late.target_state == "late" and late.target_met is False


def test_summary_says_what_the_team_waits_for() -> None:
    pending = summary(status="pending", missing=("time",))
    assert pending.waiting_for == "complainant" and pending.missing == ("time",)
    assert summary(missing=("time",)).waiting_for == "team-and-details"
    done = summary("zh", status="resolved", missing=("time",))
    assert done.waiting_for == "nobody" and done.missing == () and "已解决" in done.waiting_words
    assert summary("zh").status_words == "正在处理中"
    assert summary("zh-CN").status_words == "正在处理中"


def plan(**changes: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = dict(
        tags=("progress_query",), robot_reasons=(), sender_is_complainant=True,
        case_replies_in_window=0, global_last_minute=0, suppressed_until=None,
        limits=ProgressLimits(), now=NOW)
    values.update(changes)
    return plan_progress_reply(**values)  # type: ignore[arg-type]


def test_plan_progress_reply_reasons() -> None:
    assert plan().send and plan().reasons == ("progress-query",)
    assert plan(tags=("regulator",)).reasons == ("not-a-progress-question",)
    assert plan(case_replies_in_window=1).reasons == ("case-rate-limit:1-per-24h",)
    assert plan(robot_reasons=("auto-submitted:auto-replied",)).reasons == (
        "auto-submitted:auto-replied",)
    assert plan(sender_is_complainant=False).reasons == ("sender-is-not-the-complainant",)
    assert plan(global_last_minute=600).reasons == ("global-rate-limit:600-per-minute",)
    assert plan(suppressed_until=NOW + timedelta(days=2)).reasons == (
        "bounce-suppressed:until-2026-03-04",)
    assert plan(limits=ProgressLimits(per_case=0)).reasons == ("progress-replies-disabled",)


def test_escalation_targets() -> None:
    rule = CategorySchedule()
    due = OPENED + timedelta(hours=4)
    plain = escalation_target(breach="first-response", opened_at=OPENED,
                              first_response_due_at=due, sla_hours=4, tags=[],
                              is_appeal=False, rule=rule, fraction=0.5)
    assert plain is not None and plain.deadline == due and not plain.fraction_applied
    regulator = escalation_target(breach="first-response", opened_at=OPENED,
                                  first_response_due_at=due, sla_hours=4, tags=["regulator"],
                                  is_appeal=False, rule=rule, fraction=0.5)
    assert regulator is not None and regulator.deadline == OPENED + timedelta(hours=2)
    resolution = escalation_target(breach="resolution", opened_at=OPENED,
                                   first_response_due_at=due, sla_hours=4, tags=[],
                                   is_appeal=True, rule=rule, fraction=0.5)
    assert resolution is not None and resolution.hours == 8
    assert resolution.fraction_reason == "appeal"
    fixed = CategorySchedule(resolution_target_hours=240)
    assert escalation_target(breach="resolution", opened_at=OPENED, first_response_due_at=due,
                             sla_hours=4, tags=[], is_appeal=False, rule=fixed,
                             fraction=0.5).hours == 240  # type: ignore[union-attr]
    assert escalation_target(breach="resolution", opened_at=OPENED, first_response_due_at=due,
                             sla_hours=4, tags=[], is_appeal=False,
                             rule=CategorySchedule(escalate=False), fraction=0.5) is None


def test_pending_decisions() -> None:
    rule = CategorySchedule(reminder_after_days=5, auto_resolve_after_days=7)
    quiet = NOW - timedelta(days=5, minutes=1)
    assert decide_pending(quiet_since=quiet, reminded_at=None, now=NOW,
                          rule=rule).action == "remind"
    assert decide_pending(quiet_since=NOW - timedelta(days=4), reminded_at=None, now=NOW,
                          rule=rule).action is None
    reminded = NOW - timedelta(days=7)
    assert decide_pending(quiet_since=quiet - timedelta(days=2), reminded_at=reminded, now=NOW,
                          rule=rule).action == "resolve"
    assert decide_pending(quiet_since=NOW - timedelta(days=8), reminded_at=NOW - timedelta(days=6),
                          now=NOW, rule=rule).action is None
    # A reminder from before the last activity belongs to an earlier wait.
    assert decide_pending(quiet_since=quiet, reminded_at=NOW - timedelta(days=6), now=NOW,
                          rule=rule).action == "remind"
    off = decide_pending(quiet_since=quiet, reminded_at=None, now=NOW,
                         rule=CategorySchedule(enabled=False))
    assert off.action is None and "switched off" in off.reason
    no_reminder = CategorySchedule(reminder_after_days=0, auto_resolve_after_days=7)
    assert decide_pending(quiet_since=NOW - timedelta(days=7), reminded_at=None, now=NOW,
                          rule=no_reminder).action == "resolve"
    never = CategorySchedule(auto_resolve_after_days=0)
    assert decide_pending(quiet_since=quiet, reminded_at=NOW - timedelta(days=1), now=NOW,
                          rule=never).action is None


def test_schedule_file_layers_and_errors() -> None:
    lifecycle = LifecycleSettings(reminder_after_days=4, auto_resolve_after_days=9)
    built_in = load_schedule(lifecycle)
    assert built_in.default.reminder_after_days == 4  # complaints.toml stays effective
    assert built_in.for_category("billing").reminder_after_days == 3
    assert built_in.for_category("billing").auto_resolve_after_days == 9
    assert built_in.for_category("privacy").auto_resolve_after_days == 0
    with pytest.raises(ConfigError, match="unknown key"):
        schedule_from_mapping({"default": {"remind_days": 3}}, lifecycle)
    with pytest.raises(ConfigError, match="whole number"):
        schedule_from_mapping({"category": {"billing": {"reminder_after_days": -1}}}, lifecycle)
    with pytest.raises(ConfigError, match="true or false"):
        schedule_from_mapping({"default": {"enabled": 1}}, lifecycle)
