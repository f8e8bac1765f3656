"""A case's history as plain data: the case, then its messages and events in time order.

Read by `complaints case show` (text and --json) and later by the case export.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from processor.db.models import Case, Event, Message
from processor.db.store import case_by_reference
from processor.errors import NotFound


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str  # "message" or the event kind
    data: dict[str, object]


@dataclass(frozen=True, slots=True)
class Timeline:
    case: dict[str, object]
    entries: tuple[TimelineEntry, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "case": self.case,
            "timeline": [{"at": _iso(e.at), "kind": e.kind, **e.data} for e in self.entries],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def case_summary(case: Case) -> dict[str, object]:
    return {
        "reference": case.reference, "status": case.status, "mailbox": case.mailbox,
        "complainant": {"name": case.complainant_name, "address": case.complainant_address},
        "subject": case.subject, "language": case.language, "category": case.category,
        "priority": case.priority, "sla_hours": case.sla_hours, "tags": list(case.tags or []),
        "team": case.team, "assignee": case.assignee, "details": case.details or {},
        "opened_at": _iso(case.opened_at), "updated_at": _iso(case.updated_at),
    }


def message_entry(message: Message) -> TimelineEntry:
    return TimelineEntry(message.received_at, "message", {
        "direction": message.direction, "author_role": message.author_role,
        "from": message.from_address, "from_name": message.from_name,
        "message_id": message.message_id, "subject": message.subject,
        "sent_at": _iso(message.sent_at), "received_by": list(message.received_by or []),
        "new_text": message.new_text, "size": message.size, "raw_sha256": message.raw_sha256,
        "auto_submitted": message.auto_submitted, "defects": list(message.defects or []),
        "attachments": [{"filename": a.filename, "content_type": a.content_type, "size": a.size,
                         "sha256": a.sha256} for a in message.attachments],
    })


def load_timeline(session: Session, reference: str) -> Timeline:
    case = case_by_reference(session, reference)
    if case is None:
        raise NotFound(f"no case {reference}", hint="list cases with `complaints cases`")
    messages = session.scalars(
        select(Message).where(Message.case_id == case.id)
        .options(selectinload(Message.attachments)).order_by(Message.received_at, Message.id))
    events = session.scalars(select(Event).where(Event.case_id == case.id)
                             .order_by(Event.at, Event.id))
    summary = case_summary(case)
    summary["is_appeal"] = case.is_appeal
    summary["links"] = _links(session, case)
    entries = [message_entry(m) for m in messages]
    entries += [TimelineEntry(e.at, e.kind, {"actor": e.actor, **(e.data or {})})
                for e in events]
    # Messages sort before the events they caused at the same instant.
    entries.sort(key=lambda e: (e.at, e.kind != "message"))
    return Timeline(summary, tuple(entries))


def _links(session: Session, case: Case) -> list[dict[str, str]]:
    """The case this one continues (appeal or follow-up of), and the cases that continue it."""
    links = []
    if case.parent_case_id is not None:
        parent = session.get(Case, case.parent_case_id)
        if parent is not None:
            links.append({"relation": f"{case.link_kind or 'linked'} of",
                          "reference": parent.reference, "status": parent.status})
    for child in session.scalars(select(Case).where(Case.parent_case_id == case.id)
                                 .order_by(Case.id)):
        links.append({"relation": f"has {child.link_kind or 'linked'}",
                      "reference": child.reference, "status": child.status})
    return links
