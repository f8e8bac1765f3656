"""Is the desk working? What `complaints status --check` answers for a monitoring system.

A service that cannot reach its mailbox keeps retrying quietly, and one whose server refuses
to move filed mail keeps filing: both right for the mail, and both invisible unless someone
looks. This reads what the pollers and the sender recorded and names what needs a person,
with the severity a monitoring system (Nagios, Icinga, a systemd timer that mails) acts on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from processor.db.models import Counter, OutboxMail, PollRun, Quarantine, Suppression
from processor.outbox import LOGIN_REFUSALS

Level = Literal["warning", "critical"]

# Outgoing mail still queued this long after it was written has met a server that refuses
# or is away (the sender retries with backoff meanwhile).
OUTBOX_STUCK = timedelta(hours=1)
# Outgoing mail that failed for good within this period is reported.
RECENT_FAILURES = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    subject: str  # a mailbox's name, "outbox" or "quarantine"
    text: str


def check(session: Session, mailboxes: Sequence[str], now: datetime,
          max_poll_age: timedelta) -> list[Finding]:
    """What needs attention, critical first: a mailbox whose last poll failed or that has not
    been polled within `max_poll_age` (critical); outgoing mail stuck or failed for good
    (but automatic mail to an address that does not exist), and mail held in the quarantine
    (warning); an SMTP server that refuses the desk's login (critical)."""
    findings = [finding for name in mailboxes
                if (finding := _mailbox(session, name, now, max_poll_age)) is not None]
    findings += _outbox(session, now)
    held = session.scalar(select(func.count()).select_from(Quarantine)
                          .where(Quarantine.status == "held")) or 0
    if held:
        findings.append(Finding("warning", "quarantine",
                                f"{held} mails held (complaints quarantine list)"))
    return sorted(findings, key=lambda f: f.level != "critical")


def _mailbox(session: Session, name: str, now: datetime,
             max_poll_age: timedelta) -> Finding | None:
    last = session.scalars(select(PollRun).where(PollRun.mailbox == name)
                           .order_by(PollRun.id.desc()).limit(1)).first()
    if last is None:
        return Finding("critical", name, "never polled")
    if last.errors or last.last_error:
        return Finding("critical", name, f"the last poll ({_when(last.started_at)}) failed: "
                                         f"{last.last_error or 'see the log'}")
    if now - last.started_at > max_poll_age:
        return Finding("critical", name, f"not polled since {_when(last.started_at)}")
    return None


def _outbox(session: Session, now: datetime) -> list[Finding]:
    findings = []
    # A refused login holds every outgoing mail back at once, acknowledgements included: no
    # hour to wait before saying so (processor.outbox keeps the count).
    refused = session.scalar(select(Counter.value).where(Counter.name == LOGIN_REFUSALS)) or 0
    if refused:
        findings.append(Finding(
            "critical", "outbox", f"the SMTP server refused the desk's login {refused} times "
            "since it last accepted a mail; outgoing mail waits, none failed (mend [smtp], "
            "then complaints outbox send)"))
    stuck = session.execute(
        select(func.count(), func.min(OutboxMail.created_at))
        .where(OutboxMail.status == "queued", OutboxMail.created_at < now - OUTBOX_STUCK)).one()
    if stuck[0]:
        error = session.scalar(
            select(OutboxMail.last_error).where(OutboxMail.status == "queued",
                                                OutboxMail.last_error.is_not(None))
            .order_by(OutboxMail.id.desc()).limit(1))
        findings.append(Finding(
            "warning", "outbox", f"{stuck[0]} mails queued since {_when(stuck[1])} or earlier"
            + (f" (last error: {error})" if error else "") + " (complaints outbox list)"))
    # An acknowledgement to an address that does not exist is a complainant's typo, not the
    # desk's trouble: the sender already suppressed the address (processor.outbox).
    failed = session.scalar(
        select(func.count()).where(
            OutboxMail.status == "failed", OutboxMail.created_at >= now - RECENT_FAILURES,
            ~(OutboxMail.automatic & OutboxMail.recipient.in_(select(Suppression.address))))
    ) or 0
    if failed:
        findings.append(Finding("warning", "outbox",
                                f"{failed} mails failed for good in the last day "
                                "(complaints outbox list)"))
    return findings


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else "-"
