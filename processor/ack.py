"""Should a new case be acknowledged, and the acknowledgement we would send: pure decisions.

The inputs are plain values (the parsed mail, the case reference, the classification, the
counts the database supplied); the output is either a composed message or the reasons we keep
quiet. Nothing here touches the network, the database or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

from processor.classify import Classification, RuleSet
from processor.compose import ack_context, compose_ack, make_message_id
from processor.config import AckSettings
from processor.loopguard import AckLimits, LoopContext, decide_ack, robot_signals
from processor.mail import Address, ParsedMessage
from processor.render import TemplateRenderer, format_when
from processor.wire import ComposedMessage


@dataclass(frozen=True, slots=True)
class AckCounts:
    """What the database knows about earlier automatic mail (measured on our own clock)."""

    sender_recent: int
    global_last_minute: int
    sender_bounced_at: datetime | None


@dataclass(frozen=True, slots=True)
class AckPlan:
    message: EmailMessage | None
    recipient: str | None
    skip_reasons: tuple[str, ...]


def ack_limits(settings: AckSettings) -> AckLimits:
    return AckLimits(per_sender=settings.per_sender, period_hours=settings.period_hours,
                     global_per_minute=settings.global_per_minute,
                     bounce_suppress_days=settings.bounce_suppress_days)


def loop_context(settings: AckSettings, monitored: frozenset[str]) -> LoopContext:
    return LoopContext(monitored_addresses=monitored, loop_header_name=settings.loop_header,
                       installation_id=settings.installation_id,
                       our_message_id_domain=settings.message_id_domain)


@dataclass(frozen=True, slots=True)
class AckRequest:
    """An acknowledgement decided on and not yet composed, as plain values: composing it may
    happen in another process, beside the filing of the batch (processor.composing)."""

    template: str
    language: str
    context: dict[str, Any]
    case_ref: str
    tag_format: str
    original: ParsedMessage  # only what composing reads of it: subject, Message-ID, references
    from_address: str
    to: Address
    message_id: str
    loop_header_name: str
    loop_header_value: str
    date: datetime
    max_subject_chars: int

    @property
    def recipient(self) -> str:
        return self.to.address.lower()


def request_acknowledgement(*, message: ParsedMessage, case_ref: str, from_address: str,
                            classification: Classification | None, rules: RuleSet | None,
                            settings: AckSettings, renderer: TemplateRenderer,
                            loop: LoopContext, counts: AckCounts, now: datetime,
                            robot_reasons: tuple[str, ...] | None = None
                            ) -> AckRequest | AckPlan:
    """Whether to acknowledge: the request to compose, or a plan that says why not."""
    if not settings.enabled:
        return AckPlan(None, None, ("acknowledgements-disabled",))
    if robot_reasons is None:
        robot_reasons = robot_signals(message, loop)
    decision = decide_ack(robot_reasons, counts.sender_recent,
                          counts.global_last_minute, counts.sender_bounced_at, now,
                          ack_limits(settings))
    if not decision.send or message.from_ is None:
        return AckPlan(None, None, decision.reasons or ("no-sender",))
    template = _template(classification, settings)
    language = message.language if message.language in renderer.languages(template) \
        else settings.default_language
    category = classification.category if classification else "other"
    sla_hours = classification.sla_hours if classification else 48
    local_due = (now + timedelta(hours=sla_hours)).astimezone(ZoneInfo(settings.timezone))
    context = ack_context(
        case_ref=case_ref, subject=message.normalized_subject or message.subject,
        category_label=rules.category_label(category, language) if rules else category,
        first_answer_by=format_when(local_due, language), sla_hours=sla_hours,
        missing=classification.missing if classification else ("expected_resolution",))
    return AckRequest(
        template=template, language=language, context=context, case_ref=case_ref,
        tag_format=settings.tag_format,
        original=ParsedMessage(
            message_id=message.message_id, in_reply_to=None, references=message.references,
            date=None, from_=None, to=(), cc=(), reply_to=(), subject=message.subject,
            normalized_subject="", language=message.language, text="", new_text="",
            html=None, attachments=(), auto_submitted=False, auto_reasons=(), defects=(),
            size=0),
        from_address=from_address, to=message.from_,
        message_id=make_message_id(settings.message_id_domain, settings.installation_id),
        loop_header_name=settings.loop_header, loop_header_value=settings.installation_id,
        date=now, max_subject_chars=settings.max_subject_chars)


def composed_here(decided: AckRequest | AckPlan, renderer: TemplateRenderer) -> AckPlan:
    """request_acknowledgement's decision as a plan, the acknowledgement composed in this
    process. Raises ComplaintsError when it cannot be composed safely."""
    if isinstance(decided, AckPlan):
        return decided
    return AckPlan(compose_requested(decided, renderer), decided.recipient, ())


def compose_requested(request: AckRequest, renderer: TemplateRenderer) -> ComposedMessage:
    """The acknowledgement itself: its templates rendered, the message composed and checked.
    Raises ComplaintsError when it cannot be composed safely."""
    body = renderer.render_pair(request.template, request.language, request.context)
    return compose_ack(
        case_ref=request.case_ref, tag_format=request.tag_format, original=request.original,
        from_address=request.from_address, to=request.to, body=body,
        message_id=request.message_id, loop_header_name=request.loop_header_name,
        loop_header_value=request.loop_header_value, date=request.date,
        max_subject_chars=request.max_subject_chars)


def _template(classification: Classification | None, settings: AckSettings) -> str:
    return classification.ack_template if classification and classification.ack_template \
        else settings.template
