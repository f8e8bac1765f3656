"""One batch of fetched mail, end to end: parse, recognise duplicates, classify, file on a case.

The decisions are pure (parse, dedup key, classification); this module applies them to the
database inside the caller's transaction, and the caller advances the folder cursor in the
same transaction. A batch is first filed fast: one unit of work, flushed once, no SAVEPOINT
per mail. If any mail fails, that attempt raises NeedsCare, the caller rolls the batch back and
files it again carefully: each mail in its own SAVEPOINT, so the one that fails is rolled back
alone and quarantined with its reason while the rest is committed. Failures are rare; a
SAVEPOINT and a flush per mail were a third of the ingest time.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session

from processor import casework, failpoints
from processor.ack import (
    AckPlan,
    AckRequest,
    composed_here,
    request_acknowledgement,
)
from processor.blobstore import BlobStore
from processor.classify import Classification, classify
from processor.compose import compose_staff_notification, make_message_id
from processor.composing import Composed, ComposingElsewhere, NotComposed, composing_elsewhere
from processor.context import IngestContext
from processor.db import is_concurrency_conflict
from processor.db.deferred import deferred_rows, deferring
from processor.db.ledger import AutoReplyLedger
from processor.db.models import Attachment, Case, Message, Quarantine
from processor.db.store import (
    ATTACHMENTS,
    CaseNumbers,
    StoredMessage,
    add_copy,
    add_event,
    add_event_to_complete,
    change_message,
    existing_messages,
    format_reference,
    new_message,
)
from processor.dedup import dedup_key
from processor.errors import ComplaintsError, ConcurrentWrite
from processor.imap import FetchedMail
from processor.loopguard import robot_signals
from processor.mail import ParsedMessage, parse_message
from processor.outbox import outbox_values, queue_mail
from processor.prepare import MIN_PARALLEL_MAILS, Prepared, received_by
from processor.threading import raised_priority

log = logging.getLogger("processor.pipeline")

Outcome = Literal["stored", "duplicate", "quarantined", "ignored"]


@dataclass(frozen=True, slots=True)
class MailOutcome:
    uid: int
    outcome: Outcome
    case_reference: str | None = None
    reason: str = ""


class Unusable(Exception):
    """The parser returned, but nothing usable remains to file the mail under."""


class HeldForReview(Exception):
    """A stranger's mail naming someone else's case, with the policy set to hold it."""


class NeedsCare(Exception):
    """A mail failed in a fast attempt: file the batch again mail by mail (see above)."""


def ingest_batch(session: Session, store: BlobStore, ctx: IngestContext,
                 prepared: Sequence[Prepared],
                 should_stop: Callable[[], bool] = lambda: False, *,
                 retry_conflicts: bool = False, careful: bool = True) -> list[MailOutcome]:
    """File every mail of a prepared batch (processor.prepare); returns one outcome per mail
    handled, in order.

    Stops early (after the mail in hand) when `should_stop()` turns true; the caller then
    advances the cursor only to the last UID returned. With `retry_conflicts`, a mail that
    collides with another worker's commit (the same mail, or a mail of the same thread, filed
    there at the same moment) raises ConcurrentWrite for the whole batch to be filed again,
    instead of being quarantined: on the second pass the other worker's rows are visible.
    Without `careful`, the first mail that fails raises NeedsCare (see the module's doc).
    """
    parsed = [(p.mail, p.message, p.key) for p in prepared]
    known: dict[str, StoredMessage] = dict(
        existing_messages(session, (key for _, _, key in parsed if key)))
    claims = casework.ThreadClaims.load(
        session,
        (i for _, m, _ in parsed if isinstance(m, ParsedMessage) for i in casework.thread_ids(m)),
        (r for _, m, _ in parsed if isinstance(m, ParsedMessage)
         for r in casework.case_references(ctx, m)))
    ledger = AutoReplyLedger(
        session, (m.from_.address for _, m, _ in parsed
                  if isinstance(m, ParsedMessage) and m.from_), ctx.clock(),
        ctx.settings.ack.period_hours)
    numbers = CaseNumbers(session)
    numbers.reserve(sum(1 for _, m, key in parsed
                        if isinstance(m, ParsedMessage) and key not in known))
    outcomes: list[MailOutcome] = []
    # Filed fast, the batch's history events, thread claims and copy records are written at
    # its end as plain rows (processor.db.deferred); filed carefully, each mail's rows must
    # roll back with its SAVEPOINT, so they stay ORM objects.
    with contextlib.nullcontext() if careful else deferred_rows(session) as rows:
        if rows is not None and _compose_elsewhere(ctx, prepared):
            assert ctx.preparer is not None and ctx.renderer is not None
            rows.unfinished.append(ComposingElsewhere(ctx.preparer, ctx.renderer, store))
        if rows is not None:
            # Every file of the batch is staged once its acknowledgements are: their data can
            # go to disk while the rows are written (the commit waits for it in store.sync).
            rows.when_finished.append(store.sync_ahead)
        for mail, message, key in parsed:
            if outcomes and should_stop():
                break
            ready = prepared[len(outcomes)]
            outcomes.append(_ingest_one(session, store, ctx, mail, message, key, known, ledger,
                                        claims, numbers, retry_conflicts, careful,
                                        ready.classification, ready.raw_sha256))
            failpoints.reach("mid-batch")
    numbers.finish()
    return outcomes


def _compose_elsewhere(ctx: IngestContext, prepared: Sequence[Prepared]) -> bool:
    """Compose acknowledgements in the worker processes when they prepared this batch: for a
    batch too small for them, starting them would cost more than it saves."""
    return (ctx.preparer is not None and ctx.preparer.processes > 0
            and ctx.renderer is not None and len(prepared) >= MIN_PARALLEL_MAILS)


def _ingest_one(session: Session, store: BlobStore, ctx: IngestContext, mail: FetchedMail,
                message: ParsedMessage | BaseException, key: str | None,
                known: dict[str, StoredMessage], ledger: AutoReplyLedger,
                claims: casework.ThreadClaims, numbers: CaseNumbers, retry_conflicts: bool,
                careful: bool, classification: Classification | None,
                raw_sha256: str | None = None) -> MailOutcome:
    stage = "parse"
    mark = numbers.mark()
    unit = session.begin_nested if careful else contextlib.nullcontext
    try:
        if isinstance(message, BaseException):
            raise message
        if key in known:
            stage = "deduplicate"
            with unit():
                return _record_duplicate(session, ctx, mail, message, known[key])
        stage = "store"
        with unit():
            outcome, stored = _store_new(session, store, ctx, mail, message, key or "", ledger,
                                         claims, numbers, classification=classification,
                                         raw_sha256=raw_sha256)
        claims.keep_pending()
        known[key or ""] = stored
        return outcome
    except Exception as exc:
        if retry_conflicts and is_concurrency_conflict(exc):
            raise ConcurrentWrite(f"uid {mail.uid}: {exc.__class__.__name__}") from exc
        if not careful and stage != "parse":  # this mail may have written half its rows
            raise NeedsCare(f"uid {mail.uid} failed at stage {stage}") from exc
        claims.forget_pending()
        numbers.rewind(mark)
        reason = _describe(exc)
        stage = "review" if isinstance(exc, HeldForReview) else stage
        log.warning("quarantining mail uid=%s from %s/%s at stage %s: %s", mail.uid,
                    ctx.mailbox.name, ctx.folder, stage, reason)
        quarantine_mail(session, store, ctx, mail, stage=stage, reason=reason)
        return MailOutcome(mail.uid, "quarantined", reason=reason)


def ingest_again(session: Session, store: BlobStore, ctx: IngestContext,
                 mail: FetchedMail) -> MailOutcome:
    """File a mail whose server copy is already recorded (a quarantine retry): no new copy
    row; a duplicate is reported as such. Raises on failure, leaving the caller to decide."""
    message = parse_message(mail.raw, ctx.limits)
    key = dedup_key(mail.raw, message)
    existing = existing_messages(session, [key]).get(key)
    if existing is not None:
        reference = existing.case.reference if existing.case else None
        return MailOutcome(mail.uid, "duplicate", reference)
    ledger = AutoReplyLedger(session, [message.from_.address] if message.from_ else [],
                             ctx.clock(), ctx.settings.ack.period_hours)
    claims = casework.ThreadClaims.load(session, casework.thread_ids(message),
                                        casework.case_references(ctx, message))
    numbers = CaseNumbers(session)
    numbers.reserve(1)  # outside the SAVEPOINT (see CaseNumbers)
    mark = numbers.mark()
    try:
        with session.begin_nested():
            outcome, _ = _store_new(session, store, ctx, mail, message, key, ledger, claims,
                                    numbers, record_copy=False)
    except BaseException:
        numbers.rewind(mark)
        raise
    finally:
        numbers.finish()
    return outcome


def quarantine_mail(session: Session, store: BlobStore, ctx: IngestContext, mail: FetchedMail,
                    *, stage: str, reason: str, raw_sha256: str | None = None) -> Quarantine:
    """Keep the raw bytes and the reason; the poller then moves the mail to the quarantine
    folder. Used for mails that fail and for mails over the size limit (never parsed; their
    bytes are already in the store, `raw_sha256`)."""
    raw_sha = raw_sha256 or (store.put(mail.raw) if mail.raw else None)
    now = ctx.clock()
    with session.begin_nested():
        entry = Quarantine(mailbox=ctx.mailbox.name, folder=ctx.folder,
                           uidvalidity=ctx.uidvalidity, uid=mail.uid, raw_sha256=raw_sha,
                           size=mail.size, stage=stage, reason=reason[:4000], status="held",
                           created_at=now)
        session.add(entry)
        session.flush()
        _copy(session, ctx, mail.uid, "quarantined", now, quarantine=entry)
    return entry


def _record_duplicate(session: Session, ctx: IngestContext, mail: FetchedMail,
                      message: ParsedMessage, existing: StoredMessage) -> MailOutcome:
    now = ctx.clock()
    received_by = sorted(set(existing.received_by) | set(_received_by(ctx, message)))
    if received_by != existing.received_by:
        change_message(session, existing, received_by=received_by)
    _copy(session, ctx, mail.uid, "duplicate", now, message=existing)
    reference = existing.case.reference if existing.case else None
    log.info("duplicate of stored message %s (%s) skipped", existing.message_id, reference)
    return MailOutcome(mail.uid, "duplicate", reference)


def _store_new(session: Session, store: BlobStore, ctx: IngestContext, mail: FetchedMail,
               message: ParsedMessage, key: str, ledger: AutoReplyLedger,
               claims: casework.ThreadClaims, numbers: CaseNumbers, record_copy: bool = True,
               classification: Classification | None = None,
               raw_sha256: str | None = None) -> tuple[MailOutcome, StoredMessage]:
    if message.from_ is None or not message.from_.address:
        raise Unusable("no sender address could be read from the mail")
    now = ctx.clock()
    stored = _message_row(session, store, ctx, mail, message, key, now, raw_sha256)
    if record_copy:
        _copy(session, ctx, mail.uid, "stored", now, message=stored)
    received_by = _received_by(ctx, message)
    robot = robot_signals(message, ctx.loop)
    threading = casework.decide(session, ctx, message, bool(robot), now, claims)
    decision = threading.decision
    if decision.action == "hold":
        raise HeldForReview("; ".join(decision.reasons))
    if decision.action in ("join", "reopen", "record-only") and threading.case is not None:
        casework.apply_to_case(session, store, ctx, threading.case, stored, message, threading,
                               now, classification)
        claims.claim(threading.case, casework.thread_ids(message), now)
        claims.note_filed(stored)
        log.info("%s joins case %s as %s (%s)", message.message_id, threading.case.reference,
                 decision.role, decision.action)
        return MailOutcome(mail.uid, "stored", threading.case.reference), stored
    if classification is None and ctx.rules:  # prepared without rules, or it failed there
        classification = classify(message, ctx.rules, received_by[0])
    if classification is not None and classification.ignored and decision.action == "new-case":
        log.info("mail %s ignored by the rules; kept without a case", message.message_id)
        return MailOutcome(mail.uid, "ignored"), stored
    case = _open_case(session, ctx, message, numbers.take(), now)
    stored.case = case
    # The thread's Message-IDs become this case's: a worker filing another mail of the thread
    # at this moment collides here and files its batch again (see ingest_batch).
    claims.claim(case, casework.thread_ids(message), now)
    claims.note_filed(stored)
    add_event(session, case, "case-opened", at=now, message=stored,
              mailbox=ctx.mailbox.name, subject=message.subject, reasons=list(decision.reasons))
    if classification is not None:
        _apply_classification(session, case, classification, stored, now)
    if threading.case is not None and decision.action in ("new-linked-case", "appeal"):
        _link(session, case, threading.case, decision.action, stored, now)
    _acknowledge(session, store, ctx, case, message, stored, classification, received_by,
                 ledger, now, robot)
    _notify_staff(session, ctx, case, message, classification, received_by, now)
    log.info("opened case %s for %s", case.reference, message.message_id)
    return MailOutcome(mail.uid, "stored", case.reference), stored


def _link(session: Session, case: Case, old: Case, action: str, stored: StoredMessage,
          now: datetime) -> None:
    """A follow-up or appeal case points at the case it continues; both show the link."""
    case.parent_case_id = old.id
    if action == "appeal":
        case.link_kind, case.is_appeal = "appeal", True
        case.category = "appeal"
        case.priority = raised_priority(old.priority)
        if "appeal" not in (case.tags or []):
            case.tags = [*(case.tags or []), "appeal"]
        add_event(session, old, "appeal-opened", at=now, actor=stored.from_address or "",
                  appeal=case.reference)
    else:
        case.link_kind = "follow-up"
        add_event(session, old, "linked-case-opened", at=now, actor=stored.from_address or "",
                  follow_up=case.reference)
    add_event(session, case, "linked", at=now, link_kind=case.link_kind, to=old.reference)


def _acknowledge(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
                 message: ParsedMessage,
                 stored: StoredMessage, classification: Classification | None,
                 received_by: list[str], ledger: AutoReplyLedger, now: datetime,
                 robot: tuple[str, ...]) -> None:
    """Queue the acknowledgement in this transaction, or record on the case why there is none."""
    if ctx.renderer is None:
        return
    ack = ctx.settings.ack
    sender = message.from_.address if message.from_ else ""
    try:
        decided = request_acknowledgement(
            message=message, case_ref=case.reference, from_address=received_by[0],
            classification=classification, rules=ctx.rules, settings=ack, renderer=ctx.renderer,
            loop=ctx.loop,
            counts=ledger.counts(sender), now=now, robot_reasons=robot)
        elsewhere = composing_elsewhere(session)
        if isinstance(decided, AckRequest) and elsewhere is not None:
            _acknowledge_elsewhere(session, ctx, case, stored, decided, ledger, now, elsewhere)
            return
        plan = composed_here(decided, ctx.renderer)
    except ComplaintsError as exc:
        plan = _not_composed(case, exc.__class__.__name__, str(exc))
    if plan.message is None or plan.recipient is None:
        add_event(session, case, "ack-skipped", at=now, message=stored,
                  reasons=list(plan.skip_reasons))
        log.info("%s: no acknowledgement: %s", case.reference, ", ".join(plan.skip_reasons))
        return
    queued = queue_mail(session, plan.message, kind="ack", recipients=[plan.recipient], now=now,
                        case=case, envelope_from=ctx.settings.smtp.envelope_sender)
    casework.record_outgoing(session, store, case, plan.message, now, queued.raw)
    ledger.record(plan.recipient)
    add_event(session, case, "ack-queued", at=now, message=stored,
              message_id=queued.message_id, to=plan.recipient)


def _not_composed(case: Case, error: str, detail: str) -> AckPlan:
    # The complaint is filed either way; a mail we cannot safely compose (an address that
    # fails validation, a broken template) is simply not sent, and the case says why.
    log.error("%s: acknowledgement not composed: %s", case.reference, detail)
    return AckPlan(None, None, (f"cannot-compose:{error}",))


def _acknowledge_elsewhere(session: Session, ctx: IngestContext, case: Case,
                           stored: StoredMessage,
                           request: AckRequest, ledger: AutoReplyLedger, now: datetime,
                           elsewhere: ComposingElsewhere) -> None:
    """_acknowledge's end for an acknowledgement composed in a worker process: counted and
    given its place in the case's history now, queued when it comes back."""
    ledger.record(request.recipient)
    event = add_event_to_complete(session, case, "ack-queued", at=now, message=stored,
                                  message_id=request.message_id, to=request.recipient)

    def finish(result: Composed | NotComposed, raw_sha256: str | None) -> None:
        if isinstance(result, NotComposed):
            plan = _not_composed(case, result.error, result.detail)
            event.update(kind="ack-skipped", data={"reasons": list(plan.skip_reasons)})
            return
        assert raw_sha256 is not None
        casework.defer_outgoing(session, case, result.copy, raw_sha256, len(result.raw), now,
                                outbox_values(result.raw, message_id=request.message_id,
                                              subject=result.copy.subject, kind="ack",
                                              recipients=[request.recipient], now=now,
                                              envelope_from=ctx.settings.smtp.envelope_sender))

    elsewhere.add(request, finish)


def _notify_staff(session: Session, ctx: IngestContext, case: Case, message: ParsedMessage,
                  classification: Classification | None, received_by: list[str],
                  now: datetime) -> None:
    staff = ctx.settings.staff
    if not staff.notify or ctx.renderer is None:
        return
    ack = ctx.settings.ack
    language = ctx.settings.digest.language
    details = classification.details.as_json() if classification else {}
    context = {
        "case_ref": case.reference, "subject": message.subject,
        "category_label": (ctx.rules.category_label(case.category or "other", language)
                           if ctx.rules else case.category or "-"),
        "priority": case.priority,
        "complainant": {"name": case.complainant_name, "address": case.complainant_address},
        "details": {k: ", ".join(v) for k, v in details.items() if v},
        "attachments": [a.as_json() for a in message.attachments],
        "text": message.text,
    }
    body = ctx.renderer.render_pair(staff.notify_template, language, context)
    notice = compose_staff_notification(
        case_ref=case.reference, tag_format=ack.tag_format, original=message,
        from_address=received_by[0], to=list(staff.notify), body=body,
        message_id=make_message_id(ack.message_id_domain, ack.installation_id),
        loop_header_name=ack.loop_header, loop_header_value=ack.installation_id, date=now,
        reply_to=casework.signed_reply_address(ctx, case))
    queue_mail(session, notice, kind="staff-notify", recipients=list(staff.notify), now=now,
               case=case, automatic=False, envelope_from=ctx.settings.smtp.envelope_sender)
    add_event(session, case, "staff-notified", at=now, to=list(staff.notify))


def _open_case(session: Session, ctx: IngestContext, message: ParsedMessage, number: int,
               now: datetime) -> Case:
    processing = ctx.settings.processing
    assert message.from_ is not None
    case = Case(
        reference=format_reference(number, processing.case_prefix, processing.case_width),
        status="new", mailbox=ctx.mailbox.name,
        complainant_address=message.from_.address.lower(), complainant_name=message.from_.name,
        subject=message.subject, language=message.language or "en", priority="normal",
        tags=[], details={}, opened_at=now, updated_at=now, last_inbound_at=now,
    )
    session.add(case)
    return case


def _apply_classification(session: Session, case: Case, classification: Classification,
                          message: StoredMessage, now: datetime) -> None:
    case.category = classification.category
    case.priority = classification.priority
    case.sla_hours = classification.sla_hours
    case.first_response_due_at = case.opened_at + timedelta(hours=classification.sla_hours)
    case.tags = list(classification.tags)
    case.team = classification.team
    case.assignee = classification.assignee
    result = classification.as_json()
    case.details = {"details": result.get("details", {}), "missing": result.get("missing", [])}
    matched = result.get("matched", [])
    add_event(session, case, "classified", at=now, message=message,
              category=case.category, priority=case.priority, sla_hours=case.sla_hours,
              tags=case.tags, rules=[m.get("rule") for m in
                                     (matched if isinstance(matched, list) else [])
                                     if isinstance(m, dict)])


def _message_row(session: Session, store: BlobStore, ctx: IngestContext, mail: FetchedMail,
                 message: ParsedMessage, key: str, now: datetime,
                 raw_sha256: str | None = None) -> StoredMessage:
    raw_sha = store.put(mail.raw, raw_sha256)
    row = new_message(session, dict(
        dedup_key=key, direction="in", author_role="complainant",
        message_id=message.message_id, in_reply_to=message.in_reply_to,
        references=list(message.references), subject=message.subject,
        from_address=message.from_.address.lower() if message.from_ else None,
        from_name=message.from_.name if message.from_ else "",
        to_addresses=[a.as_json() for a in message.to],
        cc_addresses=[a.as_json() for a in message.cc],
        received_by=_received_by(ctx, message), sent_at=message.date, received_at=now,
        language=message.language, text=message.text, new_text=message.new_text,
        auto_submitted=message.auto_submitted, defects=list(message.defects),
        size=len(mail.raw), raw_sha256=raw_sha,
    ))
    # Nothing in the batch reads a mail's attachment rows back: in a fast filing they are
    # written at its end with the other deferred rows (processor.db.deferred).
    deferred = deferring(session)
    for attachment in message.attachments:
        # In pieces: a 30 MB attachment is never held whole, nor decoded if already stored.
        stored_name = store.put_stream(attachment.chunks(), attachment.sha256, attachment.size)
        values = {"filename": attachment.filename, "stored_name": stored_name,
                  "content_type": attachment.content_type, "size": attachment.size,
                  "sha256": attachment.sha256, "inline": attachment.inline,
                  "content_id": attachment.content_id}
        if deferred is not None:
            deferred.add(ATTACHMENTS, values, message_pk=row)
        else:
            assert isinstance(row, Message)  # not deferred: the ORM's
            row.attachments.append(Attachment(**values))
    return row


def _copy(session: Session, ctx: IngestContext, uid: int, outcome: str, now: datetime, *,
          message: StoredMessage | None = None,
          quarantine: Quarantine | None = None) -> None:
    add_copy(session, mailbox=ctx.mailbox.name, folder=ctx.folder, uidvalidity=ctx.uidvalidity,
             uid=uid, outcome=outcome, at=now, message=message, quarantine=quarantine)


def _received_by(ctx: IngestContext, message: ParsedMessage) -> list[str]:
    return received_by(message, ctx.recipients)


def _first(values: list[str]) -> str | None:
    return values[0] if values else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Unusable | HeldForReview):
        return str(exc)
    frame = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno}" if frame else ""
    return f"{exc.__class__.__name__}: {exc}{where}"
