"""The digest's figures against the hand-computed desk, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Engine

from processor.db import session_scope
from processor.digest import collect_digest, period_ending
from tests.digest.fixture import (
    END,
    EXPECTED_JSON_SUBSET,
    EXPECTED_REGULATOR,
    START,
    at,
    digest_settings,
)

JSON_KEYS = {"period", "new", "open_total", "awaiting_staff", "overdue", "due_soon",
             "first_response_hours", "resolution_hours", "reopened", "appeals", "regulator",
             "resolved", "closed", "repeat_senders", "mailboxes", "quarantined", "outbox_failed"}


def test_figures_match_the_hand_computed_desk(desk: Engine) -> None:
    settings = digest_settings()
    period = period_ending(date(2026, 11, 28), 8, "Asia/Shanghai", timedelta(hours=24))
    assert (period.start, period.end) == (START, END)
    with session_scope(desk) as session:
        result = collect_digest(session, settings, period.start, period.end).as_json()
    assert JSON_KEYS <= set(result)
    for key, expected in EXPECTED_JSON_SUBSET.items():
        assert result[key] == expected, key
    assert [(c["ref"], c["age_hours"]) for c in result["regulator"]] == EXPECTED_REGULATOR
    assert "subject" not in result["awaiting_staff"][0]  # no complaint text by default


def test_subjects_only_when_configured(desk: Engine) -> None:
    settings = digest_settings(include_subjects=True)
    with session_scope(desk) as session:
        result = collect_digest(session, settings, START, END).as_json()
    assert result["awaiting_staff"][0]["subject"] == "Complaint number 2"  # first line only


def test_one_second_later_the_boundary_case_moves_to_the_next_period(desk: Engine) -> None:
    """The case opened at 08:00:00 local is the first of the next day's period."""
    settings = digest_settings()
    with session_scope(desk) as session:
        later = collect_digest(session, settings, START + timedelta(days=1),
                               END + timedelta(days=1)).as_json()
    assert later["new"]["total"] == 1  # case 5
    assert later["resolved"] == 1  # case 8, resolved at 02:00 UTC on the 28th
    assert "C-000008" not in [c["ref"] for c in later["awaiting_staff"]]
    assert later["reopened"] == [{"ref": "C-000008", "category": "billing",
                                  "mailbox": "brand2"}]


def test_lists_are_capped_but_counted(desk: Engine) -> None:
    with session_scope(desk) as session:
        digest = collect_digest(session, digest_settings(), START, END, limit=2)
    assert [line.ref for line in digest.awaiting_staff.lines] == ["C-000002", "C-000001"]
    assert digest.awaiting_staff.total == 4
    assert digest.as_json()["totals"]["awaiting_staff"] == 4


def test_the_empty_day(engine: Engine) -> None:
    with session_scope(engine) as session:
        digest = collect_digest(session, digest_settings(), START, END)
    result = digest.as_json()
    assert digest.is_empty
    assert result["new"] == {"total": 0, "by_category": {}, "by_priority": {}}
    assert result["first_response_hours"] == {"median": None, "p90": None, "count": 0}
    assert result["open_total"] == 0 and result["awaiting_staff"] == []
    assert result["mailboxes"] == {} and result["repeat_senders"] == []


def test_single_value_percentiles(engine: Engine) -> None:
    from processor.db.models import Case

    with session_scope(engine) as session:
        session.add(Case(reference="C-000001", status="resolved", mailbox="complaints",
                         complainant_address="x@example.net", opened_at=at(27, 1),
                         updated_at=at(27, 1), first_response_at=at(27, 3, 30),
                         resolved_at=at(27, 7)))
    with session_scope(engine) as session:
        result = collect_digest(session, digest_settings(), START, END).as_json()
    assert result["first_response_hours"] == {"median": 2.5, "p90": 2.5, "count": 1}
    assert result["resolution_hours"] == {"median": 6.0, "p90": 6.0, "count": 1}
