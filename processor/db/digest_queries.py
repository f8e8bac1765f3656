"""The daily digest's figures as SQL: counts, groups and percentiles computed by the database.

Every function here runs one or two queries whose result size does not grow with the case
store: counts, GROUP BY over a handful of categories, or lists cut at `limit` rows. Nothing
loads a list of cases into Python to count it. The indexes each query leans on are named in
its docstring (processor/db/models.py, migrations 0002 and 0003).

Times are half-open: a period is `start <= t < end`, and "at the end" means just before `end`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, String, and_, cast, func, or_, select, union
from sqlalchemy.orm import Session, aliased

from processor.db.models import Case, Event, OutboxMail, Quarantine

UNRESOLVED_STATUSES = ("new", "open", "pending")
WAITING_FOR_STAFF_STATUSES = ("new", "open")  # "pending" waits for the complainant
UNCATEGORIZED = "uncategorized"


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One case in a capped list: what the digest shows of it, and the time it is measured by."""

    reference: str
    mailbox: str
    category: str | None
    at: datetime  # waiting since / due at / resolved at, depending on the list
    subject: str
    parent: str | None = None  # appeals: the case appealed against


@dataclass(frozen=True, slots=True)
class Capped:
    """The first `limit` rows of a list, and how many there are in all."""

    total: int
    rows: tuple[CaseRow, ...]


@dataclass(frozen=True, slots=True)
class Spread:
    """Median and 90th percentile of a duration in hours over `count` cases (None if none)."""

    count: int
    median: float | None
    p90: float | None


@dataclass(frozen=True, slots=True)
class RepeatSender:
    address: str
    cases: int
    references: tuple[str, ...]


def open_at(session: Session, end: datetime) -> ColumnElement[bool]:
    """Opened before `end`, and neither resolved nor closed before it.

    The live cases, those unresolved now or resolved or closed after `end` (but opened
    before), are three index ranges: ix_cases_status_updated, ix_cases_resolved_opened and
    ix_cases_closed_opened, the last two read without touching the table; whenever
    the lifecycle columns agree with the status (a resolved case has resolved_at, a closed one
    closed_at) every case open at `end` is among them. Saying so lets the planner start from
    those few rows instead of every case ever opened, which `opened_at < end` alone selects.
    PostgreSQL combines the three with a BitmapOr when given the OR; SQLite's planner takes
    the opened_at range instead unless the live ids are given as a subquery (and PostgreSQL,
    misjudging how many rows the subquery joins, loops over it), hence the two spellings.
    """
    if _dialect(session) == "postgresql":
        live: ColumnElement[bool] = or_(Case.status.in_(UNRESOLVED_STATUSES),
                                        and_(Case.resolved_at >= end, Case.opened_at < end),
                                        and_(Case.closed_at >= end, Case.opened_at < end))
    else:
        live = Case.id.in_(union(
            select(Case.id).where(Case.status.in_(UNRESOLVED_STATUSES)),
            select(Case.id).where(Case.resolved_at >= end, Case.opened_at < end),
            select(Case.id).where(Case.closed_at >= end, Case.opened_at < end)))
    return and_(
        live,
        Case.opened_at < end,
        or_(Case.resolved_at.is_(None), Case.resolved_at >= end),
        or_(Case.closed_at.is_(None), Case.closed_at >= end),
    )


def unanswered_at(end: datetime) -> ColumnElement[bool]:
    """No first response before `end` (ix_cases_first_response: NULL, or a range after end)."""
    return or_(Case.first_response_at.is_(None), Case.first_response_at >= end)


def hours_between(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    if _dialect(session) == "postgresql":
        return cast(func.extract("epoch", later - earlier), Float) / 3600.0
    # SQLite keeps UTC datetimes as ISO text, which julianday() reads (days, as a float).
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _count(session: Session, *where: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(Case).where(*where)) or 0)


def _opened_in(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(Case.opened_at >= start, Case.opened_at < end)


# --- new cases and the open total


def new_by_category_and_priority(session: Session, start: datetime,
                                 end: datetime) -> list[tuple[str, str, int]]:
    """(category, priority, count) of cases opened in the period (ix_cases_opened_at)."""
    category = func.coalesce(Case.category, UNCATEGORIZED)
    query = (select(category, Case.priority, func.count()).where(_opened_in(start, end))
             .group_by(category, Case.priority))
    return [(c, p, int(n)) for c, p, n in session.execute(query)]


def open_total(session: Session, end: datetime) -> int:
    return _count(session, open_at(session, end))


def per_mailbox(session: Session, start: datetime, end: datetime) -> dict[str, tuple[int, int]]:
    """mailbox -> (opened in the period, open at the end)."""
    new = {name: n for name, n in session.execute(
        select(Case.mailbox, func.count()).where(_opened_in(start, end)).group_by(Case.mailbox))}
    still_open = {name: n for name, n in session.execute(
        select(Case.mailbox, func.count()).where(open_at(session, end)).group_by(Case.mailbox))}
    return {name: (int(new.get(name, 0)), int(still_open.get(name, 0)))
            for name in sorted(set(new) | set(still_open))}


# --- the lists: waiting for staff, overdue, due soon


def _capped(session: Session, at: Any, where: Sequence[ColumnElement[bool]],
            limit: int) -> Capped:
    total = _count(session, *where)
    query = (select(Case.reference, Case.mailbox, Case.category, at, Case.subject)
             .where(*where).order_by(at, Case.id).limit(limit))
    return Capped(total, _case_rows(session, query) if total else ())


def _case_rows(session: Session, query: Any) -> tuple[CaseRow, ...]:
    return tuple(CaseRow(*row) for row in session.execute(query))


def awaiting_staff(session: Session, end: datetime, limit: int) -> Capped:
    """New or open cases whose last word is the complainant's, oldest wait first.

    Waiting since the last incoming mail (or the opening when none is recorded); a case whose
    latest mail came after `end` is left out rather than shown with a negative age.
    """
    since = func.coalesce(Case.last_inbound_at, Case.opened_at)
    where = [Case.status.in_(WAITING_FOR_STAFF_STATUSES), open_at(session, end), since < end,
             or_(Case.last_outbound_at.is_(None), Case.last_inbound_at > Case.last_outbound_at)]
    return _capped(session, since, where, limit)


def overdue(session: Session, end: datetime, limit: int) -> Capped:
    """Open at the end, unanswered, and the first-response target was before the end."""
    where = [unanswered_at(end), Case.first_response_due_at < end, open_at(session, end)]
    return _capped(session, Case.first_response_due_at, where, limit)


def due_soon(session: Session, end: datetime, until: datetime, limit: int) -> Capped:
    """Open and unanswered at the end, with the target in (end, until]."""
    where = [unanswered_at(end), Case.first_response_due_at > end,
             Case.first_response_due_at <= until, open_at(session, end)]
    return _capped(session, Case.first_response_due_at, where, limit)


# --- response and resolution times


def first_response_spread(session: Session, start: datetime, end: datetime) -> Spread:
    """Opening to first response, for cases first answered in the period."""
    where = [Case.first_response_at >= start, Case.first_response_at < end]
    return _spread(session, hours_between(session, Case.first_response_at, Case.opened_at), where)


def resolution_spread(session: Session, start: datetime, end: datetime) -> Spread:
    """Opening to resolution, for cases resolved in the period (ix_cases_resolved_at)."""
    where = [Case.resolved_at >= start, Case.resolved_at < end]
    return _spread(session, hours_between(session, Case.resolved_at, Case.opened_at), where)


def _spread(session: Session, hours: ColumnElement[Any],
            where: Sequence[ColumnElement[bool]]) -> Spread:
    if _dialect(session) == "postgresql":
        row = session.execute(select(func.count(),
                                     func.percentile_cont(0.5).within_group(hours),
                                     func.percentile_cont(0.9).within_group(hours))
                              .select_from(Case).where(*where)).one()
        count = int(row[0])
        return Spread(count, _float(row[1]), _float(row[2])) if count else Spread(0, None, None)
    count = _count(session, *where)
    if not count:
        return Spread(0, None, None)
    return Spread(count, _sqlite_percentile(session, hours, where, count, 0.5),
                  _sqlite_percentile(session, hours, where, count, 0.9))


def _sqlite_percentile(session: Session, hours: ColumnElement[Any],
                       where: Sequence[ColumnElement[bool]], count: int, fraction: float) -> float:
    """percentile_cont as PostgreSQL defines it: interpolate between the two nearest ranks.

    SQLite has no percentile function; ORDER BY ... LIMIT 2 OFFSET k fetches just the two
    values needed, so memory stays constant whatever the period holds.
    """
    position = fraction * (count - 1)
    below = math.floor(position)
    values = [float(v) for v in session.scalars(
        select(hours).select_from(Case).where(*where).order_by(hours).offset(below).limit(2))]
    if len(values) == 1 or position == below:
        return values[0]
    return values[0] + (position - below) * (values[1] - values[0])


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


# --- reopened, appeals, regulator, resolved and closed


def reopened(session: Session, start: datetime, end: datetime, limit: int) -> Capped:
    """Cases with a "reopened" event in the period (ix_events_kind_at), first reopened first."""
    first = (select(Event.case_id, func.min(Event.at).label("at"))
             .where(Event.kind == "reopened", Event.at >= start, Event.at < end)
             .group_by(Event.case_id).subquery())
    total = int(session.scalar(select(func.count()).select_from(first)) or 0)
    query = (select(Case.reference, Case.mailbox, Case.category, first.c.at, Case.subject)
             .join(first, first.c.case_id == Case.id).order_by(first.c.at, Case.id).limit(limit))
    return Capped(total, _case_rows(session, query) if total else ())


def appeals(session: Session, start: datetime, end: datetime, limit: int) -> Capped:
    """Appeal cases opened in the period, with the case appealed (ix_cases_appeal_opened)."""
    where = [Case.is_appeal.is_(True), _opened_in(start, end)]
    total = _count(session, *where)
    parent = aliased(Case)
    query = (select(Case.reference, Case.mailbox, Case.category, Case.opened_at, Case.subject,
                    parent.reference)
             .outerjoin(parent, parent.id == Case.parent_case_id)
             .where(*where).order_by(Case.opened_at, Case.id).limit(limit))
    return Capped(total, _case_rows(session, query) if total else ())


def regulator_open(session: Session, end: datetime, limit: int, tag: str = "regulator") -> Capped:
    """Cases tagged `tag` and open at the end, oldest first.

    Tags are a JSON list; its text form contains `"regulator"` with the quotes exactly when the
    list holds that tag (JSON writes strings in double quotes). Only the open cases are tested,
    so the LIKE runs over the open set, not the whole store.
    """
    where = [open_at(session, end), cast(Case.tags, String).like(f'%"{tag}"%')]
    return _capped(session, Case.opened_at, where, limit)


def resolved_count(session: Session, start: datetime, end: datetime) -> int:
    return _count(session, Case.resolved_at >= start, Case.resolved_at < end)


def closed_count(session: Session, start: datetime, end: datetime) -> int:
    return _count(session, Case.closed_at >= start, Case.closed_at < end)


# --- senders, and what waits outside the cases


def repeat_senders(session: Session, start: datetime, end: datetime,
                   limit: int) -> tuple[int, list[RepeatSender]]:
    """Addresses that opened more than one case in the period, most cases first."""
    counts = (select(Case.complainant_address.label("address"), func.count().label("cases"))
              .where(_opened_in(start, end)).group_by(Case.complainant_address)
              .having(func.count() > 1).subquery())
    total = int(session.scalar(select(func.count()).select_from(counts)) or 0)
    if not total:
        return 0, []
    top = list(session.execute(select(counts.c.address, counts.c.cases)
                               .order_by(counts.c.cases.desc(), counts.c.address).limit(limit)))
    refs: dict[str, list[str]] = {address: [] for address, _ in top}
    for address, reference in session.execute(
            select(Case.complainant_address, Case.reference)
            .where(_opened_in(start, end), Case.complainant_address.in_(list(refs)))
            .order_by(Case.opened_at, Case.id)):
        refs[address].append(reference)
    return total, [RepeatSender(address, int(n), tuple(refs[address])) for address, n in top]


def quarantine_held(session: Session) -> int:
    """Mails held now (ix_quarantine_status), whenever they arrived: they wait for a person."""
    return int(session.scalar(select(func.count()).select_from(Quarantine)
                              .where(Quarantine.status == "held")) or 0)


def outbox_failed(session: Session) -> int:
    """Outgoing mails given up on, now (ix_outbox_due)."""
    return int(session.scalar(select(func.count()).select_from(OutboxMail)
                              .where(OutboxMail.status == "failed")) or 0)
