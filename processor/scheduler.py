"""Time-driven case work, with "now" passed in: escalate late cases, remind and resolve silent
ones, close resolved cases after a quiet period.

`complaints run` calls `tick` every few minutes and `complaints tick` does it once (for cron).
Each kind of work reads only candidate cases through indexed columns, decides with the pure
functions below, and records every action (and every skip) as an event with its reason.

Doing a thing twice is prevented by the database, not by memory, so a second tick, a restarted
process or `run` and cron at the same time never send twice: an escalation is an "escalated"
event per breach, checked in the candidate query itself; a reminder is a "pending-reminder"
event newer than the case's last activity; a status change is guarded by its condition. On
PostgreSQL the candidate rows are locked (SKIP LOCKED) for the transaction.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, String, cast, func, or_, select
from sqlalchemy.orm import Session

from processor.blobstore import BlobStore
from processor.classify import builtin_rules_dir
from processor.compose import compose_case_mail, make_message_id
from processor.config import LifecycleSettings, Settings
from processor.db import session_scope
from processor.db.ledger import automatic_mail_last_minute
from processor.db.models import Case, Event, Suppression
from processor.db.store import add_event
from processor.errors import ConfigError
from processor.render import TemplateRenderer, base_language, format_when

log = logging.getLogger("processor.scheduler")

ACTIVE = ("new", "open", "pending")
BATCH = 1000  # cases per kind of work per tick; the rest wait for the next tick


@dataclass(frozen=True, slots=True)
class TickResult:
    closed: tuple[str, ...]
    escalated: tuple[str, ...] = ()  # "C-000123 first-response"
    reminded: tuple[str, ...] = ()
    auto_resolved: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # "C-000123 pending-reminder: reason"


# --- the per-category schedule (rules/lifecycle/schedule.toml) ---------------------------------


@dataclass(frozen=True, slots=True)
class CategorySchedule:
    enabled: bool = True
    reminder_after_days: int = 5
    auto_resolve_after_days: int = 7
    resolution_target_hours: int = 0  # 0: sla_hours * resolution_multiple
    resolution_multiple: int = 4
    escalate: bool = True


@dataclass(frozen=True, slots=True)
class Schedule:
    default: CategorySchedule = field(default_factory=CategorySchedule)
    categories: Mapping[str, CategorySchedule] = field(default_factory=dict)
    source: str = "(defaults)"

    def for_category(self, category: str | None) -> CategorySchedule:
        return self.categories.get(category or "", self.default)

    def all(self) -> tuple[CategorySchedule, ...]:
        return (self.default, *self.categories.values())


_KEYS = {f.name: f.type for f in fields(CategorySchedule)}


def schedule_from_mapping(data: Mapping[str, Any], lifecycle: LifecycleSettings,
                          source: str = "(inline)") -> Schedule:
    """[default] over the [lifecycle] settings, then [category.<name>] over [default]."""
    unknown = set(data) - {"default", "category"}
    if unknown:
        raise ConfigError(f"unknown table(s) {sorted(unknown)}; expected [default] and "
                          "[category.<name>]", source=source)
    base = CategorySchedule(reminder_after_days=lifecycle.reminder_after_days,
                            auto_resolve_after_days=lifecycle.auto_resolve_after_days)
    default = _overlay(base, data.get("default", {}), "default", source)
    categories = data.get("category", {})
    if not isinstance(categories, Mapping):
        raise ConfigError("expected tables like [category.billing]", key="category",
                          source=source)
    return Schedule(default, {name: _overlay(default, table, f"category.{name}", source)
                              for name, table in categories.items()}, source)


def _overlay(base: CategorySchedule, table: Any, key: str, source: str) -> CategorySchedule:
    if not isinstance(table, Mapping):
        raise ConfigError("expected a table", key=key, source=source)
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name not in _KEYS:
            raise ConfigError(f"unknown key; expected one of {sorted(_KEYS)}",
                              key=f"{key}.{name}", source=source)
        want_bool = name in ("enabled", "escalate")
        if want_bool != isinstance(value, bool) or (not want_bool and (
                not isinstance(value, int) or value < 0)):
            raise ConfigError("expected true or false" if want_bool else
                              "expected a whole number, 0 or more", key=f"{key}.{name}",
                              source=source)
        values[name] = value
    return replace(base, **values)


def load_schedule(lifecycle: LifecycleSettings, rules_dir: str = "") -> Schedule:
    """The deployment's <rules_dir>/lifecycle/schedule.toml, else the built-in one."""
    candidates = [Path(rules_dir) / "lifecycle" / "schedule.toml"] if rules_dir else []
    candidates.append(builtin_rules_dir() / "lifecycle" / "schedule.toml")
    for path in candidates:
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None
            return schedule_from_mapping(data, lifecycle, str(path))
    return schedule_from_mapping({}, lifecycle)


# --- pure decisions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """When a breach happens, and why that moment."""

    breach: str  # first-response, resolution
    deadline: datetime
    hours: float
    fraction_applied: bool
    fraction_reason: str  # regulator, appeal, or ""


def special_reason(tags: list[str] | tuple[str, ...], is_appeal: bool) -> str:
    """Cases that escalate at a fraction of their target: a regulator is involved, or appeals."""
    if "regulator" in (tags or ()):
        return "regulator"
    return "appeal" if is_appeal else ""


def escalation_target(*, breach: str, opened_at: datetime, first_response_due_at: datetime | None,
                      sla_hours: int | None, tags: list[str] | tuple[str, ...], is_appeal: bool,
                      rule: CategorySchedule, fraction: float) -> Target | None:
    """The moment a case counts as late for `breach`, or None when it has no such target.

    The resolution target is not stored on the case: it is the category's
    resolution_target_hours, or the first-response target times resolution_multiple.
    Regulator cases and appeals escalate at `fraction` of the target (measured from opening).
    """
    if not rule.escalate:
        return None
    if breach == "first-response":
        if first_response_due_at is None:
            return None
        hours = (first_response_due_at - opened_at).total_seconds() / 3600
    else:
        hours = float(rule.resolution_target_hours or (sla_hours or 48) * rule.resolution_multiple)
    reason = special_reason(tags, is_appeal)
    applied = bool(reason) and 0 < fraction < 1
    if applied:
        hours *= fraction
    return Target(breach, opened_at + timedelta(hours=hours), hours, applied, reason)


@dataclass(frozen=True, slots=True)
class PendingAction:
    action: str | None  # remind, resolve, or None
    reason: str


def decide_pending(*, quiet_since: datetime, reminded_at: datetime | None, now: datetime,
                   rule: CategorySchedule) -> PendingAction:
    """What a case waiting on its complainant needs now.

    `quiet_since` is the case's last activity (any mail filed, any change); `reminded_at` the
    latest reminder (sent or skipped). A reminder older than the last activity belongs to an
    earlier wait and does not count.
    """
    if not rule.enabled:
        return PendingAction(None, "switched off for this category")
    current = reminded_at if reminded_at is not None and reminded_at >= quiet_since else None
    remind, resolve = rule.reminder_after_days, rule.auto_resolve_after_days
    if current is None and remind > 0:
        if now - quiet_since >= timedelta(days=remind):
            return PendingAction("remind", f"waiting on the complainant for {remind} days")
        return PendingAction(None, "not yet due")
    start, waited = (current, resolve) if current is not None else (quiet_since, resolve)
    if resolve > 0 and now - start >= timedelta(days=resolve):
        what = f"no answer {resolve} days after the reminder" if current is not None \
            else f"waiting on the complainant for {resolve} days"
        return PendingAction("resolve", what)
    return PendingAction(None, "not yet due" if resolve > 0 else "automatic resolution is off")


def age_words(delta: timedelta, language: str) -> str:
    days, hours = delta.days, delta.seconds // 3600
    if base_language(language) == "zh":
        return f"{days} 天 {hours} 小时" if days else f"{hours} 小时"
    return f"{days} d {hours} h" if days else f"{hours} h"


_BREACH_WORDS = {"en": {"first-response": "first-response", "resolution": "resolution"},
                 "zh": {"first-response": "首次答复", "resolution": "解决"}}
_FRACTION_WORDS = {"en": {"regulator": "tagged regulator", "appeal": "an appeal"},
                   "zh": {"regulator": "涉及监管部门", "appeal": "属于申诉"}}


# --- the tick ---------------------------------------------------------------------------------


@dataclass
class _Tick:
    """What one tick shares between its kinds of work (internal, mutable on purpose)."""

    settings: Settings
    now: datetime
    renderer: TemplateRenderer
    store: BlobStore
    schedule: Schedule
    automatic_last_minute: int = 0
    escalated: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    auto_resolved: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def tick(engine: Engine, settings: Settings, now: datetime, *,
         renderer: TemplateRenderer | None = None, schedule: Schedule | None = None,
         store: BlobStore | None = None) -> TickResult:
    """All time-driven work once, as of `now` (timezone-aware)."""
    work = _Tick(
        settings, now,
        renderer or TemplateRenderer.with_override(settings.processing.templates_dir or None,
                                                   settings.ack.default_language),
        store or BlobStore(settings.data_dir / "blobs"),
        schedule or load_schedule(settings.lifecycle, settings.processing.rules_dir))
    with session_scope(engine) as session:
        work.automatic_last_minute = automatic_mail_last_minute(session, now)
    for breach in ("first-response", "resolution"):
        with session_scope(engine) as session:
            _escalate(session, work, breach)
    with session_scope(engine) as session:
        _pending(session, work)
        work.store.sync()  # the mails recorded on the cases are durable before the commit
    closed = _close_quiet(engine, settings, now)
    result = TickResult(closed, tuple(work.escalated), tuple(work.reminded),
                        tuple(work.auto_resolved), tuple(work.skipped))
    if result.escalated or result.reminded or result.auto_resolved or result.skipped:
        log.info("tick: %d escalated, %d reminded, %d resolved automatically, %d skipped",
                 len(result.escalated), len(result.reminded), len(result.auto_resolved),
                 len(result.skipped))
    return result


def _close_quiet(engine: Engine, settings: Settings, now: datetime) -> tuple[str, ...]:
    """Close resolved cases nobody wrote to for `lifecycle.auto_close_days`."""
    cutoff = now - timedelta(days=settings.lifecycle.auto_close_days)
    closed = []
    with session_scope(engine) as session:
        due = session.scalars(select(Case).where(
            Case.status == "resolved", Case.resolved_at <= cutoff).limit(BATCH)
            .with_for_update(skip_locked=True))
        for case in due:
            if case.last_inbound_at and case.last_inbound_at > case.resolved_at:  # type: ignore[operator]
                continue  # a reply after the resolution reopened or linked it; not quiet
            case.status, case.closed_at, case.updated_at = "closed", now, now
            add_event(session, case, "status-changed", at=now, actor="system",
                      reason=f"no reply for {settings.lifecycle.auto_close_days} days after "
                             "resolution",
                      **{"from": "resolved", "to": "closed"})  # type: ignore[arg-type]
            closed.append(case.reference)
    if closed:
        log.info("closed %d resolved cases after %d quiet days", len(closed),
                 settings.lifecycle.auto_close_days)
    return tuple(closed)


def _not_escalated(breach: str) -> Any:
    return ~select(Event.id).where(
        Event.case_id == Case.id, Event.kind == "escalated",
        Event.data["breach"].as_string() == breach).exists()


def _escalate(session: Session, work: _Tick, breach: str) -> None:
    now, lifecycle = work.now, work.settings.lifecycle
    fraction = lifecycle.escalation_fraction
    if breach == "first-response":
        # Late now, or not yet due but special (regulator/appeal), so possibly late at a fraction.
        special = or_(Case.is_appeal.is_(True), cast(Case.tags, String).like('%"regulator"%'))
        query = select(Case).where(
            Case.status.in_(ACTIVE), Case.first_response_at.is_(None),
            Case.first_response_due_at.is_not(None),
            or_(Case.first_response_due_at <= now, special))
    else:
        # No resolution target is shorter than this; the rest is decided per case below.
        # (sla_hours is at least 1, so a target is at least resolution_multiple hours.)
        shortest = min(s.resolution_target_hours or s.resolution_multiple
                       for s in work.schedule.all()) * min(max(fraction, 0.0), 1.0)
        query = select(Case).where(Case.status.in_(ACTIVE),
                                   Case.opened_at <= now - timedelta(hours=shortest))
    # Oldest first, so a backlog of cases not yet late never hides the late ones.
    order = Case.first_response_due_at if breach == "first-response" else Case.opened_at
    query = query.where(_not_escalated(breach)).order_by(order, Case.id).limit(BATCH)
    for case in session.scalars(query.with_for_update(skip_locked=True)):
        target = escalation_target(
            breach=breach, opened_at=case.opened_at,
            first_response_due_at=case.first_response_due_at, sla_hours=case.sla_hours,
            tags=case.tags or [], is_appeal=case.is_appeal,
            rule=work.schedule.for_category(case.category), fraction=fraction)
        if target is None or now < target.deadline:
            continue
        _send_escalation(session, work, case, target)


def _send_escalation(session: Session, work: _Tick, case: Case, target: Target) -> None:
    now, settings = work.now, work.settings
    address = settings.lifecycle.escalation_address
    reason = (f"{target.breach} target of {target.hours:g} h passed at "
              f"{target.deadline.isoformat(timespec='minutes')}"
              + (f" ({target.fraction_reason}: {settings.lifecycle.escalation_fraction:g} of "
                 "the usual target)" if target.fraction_applied else ""))
    mail_skipped = None
    message_id = None
    if not address:
        mail_skipped = "no escalation address configured (lifecycle.escalation_address)"
    elif _suppressed_until(session, address, now) is not None:
        mail_skipped = "the escalation address bounced recently"
    else:
        language = settings.digest.language
        zone = ZoneInfo(settings.ack.timezone)
        context = {
            "case_ref": case.reference, "subject": case.subject, "status": case.status,
            "breach": target.breach,
            "breach_words": _BREACH_WORDS.get(base_language(language),
                                              _BREACH_WORDS["en"])[target.breach],
            "category": case.category or "-", "priority": case.priority,
            "tags": list(case.tags or []), "assignee": case.assignee or "",
            "opened_words": format_when(case.opened_at.astimezone(zone), language),
            "age_words": age_words(now - case.opened_at, language),
            "target_words": format_when(target.deadline.astimezone(zone), language),
            "target_hours": f"{target.hours:g}", "fraction_applied": target.fraction_applied,
            "fraction_percent": f"{settings.lifecycle.escalation_fraction * 100:g}",
            "fraction_reason": _FRACTION_WORDS.get(base_language(language), _FRACTION_WORDS["en"])
            .get(target.fraction_reason, target.fraction_reason)}
        message_id = _queue(session, work, case, [address], "escalation", language, context,
                            kind="escalation", automatic=False, auto_submitted="auto-generated")
        if message_id is None:
            mail_skipped = "no monitored address to send from"
    add_event(session, case, "escalated", at=now, breach=target.breach, reason=reason,
              deadline=target.deadline.isoformat(), to=address or None, message_id=message_id,
              mail_skipped=mail_skipped)
    work.escalated.append(f"{case.reference} {target.breach}")
    log.warning("%s escalated: %s%s", case.reference, reason,
                f"; no mail: {mail_skipped}" if mail_skipped else "")


def _pending(session: Session, work: _Tick) -> None:
    """Remind complainants who owe us details, then resolve the cases they never answer."""
    now = work.now
    days = [d for s in work.schedule.all() if s.enabled
            for d in (s.reminder_after_days, s.auto_resolve_after_days) if d > 0]
    if not days:
        return
    # updated_at is the case's last activity: a reminder or resolution is due only after
    # at least the shortest configured wait without any (see decide_pending).
    cases = list(session.scalars(select(Case).where(
        Case.status == "pending", Case.updated_at <= now - timedelta(days=min(days)))
        .order_by(Case.updated_at, Case.id).limit(BATCH).with_for_update(skip_locked=True)))
    if not cases:
        return
    reminded_at: dict[int, datetime] = {
        case_id: at for case_id, at in session.execute(
            select(Event.case_id, func.max(Event.at)).where(
                Event.case_id.in_([c.id for c in cases]),
                Event.kind.in_(("pending-reminder", "pending-reminder-skipped")))
            .group_by(Event.case_id))}
    for case in cases:
        rule = work.schedule.for_category(case.category)
        decision = decide_pending(quiet_since=case.updated_at, reminded_at=reminded_at.get(case.id),
                                  now=now, rule=rule)
        if decision.action == "remind":
            _remind(session, work, case, rule, decision.reason)
        elif decision.action == "resolve":
            _auto_resolve(session, work, case, rule, decision.reason)


def _loop_reason(session: Session, work: _Tick, address: str) -> str | None:
    """Why automatic mail to this complainant must not go out now, or None."""
    if address.lower() in work.settings.monitored_addresses():
        return "recipient-is-our-address"
    until = _suppressed_until(session, address, work.now)
    if until is not None:
        return f"bounce-suppressed:until-{until.date().isoformat()}"
    return None


def _over_global_limit(work: _Tick) -> str | None:
    limit = work.settings.ack.global_per_minute
    return f"global-rate-limit:{limit}-per-minute" if work.automatic_last_minute >= limit \
        else None


def _remind(session: Session, work: _Tick, case: Case, rule: CategorySchedule,
            reason: str) -> None:
    now = work.now
    busy = _over_global_limit(work)
    if busy:  # deferred, not dropped: the next tick tries again
        add_event(session, case, "pending-reminder-deferred", at=now, reasons=[busy])
        work.skipped.append(f"{case.reference} pending-reminder: {busy}")
        return
    blocked = _loop_reason(session, work, case.complainant_address)
    if blocked:  # counts as this wait's reminder, so it is not retried every tick
        add_event(session, case, "pending-reminder-skipped", at=now, reason=reason,
                  reasons=[blocked])
        work.skipped.append(f"{case.reference} pending-reminder: {blocked}")
        return
    missing = (case.details or {}).get("missing")
    context = {"case_ref": case.reference, "subject": case.subject,
               "pending_days": rule.reminder_after_days,
               "missing": list(missing) if isinstance(missing, list) else [],
               "auto_resolve_days": rule.auto_resolve_after_days}
    message_id = _queue(session, work, case, [case.complainant_address], "pending-reminder",
                        case.language, context, kind="pending-reminder", automatic=True,
                        auto_submitted="auto-generated")
    add_event(session, case, "pending-reminder", at=now, reason=reason, message_id=message_id)
    work.reminded.append(case.reference)


def _auto_resolve(session: Session, work: _Tick, case: Case, rule: CategorySchedule,
                  reason: str) -> None:
    from processor.casework import set_status

    now = work.now
    busy = _over_global_limit(work)
    if busy:  # resolve together with its closing mail, on a later tick
        add_event(session, case, "auto-resolve-deferred", at=now, reasons=[busy])
        work.skipped.append(f"{case.reference} auto-resolve: {busy}")
        return
    set_status(session, case, "resolved", actor="system", now=now)
    case.updated_at = now
    blocked = _loop_reason(session, work, case.complainant_address)
    message_id = None
    if blocked is None:
        context = {"case_ref": case.reference, "subject": case.subject,
                   "waited_days": rule.auto_resolve_after_days,
                   "reopen_days": work.settings.lifecycle.reopen_window_days}
        message_id = _queue(session, work, case, [case.complainant_address], "auto-resolved",
                            case.language, context, kind="auto-resolved", automatic=True,
                            auto_submitted="auto-generated")
    else:
        work.skipped.append(f"{case.reference} auto-resolved notice: {blocked}")
    add_event(session, case, "auto-resolved", at=now, reason=reason, message_id=message_id,
              notice_skipped=[blocked] if blocked else [])
    work.auto_resolved.append(case.reference)


def _queue(session: Session, work: _Tick, case: Case, to: list[str], template: str,
           language: str, context: dict[str, Any], *, kind: str, automatic: bool,
           auto_submitted: str) -> str | None:
    """Render, compose, queue and record on the case; the Message-ID, or None without a sender."""
    from processor.casework import record_outgoing
    from processor.outbox import queue_mail

    settings, ack = work.settings, work.settings.ack
    sender = _desk_address(settings, case.mailbox)
    if sender is None:
        return None
    body = work.renderer.render_pair(template, language or ack.default_language, context)
    outgoing = compose_case_mail(
        case_ref=case.reference, tag_format=ack.tag_format, subject=case.subject,
        from_address=sender, to=to, body=body,
        message_id=make_message_id(ack.message_id_domain, ack.installation_id),
        loop_header_name=ack.loop_header, loop_header_value=ack.installation_id,
        date=work.now, auto_submitted=auto_submitted, max_subject_chars=ack.max_subject_chars)
    queued = queue_mail(session, outgoing, kind=kind, recipients=to, now=work.now, case=case,
                        automatic=automatic)
    if automatic:
        work.automatic_last_minute += 1
        record_outgoing(session, work.store, case, outgoing, work.now)  # the complainant's thread
    return queued.message_id


def _desk_address(settings: Settings, mailbox: str) -> str | None:
    for candidate in (m for m in settings.mailboxes if m.name == mailbox):
        if candidate.addresses:
            return candidate.addresses[0]
    return next((m.addresses[0] for m in settings.mailboxes if m.addresses), None)


def _suppressed_until(session: Session, address: str, now: datetime) -> datetime | None:
    return session.scalar(select(Suppression.until).where(
        Suppression.address == address.lower(), Suppression.until > now))
