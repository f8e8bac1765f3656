"""Mail on an existing conversation: look up the evidence for the thread decision, then apply it.

`decide` gathers what the pure `processor.threading.decide_thread` needs (the case named by the
subject tag, by In-Reply-To/References, by a signed reply address; who the sender is) with a
few queries, only for mails that carry such evidence. `apply_to_case` carries out a decision
that lands on an existing case: status changes, staff commands, the relay of a verified staff
answer to the complainant, and the notes to staff. Every change is an event with its actor.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from processor import progress
from processor.authresults import sender_authenticated
from processor.blobstore import BlobStore
from processor.classify import Classification
from processor.compose import (
    OutgoingCopy,
    compose_case_mail,
    find_case_ref,
    make_message_id,
    outgoing_copy,
)
from processor.context import IngestContext
from processor.db.deferred import deferring, write_deferred
from processor.db.models import Case, Message, OutboxMail, Suppression, ThreadClaim
from processor.db.store import (
    MESSAGES,
    OUTBOX,
    StoredMessage,
    add_event,
    add_thread_claim,
    case_by_reference,
    pending_messages,
)
from processor.mail import ParsedMessage
from processor.mailcommands import CommandParse, parse_commands
from processor.outbox import queue_mail
from processor.replyaddr import ReplyTarget, find_reply_target, make_reply_address
from processor.threading import (
    CaseFacts,
    StaffVerification,
    ThreadDecision,
    ThreadEvidence,
    already_reached,
    appeal_requested,
    apply_status_command,
    decide_thread,
    is_staff_address,
    verify_staff,
)

log = logging.getLogger("processor.casework")

MAX_MESSAGE_ID = 998  # the column's length; longer ids (never seen in real mail) are not claimed


@dataclass(frozen=True, slots=True)
class Threading:
    decision: ThreadDecision
    case: Case | None  # the existing case the decision lands on or links to
    verification: StaffVerification | None


class ThreadClaims:
    """Which case each Message-ID of a thread belongs to (the thread_claims table), for one batch.

    Loaded with a few queries for the whole batch, with the cases its mail names (by claimed
    Message-ID, subject tag or signed reply address) and who took part in them, and kept
    current as the batch files its mail, so threading needs no query per mail, and nothing
    here needs the session flushed. What the mail in hand adds is pending until it is filed
    (`keep_pending`) or abandoned (`forget_pending`)."""

    def __init__(self, session: Session, case_ids: dict[str, int],
                 cases: Iterable[Case] = (),
                 participants: dict[int, set[str]] | None = None,
                 references: Iterable[str] = ()) -> None:
        self._session = session
        self._case_ids = case_ids  # claimed before this batch
        self._cases: dict[str, Case] = {}  # claimed by this batch
        self._pending: dict[str, Case] = {}  # claimed for the mail in hand
        # The cases claimed before the batch, loaded with it (the session's identity map only
        # holds them while something else does), and who took part in each of them so far:
        # a reply then costs no query for its case nor for the case's participants.
        self._loaded = {case.id: case for case in cases}
        self._references = frozenset(references)  # looked up with the batch
        self._by_reference = {case.reference: case for case in self._loaded.values()}
        self._pending_references: dict[str, Case] = {}  # opened or joined by the mail in hand
        self._stored_participants = participants if participants is not None else {}
        self._filed_participants: dict[Case, set[str]] = {}  # by this batch
        self._pending_participants: list[tuple[Case, str]] = []  # by the mail in hand

    @classmethod
    def load(cls, session: Session, message_ids: Iterable[str],
             references: Iterable[str] = ()) -> ThreadClaims:
        """The claims on `message_ids`, with the cases they name and the cases `references`
        name (see case_references)."""
        wanted = sorted({i for i in message_ids if i})
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            found.update(session.execute(
                select(ThreadClaim.message_id, ThreadClaim.case_id)
                .where(ThreadClaim.message_id.in_(wanted[start:start + 500]))).all())
        named = sorted(set(references))
        cases: list[Case] = []
        for start in range(0, len(named), 500):
            cases += session.scalars(select(Case).where(
                Case.reference.in_(named[start:start + 500])))
        named_ids = {case.id for case in cases}
        case_ids = sorted(set(found.values()) | named_ids)
        participants: dict[int, set[str]] = {case_id: set() for case_id in case_ids}
        for start in range(0, len(case_ids), 500):
            chunk = case_ids[start:start + 500]
            unloaded = [case_id for case_id in chunk if case_id not in named_ids]
            if unloaded:
                cases += session.scalars(select(Case).where(Case.id.in_(unloaded)))
            for case_id, address in session.execute(
                    select(Message.case_id, Message.from_address).where(
                        Message.case_id.in_(chunk), Message.direction == "in",
                        Message.author_role.in_(PARTICIPANT_ROLES),
                        Message.from_address.is_not(None)).distinct()):
                if address and case_id is not None:
                    participants[case_id].add(address)
        return cls(session, found, cases, participants, named)

    def case_for(self, ids: Sequence[str]) -> Case | None:
        """The case of the newest of `ids` (References lists the newest last) that is claimed."""
        for message_id in reversed(ids):
            case = self._pending.get(message_id) or self._cases.get(message_id)
            if case is not None:
                return case
            if message_id in self._case_ids:  # committed before the batch: no flush needed
                case_id = self._case_ids[message_id]
                if case_id in self._loaded:
                    return self._loaded[case_id]
                with self._session.no_autoflush:
                    return self._session.get(Case, case_id)
        return None

    def knows(self, reference: str) -> bool:
        """Whether `case_named` can answer for `reference` without the database."""
        return reference in self._references or reference in self._by_reference \
            or reference in self._pending_references

    def case_named(self, reference: str) -> Case | None:
        """The case `reference` names: loaded with the batch, or opened by it."""
        return self._pending_references.get(reference) or self._by_reference.get(reference)

    def participants(self, case: Case) -> set[str] | None:
        """Who took part in `case` (see _facts), or None when this batch did not load the case
        and did not open it: the caller asks the database."""
        if case.id is None:
            stored: set[str] = set()
        elif case.id in self._stored_participants:
            stored = self._stored_participants[case.id]
        else:
            return None
        return stored | self._filed_participants.get(case, set())

    def note_filed(self, stored: StoredMessage) -> None:
        """The mail in hand is filed on its case: its sender counts among the case's
        participants for the rest of the batch, once the mail is kept (`keep_pending`)."""
        if stored.case is not None and stored.direction == "in" and stored.from_address \
                and stored.author_role in PARTICIPANT_ROLES:
            self._pending_participants.append((stored.case, stored.from_address))

    def claim(self, case: Case, ids: Iterable[str], now: datetime) -> None:
        """Claim for `case` every one of `ids` no case has claimed yet. Ids already claimed
        stay with their case (a stranger quoting someone's mail gains nothing by it)."""
        self._pending_references[case.reference] = case
        for message_id in dict.fromkeys(ids):
            if message_id in self._case_ids or message_id in self._cases \
                    or message_id in self._pending:
                continue
            add_thread_claim(self._session, message_id, case, now)
            self._pending[message_id] = case

    def keep_pending(self) -> None:
        self._cases.update(self._pending)
        self._pending.clear()
        self._by_reference.update(self._pending_references)
        self._pending_references.clear()
        for case, address in self._pending_participants:
            self._filed_participants.setdefault(case, set()).add(address)
        self._pending_participants.clear()

    def forget_pending(self) -> None:
        self._pending.clear()
        self._pending_references.clear()
        self._pending_participants.clear()


def thread_ids(message: ParsedMessage) -> list[str]:
    """The Message-IDs that tie a mail to its thread: the ones it answers, then its own."""
    ids = [i for i in (*message.references, message.in_reply_to, message.message_id) if i]
    return [i for i in dict.fromkeys(ids) if len(i) <= MAX_MESSAGE_ID]


def decide(session: Session, ctx: IngestContext, message: ParsedMessage, robot: bool,
           now: datetime, claims: ThreadClaims | None = None) -> Threading:
    """Which case the mail belongs to; no query for a mail that names no case, nor for one
    whose cases `claims` loaded with the batch."""
    sender = message.from_.address.lower() if message.from_ else ""
    staff = ctx.settings.staff
    tag_ref = find_case_ref(message.subject, ctx.tag_pattern)
    ids = [i for i in (message.in_reply_to, *message.references) if i]
    target = _reply_target(ctx, message)
    sender_is_staff = is_staff_address(sender, staff) if (staff.addresses or staff.domains) \
        else False
    claims = claims if claims is not None else ThreadClaims.load(session, thread_ids(message))
    # A mail whose own Message-ID a case already claims: a reply to it was filed first (it
    # reached another mailbox or worker sooner); it belongs to that case's thread.
    claimed_by = claims.case_for([message.message_id]) if message.message_id else None
    if claimed_by is not None and claimed_by.complainant_address != sender:
        # Only the case's own complainant is joined this way: a stranger who replied first to
        # a Message-ID (guessed or seen) must not pull someone's complaint into review.
        claimed_by = None
    if tag_ref is None and not ids and target is None and claimed_by is None:
        evidence = ThreadEvidence(sender=sender, sender_is_staff=sender_is_staff,
                                  auto_submitted=robot)
        return Threading(decide_thread(evidence, now, ctx.settings.lifecycle),
                         None, None)
    cases: dict[str, Case] = {}
    tag_case = _case(session, tag_ref, cases, claims) if tag_ref else None
    reference_case = (claims.case_for([i for i in (*message.references, message.in_reply_to)
                                       if i])
                      or _case_by_message_ids(session, ids, cases) or claimed_by)
    if reference_case is not None:
        cases[reference_case.reference] = reference_case
    target_case = _case(session, target.case_ref, cases, claims) if target else None
    verification = None
    if sender_is_staff:
        auth = sender_authenticated(message.headers.get("authentication-results", ()),
                                    staff.trusted_authserv_ids, sender.rpartition("@")[2])
        verification = verify_staff(True, target, auth)
    evidence = ThreadEvidence(
        sender=sender, tag_ref=tag_ref, tag_case=_facts(session, tag_case, claims),
        reference_case=_facts(session, reference_case, claims),
        reply_target_case=_facts(session, target_case, claims), sender_is_staff=sender_is_staff,
        staff_verified=bool(verification and verification.verified), auto_submitted=robot)
    # Read only when the mail names a case it may join: most open one (a search of the text).
    names_a_case = any((evidence.tag_case, evidence.reference_case, evidence.reply_target_case))
    decision = decide_thread(evidence, now, ctx.settings.lifecycle,
                             names_a_case and appeal_requested(message.new_text,
                                                               ctx.appeal_phrases),
                             unknown_sender_policy=staff.unknown_sender_policy)
    landed = decision.case_ref or decision.link_to
    return Threading(decision, cases.get(landed) if landed else None, verification)


def _reply_target(ctx: IngestContext, message: ParsedMessage) -> ReplyTarget | None:
    if not ctx.reply_secrets:
        return None
    recipients = [a.address for a in message.recipients]
    for header in ("delivered-to", "x-original-to"):
        recipients += list(message.headers.get(header, ()))
    return find_reply_target(recipients, ctx.settings.monitored_addresses(), ctx.reply_secrets,
                             ctx.settings.processing.case_prefix)


def case_references(ctx: IngestContext, message: ParsedMessage) -> list[str]:
    """The case references a mail names (its subject's tag, its signed reply address): what
    `decide` looks up for it, so a batch can look them up at once (ThreadClaims.load)."""
    target = _reply_target(ctx, message)
    return [ref for ref in (find_case_ref(message.subject, ctx.tag_pattern),
                            target.case_ref if target else None) if ref]


def _case(session: Session, reference: str, cache: dict[str, Case],
          claims: ThreadClaims) -> Case | None:
    case = claims.case_named(reference) if claims.knows(reference) \
        else case_by_reference(session, reference)
    if case is not None:
        cache[case.reference] = case
    return case


def _case_by_message_ids(session: Session, ids: list[str], cache: dict[str, Case]) -> Case | None:
    """The case of the most recent of our stored or sent mails that the reply refers to."""
    if not ids:
        return None
    ids = ids[-50:]  # a References header can be long; the newest ones decide
    case_id = session.scalar(select(Message.case_id).where(
        Message.message_id.in_(ids), Message.case_id.is_not(None))
        .order_by(Message.id.desc()).limit(1))
    if case_id is None:
        case_id = session.scalar(select(OutboxMail.case_id).where(
            OutboxMail.message_id.in_(ids), OutboxMail.case_id.is_not(None))
            .order_by(OutboxMail.id.desc()).limit(1))
    case = session.get(Case, case_id) if case_id is not None else None
    if case is not None:
        cache[case.reference] = case
    return case


def _facts(session: Session, case: Case | None,
           claims: ThreadClaims | None = None) -> CaseFacts | None:
    if case is None:
        return None
    participants = claims.participants(case) if claims is not None else None
    if participants is None:
        participants = _participants(session, case)
    return CaseFacts(ref=case.reference, status=case.status,
                     complainant=case.complainant_address, participants=frozenset(participants),
                     resolved_at=case.resolved_at, closed_at=case.closed_at,
                     is_appeal=case.is_appeal)


def _participants(session: Session, case: Case) -> set[str]:
    # Without flushing the batch (a flush per reply was a fifth of the ingest time): the
    # participants already stored, plus those filed earlier in this batch, still pending.
    filed: list[StoredMessage] = [m for m in session.new if isinstance(m, Message)]
    filed += pending_messages(session)
    participants = {m.from_address for m in filed
                    if m.case is case and m.direction == "in"
                    and m.author_role in PARTICIPANT_ROLES and m.from_address}
    if case.id is not None:  # a case opened in this batch has nothing stored yet
        with session.no_autoflush:
            participants.update(a for a in session.scalars(
                select(Message.from_address).where(
                    Message.case_id == case.id, Message.direction == "in",
                    Message.author_role.in_(PARTICIPANT_ROLES)).distinct()) if a)
    return participants


PARTICIPANT_ROLES = ("complainant", "participant")


# --- applying a decision to an existing case ---------------------------------------------------


def apply_to_case(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
                  stored: StoredMessage, message: ParsedMessage, threading: Threading,
                  now: datetime, classification: Classification | None = None) -> None:
    """`classification`: the mail's, when it was classified as it was prepared."""
    decision = threading.decision
    sender = stored.from_address or ""
    stored.case = case
    stored.author_role = decision.role
    case.updated_at = now
    add_event(session, case, "mail-filed", at=now, actor=sender, message=stored,
              role=decision.role, action=decision.action, reasons=list(decision.reasons))
    if decision.role == "unverified-staff":
        reasons = list(threading.verification.reasons) if threading.verification else []
        log.warning("%s: unverified mail claiming to be staff %s: %s", case.reference, sender,
                    "; ".join(reasons))
        add_event(session, case, "unverified-staff-mail", at=now, actor=sender, message=stored,
                  reasons=reasons)
        _tell_staff(session, store, ctx, case, sender, "staff-unverified",
                    {"sender": sender, "reasons": reasons}, message, now)
        return
    if decision.role == "staff":
        _staff_reply(session, store, ctx, case, stored, message, decision, now)
        return
    # The complainant or someone already on the case.
    if message.auto_submitted or decision.new_status is None and decision.action == "join" \
            and "automatic mail never changes" in " ".join(decision.reasons):
        return  # automatic mail is recorded and changes nothing
    case.last_inbound_at = now
    if decision.action == "reopen":
        case.reopened_count += 1
        add_event(session, case, "reopened", at=now, actor=sender, message=stored,
                  **{"from": case.status})
        set_status(session, case, "open", actor=sender, now=now, message=stored)
    elif decision.new_status:
        set_status(session, case, decision.new_status, actor=sender, now=now, message=stored)
    if decision.appeal_noted:
        add_event(session, case, "appeal-noted", at=now, actor=sender, message=stored)
    progress.maybe_progress_reply(session, store, ctx, case, message, now, classification)
    _notify_follow_up(session, store, ctx, case, message, sender, now)


def set_status(session: Session, case: Case, status: str, *, actor: str, now: datetime,
               message: StoredMessage | None = None) -> None:
    old = case.status
    if old == status:
        return
    case.status = status
    if status == "resolved":
        case.resolved_at = now
    elif status == "closed":
        case.closed_at = now
    elif old in ("resolved", "closed"):
        # Reopened: the case is open again for every figure; the earlier resolution stays in
        # the history as its status-changed event.
        case.resolved_at = case.closed_at = None
    add_event(session, case, "status-changed", at=now, actor=actor, message=message,
              **{"from": old, "to": status})


def _staff_reply(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
                 stored: StoredMessage, message: ParsedMessage, decision: ThreadDecision,
                 now: datetime) -> None:
    staff = stored.from_address or ""
    known = ctx.rules.categories.keys() if ctx.rules else ()
    parsed: CommandParse = parse_commands(message.new_text, known)
    if parsed.errors:
        add_event(session, case, "commands-rejected", at=now, actor=staff, message=stored,
                  errors=list(parsed.errors))
        _tell_staff(session, store, ctx, case, staff, "staff-commands-rejected",
                    {"errors": list(parsed.errors)}, message, now)
        return
    if decision.new_status and case.status == "new":
        set_status(session, case, decision.new_status, actor=staff, now=now, message=stored)
    for command in parsed.commands:
        _apply_command(session, store, ctx, case, stored, command.name, command.value, staff, now)
    if parsed.is_note:
        add_event(session, case, "note", at=now, actor=staff, message=stored,
                  text=parsed.remaining_text[:4000])
        return
    text = parsed.remaining_text.strip()
    if not decision.may_relay or not text:
        return
    recipients = [a.address for a in message.recipients]
    if already_reached(case.complainant_address, recipients):
        add_event(session, case, "relay-skipped", at=now, actor=staff, message=stored,
                  reason="the complainant was already among the recipients (reply-all)")
        return
    _relay(session, store, ctx, case, stored, message, text, staff, now)


def _apply_command(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
                   stored: StoredMessage, name: str, value: str, staff: str,
                   now: datetime) -> None:
    if name == "status":
        change = apply_status_command(case.status, value)
        if not change.allowed:
            add_event(session, case, "command-refused", at=now, actor=staff, message=stored,
                      command=name, value=value, reason=change.reason)
            return
        was = case.status
        set_status(session, case, change.new_status, actor=staff, now=now, message=stored)
        if change.new_status == "resolved" and was != "resolved":
            _resolution_notice(session, store, ctx, case, now)
    elif name == "assign":
        case.assignee = value
    elif name == "priority":
        case.priority = value
    elif name == "category":
        case.category = value
    elif name == "tag":
        if value not in (case.tags or []):
            case.tags = [*(case.tags or []), value]
    if name != "note":
        add_event(session, case, "command", at=now, actor=staff, message=stored,
                  command=name, value=value)


def _relay(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
           stored: StoredMessage,
           message: ParsedMessage, text: str, staff: str, now: datetime) -> None:
    """The staff member's new words, sent to the complainant from the monitored address."""
    ack = ctx.settings.ack
    write_deferred(session)  # the complainant's latest mail may be in this batch
    latest = session.scalars(select(Message).where(
        Message.case_id == case.id, Message.direction == "in",
        Message.author_role == "complainant").order_by(Message.id.desc()).limit(1)).first()
    assert ctx.renderer is not None
    body = ctx.renderer.render_pair("relay", case.language, {"text": text,
                                                             "case_ref": case.reference})
    sender = staff if ctx.settings.staff.expose_staff_address else _desk_address(ctx, case)
    outgoing = compose_case_mail(
        case_ref=case.reference, tag_format=ack.tag_format, subject=case.subject,
        from_address=sender, to=[case.complainant_address], body=body,
        message_id=make_message_id(ack.message_id_domain, ack.installation_id),
        loop_header_name=ack.loop_header, loop_header_value=ack.installation_id, date=now,
        in_reply_to=latest.message_id if latest else None,
        references=list(latest.references or []) if latest else [],
        attachments=[(a.filename, a.content_type, a.payload) for a in message.attachments
                     if not a.inline])
    queued = queue_mail(session, outgoing, kind="relay", recipients=[case.complainant_address],
                        now=now, case=case, automatic=False)
    record_outgoing(session, store, case, outgoing, now, queued.raw)
    if case.first_response_at is None:
        case.first_response_at = now
        add_event(session, case, "first-response", at=now, actor=staff)
    add_event(session, case, "relayed", at=now, actor=staff, message=stored,
              message_id=queued.message_id, to=case.complainant_address)


def _resolution_notice(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
                       now: datetime) -> None:
    """Tell the complainant their case is resolved, and how to appeal."""
    address = case.complainant_address
    if _suppressed(session, address, now):
        add_event(session, case, "resolution-notice-skipped", at=now,
                  reason="address bounced recently")
        return
    ack = ctx.settings.ack
    assert ctx.renderer is not None
    body = ctx.renderer.render_pair("case-resolved", case.language, {
        "case_ref": case.reference, "subject": case.subject,
        "reopen_days": ctx.settings.lifecycle.reopen_window_days})
    outgoing = compose_case_mail(
        case_ref=case.reference, tag_format=ack.tag_format, subject=case.subject,
        from_address=_desk_address(ctx, case), to=[address], body=body,
        message_id=make_message_id(ack.message_id_domain, ack.installation_id),
        loop_header_name=ack.loop_header, loop_header_value=ack.installation_id, date=now,
        auto_submitted="auto-generated")
    queued = queue_mail(session, outgoing, kind="resolved", recipients=[address], now=now,
                        case=case)
    record_outgoing(session, store, case, outgoing, now, queued.raw)
    add_event(session, case, "resolution-notice-queued", at=now, message_id=queued.message_id)


def _notify_follow_up(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
                      message: ParsedMessage, sender: str, now: datetime) -> None:
    """The assignee (if an address) or the staff list hears of the complainant's new mail."""
    staff = ctx.settings.staff
    to = [case.assignee] if case.assignee and "@" in case.assignee else list(staff.notify)
    if not to or ctx.renderer is None:
        return
    context: dict[str, object] = {
        "who": sender, "case_ref": case.reference, "status": case.status,
        "priority": case.priority, "subject": message.subject, "text": message.new_text,
        "attachments": [a.as_json() for a in message.attachments]}
    _queue_to_staff(session, store, ctx, case, to, "staff-follow-up", context, now,
                    kind="staff-follow-up")


def _tell_staff(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
                address: str, template: str, extra: dict[str, object],
                message: ParsedMessage, now: datetime) -> None:
    context = {"case_ref": case.reference, "subject": message.subject, **extra}
    _queue_to_staff(session, store, ctx, case, [address], template, context, now,
                    kind=template)


def _queue_to_staff(session: Session, store: BlobStore, ctx: IngestContext, case: Case,
                    to: list[str], template: str, context: dict[str, object], now: datetime,
                    *, kind: str) -> None:
    ack = ctx.settings.ack
    assert ctx.renderer is not None
    body = ctx.renderer.render_pair(template, ctx.settings.digest.language, context)
    outgoing = compose_case_mail(
        case_ref=case.reference, tag_format=ack.tag_format, subject=case.subject,
        from_address=_desk_address(ctx, case), to=to, body=body,
        message_id=make_message_id(ack.message_id_domain, ack.installation_id),
        loop_header_name=ack.loop_header, loop_header_value=ack.installation_id, date=now,
        auto_submitted="auto-generated",
        reply_to=signed_reply_address(ctx, case))
    queue_mail(session, outgoing, kind=kind, recipients=to, now=now, case=case, automatic=False)


def signed_reply_address(ctx: IngestContext, case: Case) -> str | None:
    """Where staff answer a case: only mail to this address can count as verified staff."""
    if not ctx.reply_secrets:
        return None
    return make_reply_address(_desk_address(ctx, case), case.reference, ctx.reply_secrets[0])


def _desk_address(ctx: IngestContext, case: Case) -> str:
    try:
        return ctx.settings.mailbox(case.mailbox).addresses[0]
    except Exception:  # a mailbox removed from the configuration since the case was opened
        return ctx.mailbox.addresses[0]


def _suppressed(session: Session, address: str, now: datetime) -> bool:
    return (session.scalar(select(func.count()).select_from(Suppression).where(
        Suppression.address == address.lower(), Suppression.until > now)) or 0) > 0


def record_outgoing(session: Session, store: BlobStore, case: Case, outgoing: EmailMessage,
                    now: datetime, raw: bytes | None = None) -> Message:
    """An outgoing mail as a message on the case: in the timeline, the export, and the
    In-Reply-To/References lookups (a reply to it threads back to the case). `raw` is the
    serialised mail when the caller has it already (the outbox row), to serialise only once."""
    raw = raw if raw is not None else outgoing.as_bytes(policy=SMTP)
    copy = outgoing_copy(outgoing)
    row = Message(case=case, **outgoing_values(case, copy, store.put(raw), len(raw), now))
    session.add(row)
    _claim_outgoing(session, case, copy, now)
    return row


def defer_outgoing(session: Session, case: Case, copy: OutgoingCopy, raw_sha256: str,
                   size: int, now: datetime, outbox: dict[str, object]) -> None:
    """Queue a mail composed elsewhere and record it on its case as rows written at the end
    of the batch (processor.db.deferred); `outbox`: its outbox row's values (outbox_values).
    Nothing in the batch reads them back: no answer to it can arrive before it is sent."""
    deferred = deferring(session)
    if deferred is None:
        raise RuntimeError("an outgoing mail recorded later needs the batch's rows deferred")
    deferred.add(OUTBOX, outbox, case_id=case)
    deferred.add(MESSAGES, outgoing_values(case, copy, raw_sha256, size, now),
                 case_id=case)
    _claim_outgoing(session, case, copy, now)


def outgoing_values(case: Case, copy: OutgoingCopy, raw_sha256: str, size: int,
                    now: datetime) -> dict[str, object]:
    return {
        "dedup_key": f"out:{copy.message_id}"[:64], "direction": "out",
        "author_role": "system", "message_id": copy.message_id,
        "in_reply_to": copy.in_reply_to, "references": copy.references,
        "subject": copy.subject, "from_address": copy.from_address, "from_name": "",
        "to_addresses": copy.to_addresses, "cc_addresses": [], "received_by": [],
        "sent_at": now, "received_at": now, "language": case.language, "text": copy.text,
        "new_text": copy.text, "size": size, "raw_sha256": raw_sha256,
        # The columns a stored mail sets, all of them: rows with the same columns are
        # inserted together, and acknowledgements alternate with the mails they answer.
        "auto_submitted": False, "defects": []}


def _claim_outgoing(session: Session, case: Case, copy: OutgoingCopy, now: datetime) -> None:
    # Claimed at once, so replies to it filed by two workers at the same moment agree. The
    # Message-ID was just made by us (random), so no case can have claimed it before.
    if copy.message_id and len(copy.message_id) <= MAX_MESSAGE_ID:
        add_thread_claim(session, copy.message_id, case, now)
