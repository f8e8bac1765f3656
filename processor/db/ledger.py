"""How much automatic mail went where recently: loaded once per batch, counted in memory after.

The per-sender and global limits on automatic answers are measured on our own clock from the
outbox (never from the mail's Date). One query per batch, not per mail.

Several workers on PostgreSQL: the batch first takes a transaction-scoped advisory lock per
sender (in one statement, in address order), so two workers answering the same sender at the
same moment count each other's answers: the second waits for the first to commit, then reads.
The global per-minute cap is a brake against floods, counted without a lock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from processor.ack import AckCounts
from processor.db.models import OutboxMail, Suppression


def automatic_mail_last_minute(session: Session, now: datetime) -> int:
    """Automatic mail queued in the minute before `now`: the global brake against floods.

    Read from `ix_outbox_created_automatic` alone; outbox rows are kept, so without it the
    count would read every mail the desk ever sent."""
    return session.scalar(
        select(func.count()).select_from(OutboxMail)
        .where(OutboxMail.created_at >= now - timedelta(minutes=1),
               OutboxMail.automatic.is_(True))) or 0


class AutoReplyLedger:
    def __init__(self, session: Session, senders: Iterable[str], now: datetime,
                 period_hours: int) -> None:
        addresses = sorted({s.lower() for s in senders if s})
        if addresses and session.get_bind().dialect.name == "postgresql":
            session.execute(text(
                "SELECT pg_advisory_xact_lock(hashtextextended('ack:' || a, 0)) "
                "FROM unnest(CAST(:addresses AS text[])) WITH ORDINALITY AS t(a, n) ORDER BY n"),
                {"addresses": addresses})
        since = now - timedelta(hours=period_hours)
        self._sender_counts: Counter[str] = Counter()
        self._bounced: dict[str, datetime] = {}
        for start in range(0, len(addresses), 500):
            chunk = addresses[start:start + 500]
            self._sender_counts.update(dict(session.execute(
                select(OutboxMail.recipient, func.count())
                .where(OutboxMail.recipient.in_(chunk), OutboxMail.automatic.is_(True),
                       OutboxMail.kind == "ack", OutboxMail.created_at >= since)
                .group_by(OutboxMail.recipient)).all()))
            self._bounced.update({row.address: row.since for row in session.scalars(
                select(Suppression).where(Suppression.address.in_(chunk),
                                          Suppression.until > now))})
        self._global = automatic_mail_last_minute(session, now)

    def counts(self, sender: str) -> AckCounts:
        key = sender.lower()
        return AckCounts(self._sender_counts[key], self._global, self._bounced.get(key))

    def record(self, recipient: str) -> None:
        self._sender_counts[recipient.lower()] += 1
        self._global += 1
