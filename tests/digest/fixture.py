"""A small desk whose digest figures were worked out by hand (see the table in `build_desk`).

The period is the one ending 2026-11-28 08:00 Asia/Shanghai, i.e. 2026-11-27 00:00 to
2026-11-28 00:00 UTC. Every expected figure is written out in EXPECTED with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from processor.config import Settings, settings_from_mapping
from processor.db.models import Case, Event, OutboxMail, Quarantine

START = datetime(2026, 11, 27, tzinfo=UTC)
END = datetime(2026, 11, 28, tzinfo=UTC)  # 08:00 in Asia/Shanghai


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def digest_settings(**digest: Any) -> Settings:
    data: dict[str, Any] = {
        "digest": {"recipients": ["lead@example.com"], "hour": 8, "timezone": "Asia/Shanghai",
                   "language": "en", **digest},
        "mailbox": {"complaints": {"host": "127.0.0.1", "addresses": ["complaints@example.com"]},
                    "brand2": {"host": "127.0.0.1", "addresses": ["help@brand2.example"]}},
    }
    return settings_from_mapping(data)


def _case(n: int, *, opened: datetime, status: str, mailbox: str = "complaints",
          address: str | None = None, **columns: Any) -> Case:
    return Case(reference=f"C-{n:06d}", status=status, mailbox=mailbox,
                complainant_address=address or f"sender{n}@example.net",
                subject=columns.pop("subject", f"Complaint number {n}\nsecond line"),
                opened_at=opened, updated_at=opened, tags=columns.pop("tags", []), **columns)


def build_desk(session: Session) -> None:
    """Twelve cases around the period boundary; comments say what each one is for."""
    c = {}
    # 1: older case, answered in the period (first response 18 h), then the complainant wrote
    #    again at 06:00: waiting for staff for 18 h at the end.
    c[1] = _case(1, opened=at(26, 10), status="open", category="billing",
                 first_response_due_at=at(27, 10), first_response_at=at(27, 4),
                 last_inbound_at=at(27, 6), last_outbound_at=at(27, 4))
    # 2: new in the period, never answered, target 09:00 passed: overdue by 15 h; waiting 23 h.
    c[2] = _case(2, opened=at(27, 1), status="new", category="billing", priority="high",
                 address="alice@example.com", first_response_due_at=at(27, 9))
    # 3: new, answered after 1 h and resolved after 10 h, all inside the period.
    c[3] = _case(3, opened=at(27, 2), status="resolved", category="technical-fault",
                 priority="urgent", address="Alice@example.com".lower(),
                 first_response_due_at=at(27, 6), first_response_at=at(27, 3),
                 resolved_at=at(27, 12), last_inbound_at=at(27, 2), last_outbound_at=at(27, 3))
    # 4: opened 07:59:59 local (one second before the end): new, no category, waiting 0.0 h,
    #    due 3 h after the end (inside the 4 h window), tagged regulator.
    c[4] = _case(4, opened=at(27, 23, 59, 59), status="new", address="bob@example.org",
                 first_response_due_at=at(28, 3), last_inbound_at=at(27, 23, 59, 59),
                 tags=["regulator"])
    # 5: opened 08:00:00 local, exactly at the end: belongs to the next period, in no figure.
    c[5] = _case(5, opened=END, status="new", first_response_due_at=at(28, 2),
                 last_inbound_at=END, tags=["regulator"])
    # 6: an old case reopened in the period, staff answered last: open, regulator, not waiting.
    c[6] = _case(6, opened=at(20), status="open", category="agent-conduct",
                 tags=["press", "regulator"], first_response_due_at=at(21),
                 first_response_at=at(20, 5), last_inbound_at=at(27, 5),
                 last_outbound_at=at(27, 6), reopened_count=1)
    # 7: resolved at 20:00 and closed at 22:00 in the period after 17 days 20 hours (428 h).
    c[7] = _case(7, opened=at(10), status="closed", category="billing",
                 first_response_due_at=at(11), first_response_at=at(10, 2),
                 resolved_at=at(27, 20), closed_at=at(27, 22))
    # 8: resolved two hours after the end (status now resolved): still open at the end.
    c[8] = _case(8, opened=at(15), status="resolved", mailbox="brand2", category="billing",
                 first_response_due_at=at(16), first_response_at=at(15, 1),
                 resolved_at=at(28, 2), last_inbound_at=at(26), last_outbound_at=at(25))
    # 9: an appeal against 7, opened 21:00, waiting 3 h, due 5 h after the end (not "soon").
    c[9] = _case(9, opened=at(27, 21), status="open", category="billing", priority="high",
                 is_appeal=True, link_kind="appeal", first_response_due_at=at(28, 5),
                 last_inbound_at=at(27, 21))
    # 10: new, answered after 4 h, now pending (the complainant's turn); bob's second case.
    c[10] = _case(10, opened=at(27, 10), status="pending", category="billing",
                  address="bob@example.org", first_response_due_at=at(27, 18),
                  first_response_at=at(27, 14), last_inbound_at=at(27, 10),
                  last_outbound_at=at(27, 14))
    # 11: resolved and closed before the period: in no figure.
    c[11] = _case(11, opened=at(25), status="closed", first_response_at=at(25, 1),
                  resolved_at=at(25, 12), closed_at=at(26))
    # 12: answered one hour after the end, target was 20:00: overdue by 4 h at the end; its
    #     last word is ours now, so it is not in the waiting list.
    c[12] = _case(12, opened=at(26, 20), status="open", category="delivery",
                  first_response_due_at=at(27, 20), first_response_at=at(28, 1),
                  last_inbound_at=at(26, 20), last_outbound_at=at(28, 1))
    session.add_all(c.values())
    session.flush()
    c[9].parent_case_id = c[7].id
    session.add_all([
        Event(case_id=c[6].id, at=at(27, 5), actor="system", kind="reopened",
              data={"from": "resolved"}),
        Event(case_id=c[6].id, at=at(20, 5), actor="system", kind="reopened",
              data={"from": "resolved"}),  # before the period: does not count
        Event(case_id=c[7].id, at=at(27, 21), actor="system", kind="appeal-opened", data={}),
        Event(case_id=c[3].id, at=at(27, 12), actor="staff@example.com", kind="status-changed",
              data={"from": "open", "to": "resolved"}),
        Event(case_id=c[8].id, at=at(28, 2), actor="staff@example.com", kind="reopened",
              data={"from": "resolved"}),  # after the end: does not count
    ])
    session.add_all([
        Quarantine(mailbox="complaints", folder="INBOX", stage="parse", reason="too big",
                   status="held", created_at=at(27, 3)),
        Quarantine(mailbox="complaints", folder="INBOX", stage="parse", reason="broken",
                   status="released", created_at=at(26, 3), resolved_at=at(26, 4)),
        _outbox("failed", "<f1.complaints@complaints.invalid>"),
        _outbox("sent", "<s1.complaints@complaints.invalid>"),
    ])


def _outbox(status: str, message_id: str) -> OutboxMail:
    return OutboxMail(kind="ack", message_id=message_id, recipient="x@example.net",
                      recipients=["x@example.net"], raw=b"", status=status,
                      next_attempt_at=at(27), created_at=at(27) - timedelta(hours=1))


EXPECTED_JSON_SUBSET: dict[str, Any] = {
    "period": {"start": "2026-11-27T08:00:00+08:00", "end": "2026-11-28T08:00:00+08:00",
               "timezone": "Asia/Shanghai"},
    # 2, 3, 4, 9, 10 (5 opened exactly at the end is the next period's)
    "new": {"total": 5, "by_category": {"billing": 3, "technical-fault": 1, "uncategorized": 1},
            "by_priority": {"high": 2, "normal": 2, "urgent": 1}},
    # 1, 2, 4, 6, 8 (resolved after the end), 9, 10 (pending), 12
    "open_total": 8,
    "awaiting_staff": [
        {"ref": "C-000002", "age_hours": 23.0, "category": "billing", "mailbox": "complaints"},
        {"ref": "C-000001", "age_hours": 18.0, "category": "billing", "mailbox": "complaints"},
        {"ref": "C-000009", "age_hours": 3.0, "category": "billing", "mailbox": "complaints"},
        {"ref": "C-000004", "age_hours": 0.0, "category": "uncategorized",
         "mailbox": "complaints"},
    ],
    "overdue": [
        {"ref": "C-000002", "hours_over": 15.0, "category": "billing", "mailbox": "complaints"},
        {"ref": "C-000012", "hours_over": 4.0, "category": "delivery", "mailbox": "complaints"},
    ],
    "due_soon": [{"ref": "C-000004", "hours_left": 3.0, "category": "uncategorized",
                  "mailbox": "complaints"}],
    # first responses in the period: 1 h (3), 4 h (10), 18 h (1); 12 answered after the end.
    # percentile_cont: median the middle value; p90 at rank 1.8 = 4 + 0.8 * (18 - 4)
    "first_response_hours": {"median": 4.0, "p90": 15.2, "count": 3},
    # resolved in the period: 10 h (3), 428 h (7): median 219, p90 = 10 + 0.9 * 418
    "resolution_hours": {"median": 219.0, "p90": 386.2, "count": 2},
    "reopened": [{"ref": "C-000006", "category": "agent-conduct", "mailbox": "complaints"}],
    "appeals": [{"ref": "C-000009", "category": "billing", "mailbox": "complaints",
                 "parent": "C-000007"}],
    "resolved": 2,  # 3 and 7
    "closed": 1,  # 7
    "repeat_senders": [{"sender": "a***@example.com", "cases": 2,
                        "refs": ["C-000002", "C-000003"]},
                       {"sender": "b***@example.org", "cases": 2,
                        "refs": ["C-000010", "C-000004"]}],
    "mailboxes": {"brand2": {"new": 0, "open": 1}, "complaints": {"new": 5, "open": 7}},
    "quarantined": 1,
    "outbox_failed": 1,
    "totals": {"awaiting_staff": 4, "overdue": 2, "due_soon": 1, "reopened": 1, "appeals": 1,
               "regulator": 2, "repeat_senders": 2},
}
# regulator, open at the end, oldest first: 6 (opened the 20th, 192 h), 4 (one second).
EXPECTED_REGULATOR = [("C-000006", 192.0), ("C-000004", 0.0)]
