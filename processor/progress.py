"""Where a case stands, in plain words, and whether a complainant's question about it is answered.

`progress_summary` and `plan_progress_reply` are pure: case facts, counts and "now" in, a frozen
summary or a decision with its reasons out. `maybe_progress_reply` is the one function with I/O:
called where a complainant's mail joins an existing case, it gathers the counts, asks the plan,
and queues the reply (or records why it kept quiet). The same summary is what
`complaints case status REF` prints for staff, so both always say the same thing.

Nothing internal reaches the summary: no staff names or addresses, no notes, no team; only the
status, times, the response-time target and which details are still missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from processor.config import AckSettings
from processor.render import base_language, format_when

if TYPE_CHECKING:
    from processor.classify import Classification

log = logging.getLogger("processor.progress")

PROGRESS_TAG = "progress_query"
TEMPLATE = "progress"
KIND = "progress"  # the outbox kind; the per-case limit counts these

_STATUS_WORDS: dict[str, dict[str, str]] = {
    "en": {"new": "received and waiting to be picked up by our team",
           "open": "being worked on by our team",
           "pending": "waiting for information from you",
           "resolved": "resolved",
           "closed": "closed"},
    "zh": {"new": "已受理，正在等待分配处理",
           "open": "正在处理中",
           "pending": "正在等待您补充信息",
           "resolved": "已解决",
           "closed": "已结案"},
}
_TARGET_WORDS: dict[str, dict[str, str]] = {
    "en": {"met": "met: our first answer was sent on {when}, within the target",
           "late": "missed: our first answer was sent on {when}, after the target",
           "on-track": "on track: you will have our first answer by {when}",
           "overdue": "missed: our first answer was due by {when}; we apologise for the delay"},
    "zh": {"met": "已达成：我们已于 {when} 首次答复，在承诺时间内",
           "late": "未达成：我们于 {when} 首次答复，晚于承诺时间",
           "on-track": "按计划：我们将在 {when} 之前首次答复您",
           "overdue": "未达成：首次答复应在 {when} 之前发出，很抱歉耽误了您的时间"},
}
_WAITING_WORDS: dict[str, dict[str, str]] = {
    "en": {"complainant": "your reply with the details listed below",
           "team": "our team to complete the investigation",
           "team-and-details": "our team, and the details listed below would help us",
           "nobody": "nothing: the case is {status}"},
    "zh": {"complainant": "您回复并补充下列信息",
           "team": "我们的工作人员完成调查",
           "team-and-details": "我们的工作人员处理；如能补充下列信息，将有助于加快处理",
           "nobody": "无：投诉{status}"},
}
_NOT_YET_WORKED = {"en": "not yet: your case is in the queue",
                   "zh": "尚未开始：您的投诉正在排队等待处理"}


def _words(table: dict[str, dict[str, str]], language: str) -> dict[str, str]:
    return table.get(base_language(language), table["en"])


@dataclass(frozen=True, slots=True)
class CaseProgressFacts:
    """What the summary is made of; nothing here is internal (no assignee, team or notes)."""

    reference: str
    status: str
    category: str | None
    sla_hours: int | None
    opened_at: datetime
    first_response_due_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    last_worked_at: datetime | None  # the team's latest action, of any kind
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProgressSummary:
    case_ref: str
    status: str
    status_words: str
    category_label: str
    opened_words: str
    last_worked_at: datetime | None
    last_worked_words: str
    sla_hours: int | None
    target_state: str  # met, late, on-track, overdue, none
    target_met: bool | None  # None while the target can still be met
    target_words: str
    waiting_for: str  # complainant, team, team-and-details, nobody
    waiting_words: str
    missing: tuple[str, ...]

    def as_context(self) -> dict[str, Any]:
        """The variables of templates/progress.* (documented in README)."""
        return {"case_ref": self.case_ref, "status": self.status,
                "status_words": self.status_words, "category_label": self.category_label,
                "opened_words": self.opened_words, "last_worked_words": self.last_worked_words,
                "sla_hours": self.sla_hours, "target_state": self.target_state,
                "target_met": self.target_met, "target_words": self.target_words,
                "waiting_for": self.waiting_for, "waiting_words": self.waiting_words,
                "missing": list(self.missing)}

    def lines(self) -> list[str]:
        """The same summary as plain lines, for `complaints case status`."""
        target = (f"{self.sla_hours} h first response, {self.target_words}"
                  if self.sla_hours else self.target_words)
        result = [f"{self.case_ref}: {self.status_words} [{self.status}]",
                  f"  category:        {self.category_label}",
                  f"  opened:          {self.opened_words}",
                  f"  last worked on:  {self.last_worked_words}",
                  f"  response target: {target}",
                  f"  waiting for:     {self.waiting_words}"]
        if self.missing:
            result.append(f"  missing details: {', '.join(self.missing)}")
        return result


def progress_summary(facts: CaseProgressFacts, now: datetime, settings: AckSettings,
                     language: str, category_label: str) -> ProgressSummary:
    """Where the case stands, worded in `language`, times in the desk's time zone."""
    zone = ZoneInfo(settings.timezone)

    def when(value: datetime) -> str:
        return format_when(value.astimezone(zone), language)

    status_words = _words(_STATUS_WORDS, language).get(facts.status, facts.status)
    state, met = target_state(facts, now)
    target_template = _words(_TARGET_WORDS, language).get(state, "")
    stamp = facts.first_response_at if state in ("met", "late") else facts.first_response_due_at
    target_words = target_template.format(when=when(stamp)) if stamp and target_template else "-"
    waiting = waiting_for(facts)
    waiting_words = _words(_WAITING_WORDS, language)[waiting].format(status=status_words)
    last_worked = (when(facts.last_worked_at) if facts.last_worked_at
                   else _NOT_YET_WORKED.get(base_language(language), _NOT_YET_WORKED["en"]))
    return ProgressSummary(
        case_ref=facts.reference, status=facts.status, status_words=status_words,
        category_label=category_label, opened_words=when(facts.opened_at),
        last_worked_at=facts.last_worked_at, last_worked_words=last_worked,
        sla_hours=facts.sla_hours, target_state=state, target_met=met,
        target_words=target_words, waiting_for=waiting, waiting_words=waiting_words,
        missing=facts.missing if waiting != "nobody" else ())


def target_state(facts: CaseProgressFacts, now: datetime) -> tuple[str, bool | None]:
    """The first-response target: met, late, on-track or overdue (or none without a target)."""
    due = facts.first_response_due_at
    if due is None:
        return "none", None
    if facts.first_response_at is not None:
        return ("met", True) if facts.first_response_at <= due else ("late", False)
    return ("on-track", None) if now <= due else ("overdue", False)


def waiting_for(facts: CaseProgressFacts) -> str:
    if facts.status in ("resolved", "closed"):
        return "nobody"
    if facts.status == "pending":
        return "complainant"
    return "team-and-details" if facts.missing else "team"


# --- whether to answer ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgressLimits:
    per_case: int = 1  # replies per case in the window; 0 switches progress replies off
    window_hours: int = 24
    global_per_minute: int = 600


@dataclass(frozen=True, slots=True)
class ProgressPlan:
    send: bool
    reasons: tuple[str, ...]


def plan_progress_reply(*, tags: tuple[str, ...], robot_reasons: tuple[str, ...],
                        sender_is_complainant: bool, case_replies_in_window: int,
                        global_last_minute: int, suppressed_until: datetime | None,
                        limits: ProgressLimits, now: datetime) -> ProgressPlan:
    """Answer only a person's progress question, once per case per window; every reason else.

    The counts come from the outbox, measured on our clock (never the mail's Date):
    `case_replies_in_window` is the progress replies already queued for this case since
    now - window, `global_last_minute` all automatic mail queued in the last minute.
    """
    if PROGRESS_TAG not in tags:
        return ProgressPlan(False, ("not-a-progress-question",))
    reasons = list(robot_reasons)
    if limits.per_case <= 0:
        reasons.append("progress-replies-disabled")
    elif case_replies_in_window >= limits.per_case:
        reasons.append(f"case-rate-limit:{limits.per_case}-per-{limits.window_hours}h")
    if not sender_is_complainant:
        reasons.append("sender-is-not-the-complainant")
    if global_last_minute >= limits.global_per_minute:
        reasons.append(f"global-rate-limit:{limits.global_per_minute}-per-minute")
    if suppressed_until is not None and now < suppressed_until:
        reasons.append(f"bounce-suppressed:until-{suppressed_until.date().isoformat()}")
    return ProgressPlan(not reasons, ("progress-query",) if not reasons else tuple(reasons))


# --- the database edge ------------------------------------------------------------------------


def case_progress_facts(session: Session, case: Any) -> CaseProgressFacts:
    """The facts of a stored case; "last worked on" is the latest event by someone on the team."""
    from processor.db.deferred import write_deferred
    from processor.db.models import Event

    write_deferred(session)  # events of this batch, not yet written, count too
    last_worked = session.scalar(select(func.max(Event.at)).where(
        Event.case_id == case.id, Event.actor != "system",
        func.lower(Event.actor) != case.complainant_address.lower()))
    if case.first_response_at and (last_worked is None or case.first_response_at > last_worked):
        last_worked = case.first_response_at
    details = case.details if isinstance(case.details, dict) else {}
    missing = details.get("missing") or ()
    return CaseProgressFacts(
        reference=case.reference, status=case.status, category=case.category,
        sla_hours=case.sla_hours, opened_at=case.opened_at,
        first_response_due_at=case.first_response_due_at,
        first_response_at=case.first_response_at, resolved_at=case.resolved_at,
        last_worked_at=last_worked,
        missing=tuple(str(m) for m in missing) if isinstance(missing, list | tuple) else ())


def category_label(rules: Any, category: str | None, language: str) -> str:
    if not category:
        return "-"
    return rules.category_label(category, base_language(language)) if rules is not None \
        else category.replace("_", " ")


def maybe_progress_reply(session: Session, store: Any, ctx: Any, case: Any, message: Any,
                         now: datetime, classification: Classification | None = None) -> None:
    """Answer a complainant's "where does my case stand?" on an existing case, or say why not.

    Called from processor.casework.apply_to_case for a complainant's (or participant's) mail;
    the mail is recorded and the assignee notified there as usual, whatever happens here.
    `classification` is the mail's when it was classified as it was prepared (not again here).
    """
    from processor import casework
    from processor.classify import classify
    from processor.compose import compose_case_mail, make_message_id
    from processor.db.deferred import write_deferred
    from processor.db.ledger import automatic_mail_last_minute
    from processor.db.models import OutboxMail, Suppression
    from processor.db.store import add_event
    from processor.loopguard import robot_signals
    from processor.outbox import queue_mail

    if ctx.rules is None or ctx.renderer is None:
        return
    if classification is None:  # prepared without rules, or classifying failed there
        classification = classify(message, ctx.rules)
    tags = classification.tags
    if PROGRESS_TAG not in tags:
        return  # an ordinary follow-up: nothing to record
    ack = ctx.settings.ack
    sender = message.from_.address.lower() if message.from_ else ""
    robot = robot_signals(message, ctx.loop)
    # The batch's acknowledgements, composed beside it and queued at its end, count too.
    write_deferred(session)
    window = 24
    replies = session.scalar(select(func.count()).select_from(OutboxMail).where(
        OutboxMail.case_id == case.id, OutboxMail.kind == KIND,
        OutboxMail.created_at >= now - timedelta(hours=window))) or 0
    global_count = automatic_mail_last_minute(session, now)
    suppressed_until = session.scalar(select(Suppression.until).where(
        Suppression.address == case.complainant_address.lower(), Suppression.until > now))
    plan = plan_progress_reply(
        tags=tuple(tags), robot_reasons=robot,
        sender_is_complainant=sender == case.complainant_address.lower(),
        case_replies_in_window=replies, global_last_minute=global_count,
        suppressed_until=suppressed_until,
        limits=ProgressLimits(per_case=ctx.settings.lifecycle.progress_replies_per_day,
                              window_hours=window, global_per_minute=ack.global_per_minute),
        now=now)
    if not plan.send:
        log.info("%s: progress question from %s not answered: %s", case.reference, sender,
                 ", ".join(plan.reasons))
        add_event(session, case, "progress-reply-skipped", at=now, reasons=list(plan.reasons))
        return
    language = case.language or ack.default_language
    summary = progress_summary(case_progress_facts(session, case), now, ack, language,
                               category_label(ctx.rules, case.category, language))
    body = ctx.renderer.render_pair(TEMPLATE, language, summary.as_context())
    outgoing = compose_case_mail(
        case_ref=case.reference, tag_format=ack.tag_format, subject=case.subject,
        from_address=casework._desk_address(ctx, case), to=[case.complainant_address],
        body=body, message_id=make_message_id(ack.message_id_domain, ack.installation_id),
        loop_header_name=ack.loop_header, loop_header_value=ack.installation_id, date=now,
        in_reply_to=message.message_id, references=list(message.references),
        auto_submitted="auto-replied", max_subject_chars=ack.max_subject_chars)
    queued = queue_mail(session, outgoing, kind=KIND, recipients=[case.complainant_address],
                        now=now, case=case, automatic=True)
    casework.record_outgoing(session, store, case, outgoing, now)
    log.info("%s: progress reply queued %s", case.reference, queued.message_id)
    add_event(session, case, "progress-reply", at=now, reasons=list(plan.reasons),
              message_id=queued.message_id, status=case.status,
              target=summary.target_state)
