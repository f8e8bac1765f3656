"""The daily digest: its period, its figures from SQL, its rendering, and the mail that carries it.

`collect_digest` asks processor/db/digest_queries.py for every figure and returns a frozen
`Digest`; `render_digest` turns it into text or HTML through the templates; `queue_digest`
records the run and puts the mail in the outbox, once per period end.

Privacy: the digest carries references, categories, ages and counts. Subjects appear only when
`digest.include_subjects` is set (first line, cut short); sender addresses are masked.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from processor.compose import (
    POLICY,
    clean_header_text,
    format_tag,
    make_message_id,
    truncate_text,
    validate_address,
)
from processor.config import Settings
from processor.db import digest_queries as q
from processor.db.models import DigestRun, OutboxMail
from processor.errors import ComplaintsError, ConfigError
from processor.outbox import queue_mail
from processor.render import RenderedBody, TemplateRenderer

TEMPLATE = "digest"
LIST_LIMIT = 50
SUBJECT_CHARS = 80
_PERIOD = re.compile(r"^\s*(\d+)\s*([hd])\s*$")


class AlreadySent(ComplaintsError):
    """The digest for this period end was sent before."""

    hint = "add --force to send it again"


# --- the period


@dataclass(frozen=True, slots=True)
class Period:
    """`start <= t < end`, in UTC, and the zone its local times are shown in."""

    start: datetime
    end: datetime
    zone: str

    def local(self, value: datetime) -> datetime:
        return value.astimezone(ZoneInfo(self.zone))


def zone_info(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}", key="digest.timezone",
                          hint="an IANA name such as Asia/Shanghai or Europe/London") from None


def parse_period_length(text: str) -> timedelta:
    """'24h' or '7d'."""
    match = _PERIOD.match(text)
    if not match or int(match[1]) == 0:
        raise ComplaintsError(f"not a period length: {text!r}", hint="e.g. 24h or 7d")
    amount = int(match[1])
    return timedelta(hours=amount) if match[2] == "h" else timedelta(days=amount)


def period_ending(day: date, hour: int, zone: str, length: timedelta) -> Period:
    """The period ending at `hour`:00 local time on `day`, lasting `length` of elapsed time.

    Elapsed time, not wall-clock: on a daylight-saving change day a 24h period starts at
    07:00 or 09:00 local time the day before, and no hour is counted twice or skipped.
    A local time that a DST change skips or repeats is taken as its first occurrence.
    """
    if not 0 <= hour <= 23:
        raise ConfigError(f"hour {hour} is not 0-23", key="digest.hour")
    local_end = datetime.combine(day, time(hour), tzinfo=zone_info(zone))
    end = local_end.astimezone(UTC)
    return Period(end - length, end, zone)


def today_in(zone: str, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(zone_info(zone)).date()


# --- the figures


@dataclass(frozen=True, slots=True)
class CaseLine:
    """A case in a list: reference, subject tag, hours (age, overdue or left), where to write."""

    ref: str
    tag: str
    category: str
    mailbox: str
    hours: float
    reply_to: str
    subject: str | None = None
    parent: str | None = None

    def as_json(self, hours_key: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "category": self.category,
                               "mailbox": self.mailbox}
        if hours_key:
            out[hours_key] = self.hours
        if self.parent is not None:
            out["parent"] = self.parent
        if self.subject is not None:
            out["subject"] = self.subject
        return out


@dataclass(frozen=True, slots=True)
class CaseList:
    total: int
    lines: tuple[CaseLine, ...]


@dataclass(frozen=True, slots=True)
class SenderLine:
    sender: str  # masked: f***@example.com
    cases: int
    refs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Digest:
    period: Period
    new_total: int
    new_by_category: tuple[tuple[str, int], ...]
    new_by_priority: tuple[tuple[str, int], ...]
    open_total: int
    awaiting_staff: CaseList
    overdue: CaseList
    due_soon: CaseList
    due_soon_hours: int
    first_response: q.Spread
    resolution: q.Spread
    reopened: CaseList
    appeals: CaseList
    regulator: CaseList
    resolved: int
    closed: int
    repeat_senders: tuple[SenderLine, ...]
    repeat_senders_total: int
    mailboxes: tuple[tuple[str, int, int], ...]  # name, new, open at end
    quarantined: int
    outbox_failed: int
    list_limit: int

    @property
    def is_empty(self) -> bool:
        return not (self.new_total or self.open_total or self.resolved or self.closed
                    or self.reopened.total or self.quarantined or self.outbox_failed)

    def as_json(self) -> dict[str, Any]:
        def spread(s: q.Spread) -> dict[str, Any]:
            return {"median": s.median and round(s.median, 2), "p90": s.p90 and round(s.p90, 2),
                    "count": s.count}

        return {
            "period": {"start": self.period.local(self.period.start).isoformat(),
                       "end": self.period.local(self.period.end).isoformat(),
                       "timezone": self.period.zone},
            "new": {"total": self.new_total, "by_category": dict(self.new_by_category),
                    "by_priority": dict(self.new_by_priority)},
            "open_total": self.open_total,
            "awaiting_staff": [c.as_json("age_hours") for c in self.awaiting_staff.lines],
            "overdue": [c.as_json("hours_over") for c in self.overdue.lines],
            "due_soon": [c.as_json("hours_left") for c in self.due_soon.lines],
            "due_soon_hours": self.due_soon_hours,
            "first_response_hours": spread(self.first_response),
            "resolution_hours": spread(self.resolution),
            "reopened": [c.as_json(None) for c in self.reopened.lines],
            "appeals": [c.as_json(None) for c in self.appeals.lines],
            "regulator": [c.as_json("age_hours") for c in self.regulator.lines],
            "resolved": self.resolved,
            "closed": self.closed,
            "repeat_senders": [{"sender": s.sender, "cases": s.cases, "refs": list(s.refs)}
                               for s in self.repeat_senders],
            "mailboxes": {name: {"new": new, "open": still_open}
                          for name, new, still_open in self.mailboxes},
            "quarantined": self.quarantined,
            "outbox_failed": self.outbox_failed,
            # The lists above stop at list_limit entries; these are the full counts.
            "totals": {"awaiting_staff": self.awaiting_staff.total, "overdue": self.overdue.total,
                       "due_soon": self.due_soon.total, "reopened": self.reopened.total,
                       "appeals": self.appeals.total, "regulator": self.regulator.total,
                       "repeat_senders": self.repeat_senders_total},
            "list_limit": self.list_limit,
        }


def collect_digest(session: Session, settings: Settings, period_start: datetime,
                   period_end: datetime, *, limit: int = LIST_LIMIT) -> Digest:
    """Every figure of the digest for `period_start <= t < period_end`, from SQL."""
    start, end = period_start.astimezone(UTC), period_end.astimezone(UTC)
    cfg = settings.digest
    zone_info(cfg.timezone)
    lines = _LineMaker(settings, end)

    by_category: dict[str, int] = {}
    by_priority: dict[str, int] = {}
    for category, priority, count in q.new_by_category_and_priority(session, start, end):
        by_category[category] = by_category.get(category, 0) + count
        by_priority[priority] = by_priority.get(priority, 0) + count
    until = end + timedelta(hours=cfg.due_soon_hours)
    sender_total, senders = q.repeat_senders(session, start, end, limit)
    return Digest(
        period=Period(start, end, cfg.timezone),
        new_total=sum(by_category.values()),
        new_by_category=_sorted_counts(by_category),
        new_by_priority=_sorted_counts(by_priority),
        open_total=q.open_total(session, end),
        awaiting_staff=lines.since(q.awaiting_staff(session, end, limit)),
        overdue=lines.since(q.overdue(session, end, limit)),
        due_soon=lines.until(q.due_soon(session, end, until, limit)),
        due_soon_hours=cfg.due_soon_hours,
        first_response=q.first_response_spread(session, start, end),
        resolution=q.resolution_spread(session, start, end),
        reopened=lines.since(q.reopened(session, start, end, limit)),
        appeals=lines.since(q.appeals(session, start, end, limit)),
        regulator=lines.since(q.regulator_open(session, end, limit)),
        resolved=q.resolved_count(session, start, end),
        closed=q.closed_count(session, start, end),
        repeat_senders=tuple(SenderLine(mask_address(s.address), s.cases, s.references)
                             for s in senders),
        repeat_senders_total=sender_total,
        mailboxes=tuple((name, new, still_open)
                        for name, (new, still_open) in q.per_mailbox(session, start, end).items()),
        quarantined=q.quarantine_held(session),
        outbox_failed=q.outbox_failed(session),
        list_limit=limit,
    )


PRIORITY_ORDER = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


def _sorted_counts(counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], PRIORITY_ORDER.get(kv[0], 9),
                                                        kv[0])))


class _LineMaker:
    """Turns capped query rows into CaseLines: hours relative to the end, tag, reply address."""

    def __init__(self, settings: Settings, end: datetime) -> None:
        self.end = end
        self.tag_format = settings.ack.tag_format
        self.subjects = settings.digest.include_subjects
        self.addresses = {m.name: m.addresses[0] for m in settings.mailboxes if m.addresses}
        self.fallback = next(iter(self.addresses.values()), "")

    def since(self, capped: q.Capped) -> CaseList:
        return self._lines(capped, lambda at: (self.end - at).total_seconds() / 3600)

    def until(self, capped: q.Capped) -> CaseList:
        return self._lines(capped, lambda at: (at - self.end).total_seconds() / 3600)

    def _lines(self, capped: q.Capped, hours: Any) -> CaseList:
        return CaseList(capped.total, tuple(
            CaseLine(ref=row.reference, tag=format_tag(self.tag_format, row.reference),
                     category=row.category or q.UNCATEGORIZED, mailbox=row.mailbox,
                     hours=round(hours(row.at), 1),
                     reply_to=self.addresses.get(row.mailbox, self.fallback),
                     subject=first_line(row.subject) if self.subjects else None,
                     parent=row.parent)
            for row in capped.rows))


def first_line(text: str) -> str:
    line = next((part for part in text.splitlines() if part.strip()), "")
    return truncate_text(clean_header_text(line, 10 * SUBJECT_CHARS), SUBJECT_CHARS)


def mask_address(address: str) -> str:
    """`z***@example.com`: enough to tell senders apart, not to write to them."""
    local, at, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}" if at and local else "***"


# --- rendering


def render_digest(digest: Digest, settings: Settings, *, language: str | None = None,
                  renderer: TemplateRenderer | None = None) -> RenderedBody:
    renderer = renderer or TemplateRenderer.with_override(settings.processing.templates_dir,
                                                          default_language="en")
    return renderer.render_pair(TEMPLATE, language or settings.digest.language,
                                digest_context(digest))


def digest_context(digest: Digest) -> dict[str, Any]:
    """The variables the digest templates use (listed in README)."""
    period = digest.period
    return {"digest": digest, "start": period.local(period.start),
            "end": period.local(period.end), "zone": period.zone}


def digest_subject(digest: Digest, language: str) -> str:
    end = digest.period.local(digest.period.end)
    if language.lower().startswith("zh"):
        return (f"投诉日报 {end:%Y-%m-%d}：新增 {digest.new_total}，未结 {digest.open_total}，"
                f"超时 {digest.overdue.total}")
    return (f"Complaint digest {end:%Y-%m-%d}: {digest.new_total} new, "
            f"{digest.open_total} open, {digest.overdue.total} overdue")


# --- the mail


def compose_digest(digest: Digest, body: RenderedBody, settings: Settings,
                   now: datetime) -> EmailMessage:
    """The digest mail to the configured recipients, from the first monitored address."""
    recipients = [validate_address(r) for r in settings.digest.recipients]
    if not recipients:
        raise ConfigError("no digest recipients configured", key="digest.recipients",
                          hint='e.g. recipients = ["lead@example.com"] in [digest]')
    sender = next((a for m in settings.mailboxes for a in m.addresses), "")
    if not sender:
        raise ConfigError("the digest is sent from the first mailbox address; none configured",
                          key="mailbox")
    msg = EmailMessage(policy=POLICY)
    msg["From"] = _header_address(sender)
    msg["To"] = [_header_address(r) for r in recipients]
    msg["Subject"] = clean_header_text(digest_subject(digest, settings.digest.language))
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = make_message_id(settings.ack.message_id_domain,
                                        settings.ack.installation_id)
    # Automatic mail: no out-of-office answers to it, and our own loop guard recognises it.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg[settings.ack.loop_header] = clean_header_text(settings.ack.installation_id, 200)
    msg.set_content(body.text, subtype="plain", charset="utf-8")
    if body.html is not None:
        msg.add_alternative(body.html, subtype="html", charset="utf-8")
    return msg


def _header_address(address: str) -> HeaderAddress:
    local, _, domain = validate_address(address).rpartition("@")
    return HeaderAddress(username=local, domain=domain)


def queue_digest(session: Session, digest: Digest, body: RenderedBody, settings: Settings,
                 now: datetime, *, force: bool = False) -> OutboxMail:
    """Record the run for the period end and queue the mail, in the caller's transaction.

    The unique period_end makes a second run for the same date fail at the INSERT, even when
    two run at once; `force` sends anyway and moves the record to the new mail.
    """
    run = session.scalar(select(DigestRun).where(DigestRun.period_end == digest.period.end))
    if run is not None and not force:
        sent = digest.period.local(run.sent_at)
        raise AlreadySent(f"the digest for the period ending "
                          f"{digest.period.local(digest.period.end):%Y-%m-%d %H:%M} was already "
                          f"sent at {sent:%Y-%m-%d %H:%M}")
    if run is None:
        run = DigestRun(period_end=digest.period.end, sent_at=now)
        session.add(run)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:
            raise AlreadySent("the digest for this period is being sent by another run") from None
    message = compose_digest(digest, body, settings, now)
    mail = queue_mail(session, message, kind="digest", recipients=list(settings.digest.recipients),
                      now=now, automatic=True)
    session.flush()
    run.sent_at, run.outbox_id = now, mail.id
    return mail
