"""Worked examples for decide_ack: robots, per-sender and global limits, bounce suppression."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processor.loopguard import AckDecision, AckLimits, decide_ack

NOW = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
LIMITS = AckLimits()


def test_defaults() -> None:
    assert LIMITS == AckLimits(per_sender=3, period_hours=24, global_per_minute=600,
                               bounce_suppress_days=60)
    assert LIMITS.sender_window_start(NOW) == NOW - timedelta(hours=24)


def test_a_person_within_limits_is_answered() -> None:
    assert decide_ack((), 2, 59, None, NOW, LIMITS) == AckDecision(send=True, reasons=())


def test_a_robot_is_never_answered() -> None:
    decision = decide_ack(("precedence:bulk",), 0, 0, None, NOW, LIMITS)
    assert decision == AckDecision(send=False, reasons=("precedence:bulk",))


def test_third_ack_in_the_period_is_the_last() -> None:
    decision = decide_ack((), 3, 0, None, NOW, LIMITS)
    assert decision == AckDecision(send=False, reasons=("sender-rate-limit:3-per-24h",))


def test_global_ceiling_per_minute() -> None:
    decision = decide_ack((), 0, 600, None, NOW, LIMITS)
    assert decision == AckDecision(send=False, reasons=("global-rate-limit:600-per-minute",))


def test_recent_permanent_bounce_suppresses() -> None:
    bounced = NOW - timedelta(days=59)
    decision = decide_ack((), 0, 0, bounced, NOW, LIMITS)
    assert decision.send is False
    assert decision.reasons == ("bounce-suppressed:until-2024-06-04",)


def test_bounce_older_than_the_suppression_time_is_forgotten() -> None:
    assert decide_ack((), 0, 0, NOW - timedelta(days=60), NOW, LIMITS).send is True


def test_configured_limits_and_every_reason_reported() -> None:
    limits = AckLimits(per_sender=1, period_hours=6, global_per_minute=5, bounce_suppress_days=1)
    decision = decide_ack(("list-header:list-id",), 1, 5, NOW - timedelta(hours=1), NOW, limits)
    assert decision.reasons == ("list-header:list-id", "sender-rate-limit:1-per-6h",
                                "global-rate-limit:5-per-minute",
                                "bounce-suppressed:until-2024-06-04")
