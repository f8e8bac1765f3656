"""The transactional outbox: queue a mail with the case change that caused it, send it later.

Queueing happens inside the caller's transaction, so a mail exists exactly when the change that
caused it was committed. Sending claims due rows (SKIP LOCKED on PostgreSQL, so several workers
never take the same row), submits them with aiosmtplib, and records the result. A crash after
the server's 250 and before our commit is the one window in which a mail can go out twice; its
Message-ID was fixed at queueing time, so the duplicate is recognisable.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP

from sqlalchemy import ColumnElement, Engine, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from processor import failpoints
from processor.config import Settings
from processor.coordination import gone_from_here, worker_name
from processor.db import session_scope
from processor.db.models import Case, Counter, OutboxMail, Suppression
from processor.errors import ComplaintsError
from processor.oauth2 import TokenSource
from processor.smtp import (
    LoginRefused,
    SendPermanent,
    SendTransient,
    SmtpSettings,
    next_attempt_delay,
    send_raw,
)

log = logging.getLogger("processor.outbox")

CLAIM_SECONDS = 300
# Permanent failures that say the address itself is bad (RFC 3463 5.1.x), as opposed to
# a policy or content refusal: only these suppress further automatic mail to the address.
BAD_ADDRESS_CODES = (550, 551, 553)
# Refusals of the desk's SMTP login since the last mail the server accepted, and the time (Unix
# seconds) before which no mail is tried after the last one (rows of the counters table).
LOGIN_REFUSALS = "smtp-login-refusals"
LOGIN_HOLD_UNTIL = "smtp-login-hold-until"


def queue_mail(session: Session, message: EmailMessage, *, kind: str, recipients: Sequence[str],
               now: datetime, case: Case | None = None, automatic: bool = True,
               envelope_from: str = "", raw: bytes | None = None) -> OutboxMail:
    """Add `message` to the outbox in the caller's transaction. `raw` is its serialised form
    if the caller has it; a message from processor.compose serialises to the bytes it was
    composed as, so it is never serialised twice either way."""
    row = OutboxMail(case=case, **outbox_values(
        raw if raw is not None else message.as_bytes(policy=SMTP),
        message_id=str(message["Message-ID"]), subject=str(message["Subject"] or ""),
        kind=kind, recipients=recipients, now=now, automatic=automatic,
        envelope_from=envelope_from))
    session.add(row)
    return row


def outbox_values(raw: bytes, *, message_id: str, subject: str, kind: str,
                  recipients: Sequence[str], now: datetime, automatic: bool = True,
                  envelope_from: str = "") -> dict[str, object]:
    """An outbox row's columns but its case: as an ORM object or a deferred row."""
    return {"kind": kind, "automatic": automatic, "message_id": message_id,
            "envelope_from": envelope_from, "recipient": recipients[0].lower(),
            "recipients": [r.lower() for r in recipients], "subject": subject, "raw": raw,
            "status": "queued", "attempts": 0, "next_attempt_at": now, "created_at": now}


def smtp_settings(settings: Settings) -> SmtpSettings:
    s = settings.smtp
    token = _token_source(s.oauth2_token_command) if s.auth == "xoauth2" else None
    return SmtpSettings(host=s.host, port=s.port, tls=s.tls, user=s.user,
                        password=s.password() if s.user and token is None else "",
                        timeout=float(s.timeout_seconds),
                        verify_certificate=s.verify_certificate, ca_file=s.ca_file,
                        envelope_sender=s.envelope_sender, oauth_token=token)


@functools.cache
def _token_source(command: tuple[str, ...]) -> TokenSource:
    """One per command for the process's life, so its token serves many mails (one SMTP
    connection each) and many drains of the outbox."""
    return TokenSource(command, "smtp.oauth2_token_command")


@dataclass(slots=True)
class DrainStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    # Mails of a claimed batch left unsent because another worker had taken them over.
    lost_claims: int = 0
    # Set when the server refused the desk's login: the drain stops, every queued mail waits.
    login_refused: str | None = None
    sent_raws: list[bytes] = field(default_factory=list, repr=False)


def _keep_copies(settings: Settings, stats: DrainStats) -> None:
    """Append what was sent to the configured IMAP Sent folder of the first mailbox.

    Best effort and after the fact: the outbox row is the record; a Sent folder that cannot be
    reached costs a copy in the mail client, never a mail.
    """
    if not settings.smtp.sent_folder or not stats.sent_raws or not settings.mailboxes:
        return
    from processor.imap import MailboxConnection

    try:
        with MailboxConnection(settings.mailboxes[0]) as connection:
            connection.ensure_folder(settings.smtp.sent_folder)
            for raw in stats.sent_raws:
                connection.append(settings.smtp.sent_folder, raw, flags=[b"\\Seen"])
    except ComplaintsError as exc:
        log.warning("could not keep copies in %r: %s", settings.smtp.sent_folder, exc)
    stats.sent_raws.clear()


def release_dead_claims(engine: Engine, now: datetime) -> int:
    """Free mail claimed by a process of this host that no longer runs (it was killed).

    Without this, mail claimed just before a crash would wait out CLAIM_SECONDS; claims of
    processes we cannot see are left to expire, or to the worker registry's heartbeat
    (processor.db.leases.release_claims_of_dead_workers).
    """
    released = 0
    with session_scope(engine) as session:
        for row in session.scalars(select(OutboxMail).where(
                OutboxMail.status == "queued", OutboxMail.claimed_until > now,
                OutboxMail.claimed_by.like(f"{worker_name().partition(':')[0]}:%"))):
            if gone_from_here(row.claimed_by or ""):
                row.claimed_by, row.claimed_until = None, None
                released += 1
    return released


def claim_due(engine: Engine, now: datetime, limit: int, worker: str) -> list[OutboxMail]:
    """Take up to `limit` due mails for this worker for CLAIM_SECONDS."""
    with session_scope(engine) as session:
        query = (select(OutboxMail)
                 .where(OutboxMail.status == "queued", OutboxMail.next_attempt_at <= now,
                        or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until < now))
                 .order_by(OutboxMail.next_attempt_at, OutboxMail.id).limit(limit))
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        for row in rows:
            row.claimed_by, row.claimed_until = worker, now + timedelta(seconds=CLAIM_SECONDS)
        session.flush()
        session.expunge_all()
        return rows


async def drain_outbox(engine: Engine, settings: Settings,
                       clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                       limit: int = 100, worker: str | None = None,
                       should_stop: Callable[[], bool] = lambda: False) -> DrainStats:
    """Send every due mail once (retries are scheduled, not awaited)."""
    stats = DrainStats()
    worker = worker or worker_name()
    smtp = smtp_settings(settings)
    release_dead_claims(engine, clock())
    if _login_held(engine, clock()):  # also mail queued since: each try would be one more
        return stats
    while True:
        batch = claim_due(engine, clock(), limit, worker)
        if not batch:
            _keep_copies(settings, stats)
            return stats
        failpoints.reach("outbox-claimed")
        if await send_claimed(engine, settings, smtp, batch, worker, clock, stats, should_stop):
            if len(batch) == limit:
                continue  # there may be more due
        else:
            release_claims(engine, [m.id for m in batch], worker)
        _keep_copies(settings, stats)  # what was sent before a stop keeps its copy too
        return stats


async def send_claimed(engine: Engine, settings: Settings, smtp: SmtpSettings,
                       batch: Sequence[OutboxMail], worker: str,
                       clock: Callable[[], datetime], stats: DrainStats,
                       should_stop: Callable[[], bool]) -> bool:
    """Send a batch `worker` claimed, mail by mail; False when it stopped before the end."""
    for mail in batch:
        if should_stop():
            return False
        if not renew_claim(engine, mail.id, worker, clock()):
            stats.lost_claims += 1
            log.warning("not sending %s %s: its claim passed to another worker while this "
                        "one was stalled", mail.kind, mail.message_id)
            continue
        await _send_one(engine, settings, smtp, mail, clock, stats)
        if stats.login_refused:
            # Every other mail would meet the same refusal, and a relay that sees many
            # failed logins may lock the account: stop here, all of it waits.
            return False
    return True


async def _send_one(engine: Engine, settings: Settings, smtp: SmtpSettings, mail: OutboxMail,
                    clock: Callable[[], datetime], stats: DrainStats) -> None:
    error: str | None = None
    permanent: SendPermanent | None = None
    try:
        await send_raw(smtp, mail.raw, mail.recipients, envelope_sender=mail.envelope_from or None,
                       message_id=mail.message_id)
    except LoginRefused as exc:
        _wait_for_login(engine, settings, mail, str(exc), clock(), stats)
        return
    except SendTransient as exc:
        error = str(exc)
    except SendPermanent as exc:
        error, permanent = str(exc), exc
    now = clock()
    with session_scope(engine) as session:
        row = session.get(OutboxMail, mail.id)
        assert row is not None
        row.claimed_by, row.claimed_until = None, None
        row.attempts += 1
        if error is None:
            row.status, row.sent_at, row.last_error = "sent", now, None
            session.execute(update(Counter).where(Counter.name == LOGIN_REFUSALS,
                                                  Counter.value != 0).values(value=0))
            if row.case_id is not None:
                case = session.get(Case, row.case_id)
                if case is not None:
                    case.last_outbound_at = now
            stats.sent += 1
            if settings.smtp.sent_folder:
                stats.sent_raws.append(mail.raw)
            log.info("sent %s %s to %s", row.kind, row.message_id, row.recipient)
            return
        row.last_error = error[:2000]
        if permanent is not None or row.attempts >= settings.smtp.max_attempts:
            row.status = "failed"
            stats.failed += 1
            log.error("giving up on %s %s to %s: %s", row.kind, row.message_id, row.recipient,
                      error)
            if permanent is not None and permanent.code in BAD_ADDRESS_CODES and row.automatic:
                suppress(session, row.recipient, f"SMTP {permanent.code}: {error}"[:500], now,
                         settings.ack.bounce_suppress_days)
            return
        delay = next_attempt_delay(row.attempts, base=settings.smtp.retry_base_seconds,
                                   cap=settings.smtp.retry_cap_seconds)
        row.next_attempt_at = now + timedelta(seconds=delay)
        stats.retried += 1
        log.warning("%s %s to %s failed (attempt %d), retrying in %.0f s: %s", row.kind,
                    row.message_id, row.recipient, row.attempts, delay, error)


def _wait_for_login(engine: Engine, settings: Settings, mail: OutboxMail, error: str,
                    now: datetime, stats: DrainStats) -> None:
    """The server refused the desk's login: no mail is at fault, so none fails and none uses up
    its attempts. Every queued mail waits, a little longer after each refusal (30 s, 1 min, ...
    up to `retry_cap_seconds`), so a drain meets the refusal once, not once per mail."""
    with session_scope(engine) as session:
        row = session.get(OutboxMail, mail.id)
        assert row is not None
        row.claimed_by, row.claimed_until = None, None
        row.last_error = error[:2000]
        refusals = _set_counter(session, LOGIN_REFUSALS, Counter.value + 1)
        wait = min(settings.smtp.retry_cap_seconds,
                   settings.smtp.retry_base_seconds * 2 ** min(refusals - 1, 30))
        until = now + timedelta(seconds=wait)
        _set_counter(session, LOGIN_HOLD_UNTIL, math.ceil(until.timestamp()))
        result = session.execute(
            update(OutboxMail)
            .where(OutboxMail.status == "queued", OutboxMail.next_attempt_at < until)
            .values(next_attempt_at=until))
        held = result.rowcount or 0  # type: ignore[attr-defined]
    stats.retried += 1
    stats.login_refused = error
    log.error("%s; %d queued mails wait (none failed) until %s; fix the [smtp] login settings, "
              "then `complaints outbox send`", error, held, until.isoformat(timespec="seconds"))


def _set_counter(session: Session, name: str, value: int | ColumnElement[int]) -> int:
    """Set a row of the counters table to `value` (an expression of `Counter.value` counts
    atomically: workers share the row) and return what it holds after; made when missing."""
    change = (update(Counter).where(Counter.name == name).values(value=value)
              .returning(Counter.value))
    result = session.scalar(change)
    if result is None:  # the first time: the row is made here, or by another worker now
        try:
            with session.begin_nested():
                session.add(Counter(name=name, value=0))
        except IntegrityError:
            pass
        result = session.scalar(change)
    return int(result or 0)


def _login_held(engine: Engine, now: datetime) -> bool:
    with session_scope(engine) as session:
        until = session.scalar(select(Counter.value).where(Counter.name == LOGIN_HOLD_UNTIL))
    return until is not None and until > now.timestamp()


def release_claims(engine: Engine, ids: Sequence[int], worker: str) -> None:
    """Give back claims on mail not attempted (a stop), so it goes out at once after restart;
    only those still held by `worker`, never a claim another worker has taken since."""
    with session_scope(engine) as session:
        for row in session.scalars(select(OutboxMail).where(OutboxMail.id.in_(list(ids)),
                                                            OutboxMail.status == "queued",
                                                            OutboxMail.claimed_by == worker)):
            row.claimed_by, row.claimed_until = None, None


def renew_claim(engine: Engine, mail_id: int, worker: str, now: datetime) -> bool:
    """Whether `worker` still holds its claim on the mail, renewed for CLAIM_SECONDS if so.

    Asked just before each mail of a claimed batch is sent. A worker that stalls (a frozen
    host, a starved machine) for longer than the takeover time is presumed gone and its claims
    go to others (release_claims_of_dead_workers), as do claims that outlive CLAIM_SECONDS
    behind a slow relay. Without this check it would wake and send the rest of its batch
    again; with it, at most the one mail in flight when it stalled can go out twice, the limit
    of at-least-once delivery over SMTP."""
    with session_scope(engine) as session:
        renewed = session.execute(
            update(OutboxMail)
            .where(OutboxMail.id == mail_id, OutboxMail.claimed_by == worker,
                   OutboxMail.status == "queued")
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False))
        return (renewed.rowcount or 0) == 1  # type: ignore[attr-defined]


def suppress(session: Session, address: str, reason: str, now: datetime, days: int) -> None:
    """No automatic mail to `address` for `days` (a permanent bounce)."""
    row = session.get(Suppression, address.lower())
    until = now + timedelta(days=days)
    if row is None:
        session.add(Suppression(address=address.lower(), reason=reason, since=now, until=until))
    else:
        row.reason, row.since, row.until = reason, now, until


def bring_forward(engine: Engine, now: datetime) -> int:
    """Make every queued mail due now, also the ones waiting for a retry: an operator's flush
    once the relay or the settings are mended (as Postfix's `postqueue -f`). A mail that fails
    again is scheduled again as usual, so a drain after this still tries each mail once."""
    with session_scope(engine) as session:
        session.execute(update(Counter).where(Counter.name == LOGIN_HOLD_UNTIL).values(value=0))
        result = session.execute(
            update(OutboxMail)
            .where(OutboxMail.status == "queued", OutboxMail.next_attempt_at > now)
            .values(next_attempt_at=now))
        return result.rowcount or 0  # type: ignore[attr-defined]


def drain_once(engine: Engine, settings: Settings) -> DrainStats:
    return asyncio.run(drain_outbox(engine, settings))
