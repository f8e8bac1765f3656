"""Folder leases and the worker registry, kept in the database every worker shares.

PostgreSQL is the coordinator, with nothing home-made on top: a lease is a row holding the
worker's name, an epoch and an expiry measured by the database's own clock (so hosts whose
clocks disagree still agree on who holds what). A worker renews its leases while it lives; when
it dies or loses the database, the expiry passes and another worker takes the row over with a
new epoch. Every batch re-checks and extends its lease in the batch's own transaction (`fence`),
so a worker that lost its lease mid-batch rolls back instead of committing over its successor.

SQLite has one worker only (see processor.coordination), but keeps the same rows, so
`complaints status` reads the same way on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from processor.db.engine import session_scope
from processor.db.models import FolderLease, OutboxMail, Worker
from processor.errors import LeaseLost

# Rows of workers that stopped (or died) longer ago than this are pruned at registration.
FORGET_WORKERS_AFTER = timedelta(days=7)
FORGET_STOPPED_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Lease:
    mailbox: str
    folder: str
    holder: str
    epoch: int


@dataclass(frozen=True, slots=True)
class LeaseView:
    """One row of `complaints status`: a folder, its holder and that worker's heartbeat."""

    mailbox: str
    folder: str
    holder: str | None
    acquired_at: datetime | None
    expires_at: datetime | None
    heartbeat_at: datetime | None
    expired: bool


def db_now(session: Session) -> datetime:
    """The coordinator's clock: PostgreSQL's (wall clock, not the transaction's start)."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(select(func.clock_timestamp()))
        assert value is not None
        return value.astimezone(UTC)
    return datetime.now(UTC)


# --- the worker registry ----------------------------------------------------------------------

def register_worker(engine: Engine, name: str, host: str, pid: int) -> None:
    with session_scope(engine) as session:
        now = db_now(session)
        # `poll --once` from cron registers a worker every few minutes: forget the stopped
        # ones after a day, and the silent (killed) ones after a week.
        session.execute(delete(Worker).where(or_(
            Worker.stopped_at < now - FORGET_STOPPED_AFTER,
            Worker.heartbeat_at < now - FORGET_WORKERS_AFTER)))
        row = session.get(Worker, name)
        if row is None:
            session.add(Worker(name=name, host=host, pid=pid, started_at=now, heartbeat_at=now))
        else:  # a pid reused on this host after an earlier run: a new life
            row.started_at, row.heartbeat_at, row.stopped_at = now, now, None


def beat(engine: Engine, name: str) -> None:
    with session_scope(engine) as session:
        session.execute(update(Worker).where(Worker.name == name)
                        .values(heartbeat_at=db_now(session), stopped_at=None))


def mark_stopped(engine: Engine, name: str) -> None:
    with session_scope(engine) as session:
        now = db_now(session)
        session.execute(update(Worker).where(Worker.name == name)
                        .values(heartbeat_at=now, stopped_at=now))


def release_claims_of_dead_workers(engine: Engine, takeover: timedelta) -> int:
    """Outbox mail claimed by a worker that has stopped beating goes back to the queue now,
    instead of waiting out its claim: on any host, since the registry knows them all."""
    with session_scope(engine) as session:
        now = db_now(session)
        dead = select(Worker.name).where(or_(Worker.stopped_at.is_not(None),
                                             Worker.heartbeat_at < now - takeover))
        result = session.execute(
            update(OutboxMail)
            .where(OutboxMail.status == "queued", OutboxMail.claimed_by.in_(dead))
            .values(claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False))
        return result.rowcount or 0  # type: ignore[attr-defined]


# --- folder leases ----------------------------------------------------------------------------

def try_acquire(engine: Engine, mailbox: str, folder: str, worker: str, ttl: timedelta, *,
                take_any: bool = False,
                is_dead: Callable[[str], bool] = lambda holder: False) -> Lease | None:
    """Take the folder's lease if it is free, expired or already ours; None if another
    worker holds it. `take_any`: this is the only worker there can be (SQLite), so a lease
    left by a killed predecessor is taken at once; `is_dead(holder)`: the caller can see
    that the holder's process is gone (see processor.coordination.gone_from_here)."""
    with session_scope(engine) as session:
        now = db_now(session)
        # SKIP LOCKED: a row locked right now belongs to a holder committing a batch: it lives.
        row = session.scalars(
            select(FolderLease).where(FolderLease.mailbox == mailbox,
                                      FolderLease.folder == folder)
            .with_for_update(skip_locked=True)).first()
        if row is None:
            try:
                with session.begin_nested():
                    session.add(FolderLease(mailbox=mailbox, folder=folder, holder=worker,
                                            epoch=1, acquired_at=now, expires_at=now + ttl))
            except IntegrityError:  # locked, or inserted by another worker this instant
                return None
            return Lease(mailbox, folder, worker, 1)
        if row.holder == worker and row.expires_at is not None and row.expires_at > now:
            row.expires_at = now + ttl
            return Lease(mailbox, folder, worker, row.epoch)
        if (row.holder is not None and row.expires_at is not None and row.expires_at > now
                and not take_any and not is_dead(row.holder)):
            return None
        row.holder, row.epoch = worker, row.epoch + 1
        row.acquired_at, row.expires_at = now, now + ttl
        return Lease(mailbox, folder, worker, row.epoch)


def _still_ours(lease: Lease):  # type: ignore[no-untyped-def]
    return (FolderLease.mailbox == lease.mailbox, FolderLease.folder == lease.folder,
            FolderLease.holder == lease.holder, FolderLease.epoch == lease.epoch)


def renew(engine: Engine, leases: Iterable[Lease], ttl: timedelta) -> list[Lease]:
    """Extend every lease still ours; returns those found lost (taken over, or released)."""
    lost = []
    with session_scope(engine) as session:
        now = db_now(session)
        for lease in leases:
            result = session.execute(update(FolderLease).where(*_still_ours(lease))
                                     .values(expires_at=now + ttl))
            if not result.rowcount:  # type: ignore[attr-defined]
                lost.append(lease)
    return lost


def fence(session: Session, lease: Lease, ttl: timedelta) -> None:
    """Inside a batch's transaction, just before its commit: still ours? then extend.

    The UPDATE row-locks the lease until the commit, so no other worker can take it over
    between this check and the commit."""
    now = db_now(session)
    result = session.execute(update(FolderLease).where(*_still_ours(lease))
                             .values(expires_at=now + ttl))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise LeaseLost(f"the lease on {lease.mailbox}/{lease.folder} (epoch {lease.epoch}) "
                        "was taken over; the batch is rolled back for the new holder")


def release(engine: Engine, lease: Lease) -> None:
    """Give the folder up at once (a clean stop), so another worker need not wait."""
    with session_scope(engine) as session:
        session.execute(update(FolderLease).where(*_still_ours(lease))
                        .values(holder=None, expires_at=db_now(session)))


def lease_views(session: Session) -> list[LeaseView]:
    now = db_now(session)
    rows = session.execute(
        select(FolderLease, Worker.heartbeat_at)
        .outerjoin(Worker, Worker.name == FolderLease.holder)
        .order_by(FolderLease.mailbox, FolderLease.folder)).all()
    return [LeaseView(lease.mailbox, lease.folder, lease.holder, lease.acquired_at,
                      lease.expires_at, heartbeat,
                      lease.holder is None or lease.expires_at is None
                      or lease.expires_at <= now)
            for lease, heartbeat in rows]


def workers(session: Session) -> list[Worker]:
    return list(session.scalars(select(Worker).order_by(Worker.started_at)))
