"""Writes and lookups on the case store, batched so that no query runs per mail in a loop."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from processor.db.models import (
    Case,
    Counter,
    Event,
    MailboxState,
    Message,
    MessageCopy,
    Quarantine,
)


def format_reference(number: int, prefix: str, width: int) -> str:
    return f"{prefix}{number:0{width}d}"


def allocate_case_numbers(session: Session, count: int = 1) -> list[int]:
    """Reserve `count` case numbers, never handed out twice, in increasing order.

    SQLite (one writer): a counter row, so numbers have no gaps. PostgreSQL: a sequence, which
    locks nothing, so workers opening cases at the same moment never wait on each other (or on
    a stalled worker's transaction); a batch rolled back leaves a gap in the numbers, as in
    other trackers.
    """
    if session.get_bind().dialect.name == "postgresql":
        return list(session.scalars(
            text("SELECT nextval('case_numbers') FROM generate_series(1, :count)"),
            {"count": count}))
    new_value = session.execute(
        update(Counter).where(Counter.name == "case")
        .values(value=Counter.value + count).returning(Counter.value)
    ).scalar_one()
    return list(range(new_value - count + 1, new_value + 1))


def mailbox_state(session: Session, mailbox: str, folder: str, now: datetime) -> MailboxState:
    state = session.scalars(
        select(MailboxState).where(MailboxState.mailbox == mailbox, MailboxState.folder == folder)
    ).one_or_none()
    if state is None:
        state = MailboxState(mailbox=mailbox, folder=folder, uidvalidity=None, last_uid=0,
                             updated_at=now)
        session.add(state)
        session.flush()
    return state


def existing_messages(session: Session, keys: Iterable[str]) -> dict[str, Message]:
    key_list = list(set(keys))
    found: dict[str, Message] = {}
    for start in range(0, len(key_list), 500):
        chunk = key_list[start:start + 500]
        for message in session.scalars(select(Message).where(Message.dedup_key.in_(chunk))):
            found[message.dedup_key] = message
    return found


def copies_for_uids(session: Session, mailbox: str, folder: str, uidvalidity: int,
                    uids: Iterable[int]) -> dict[int, MessageCopy]:
    uid_list = list(uids)
    found: dict[int, MessageCopy] = {}
    for start in range(0, len(uid_list), 500):
        chunk = uid_list[start:start + 500]
        rows = session.scalars(select(MessageCopy).where(
            MessageCopy.mailbox == mailbox, MessageCopy.folder == folder,
            MessageCopy.uidvalidity == uidvalidity, MessageCopy.uid.in_(chunk)))
        found.update((row.uid, row) for row in rows)
    return found


def add_event(session: Session, case: Case, kind: str, *, at: datetime, actor: str = "system",
              message: Message | None = None, **data: object) -> Event:
    event = Event(case=case, message=message, at=at, actor=actor, kind=kind, data=data)
    session.add(event)
    return event


def case_by_reference(session: Session, reference: str) -> Case | None:
    return session.scalars(select(Case).where(Case.reference == reference)).one_or_none()


def held_quarantine(session: Session) -> list[Quarantine]:
    return list(session.scalars(
        select(Quarantine).where(Quarantine.status == "held").order_by(Quarantine.id)))
