"""Writes and lookups on the case store, batched so that no query runs per mail in a loop."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, text
from sqlalchemy.orm import Session

from processor.db.deferred import deferring
from processor.db.models import (
    Attachment,
    Case,
    Event,
    MailboxState,
    Message,
    MessageCopy,
    OutboxMail,
    Quarantine,
    ThreadClaim,
)


def format_reference(number: int, prefix: str, width: int) -> str:
    return f"{prefix}{number:0{width}d}"


class CaseNumbers:
    """Case numbers for one batch of mail, without a statement per case.

    SQLite: the batch reserves as many numbers as it could need in one update of the counter
    (taking the write lock, which the batch's transaction keeps to its end, so no other writer
    can take numbers in between) and `finish` gives back the ones it did not use, so the
    numbers stay gapless. A mail rolled back alone (its SAVEPOINT) gives its number back with
    `rewind`. Call `reserve` outside any SAVEPOINT: a reservation rolled back with one would
    hand out numbers the counter no longer holds.

    PostgreSQL: one `nextval` of the `case_numbers` sequence per case, which locks nothing, so
    workers opening cases at the same moment never wait on each other (or on a stalled
    worker's transaction); a batch rolled back leaves a gap in the numbers, as in other
    trackers.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._sequence = session.get_bind().dialect.name == "postgresql"
        self._next = self._end = 0  # numbers in [_next, _end) are reserved and unused

    def reserve(self, count: int) -> None:
        if self._sequence or count <= self._end - self._next:
            return
        self.finish()
        top = self._session.connection().execute(
            text("UPDATE counters SET value = value + :count WHERE name = 'case' "
                 "RETURNING value"), {"count": count}).scalar_one()
        self._next, self._end = top - count + 1, top + 1

    def take(self) -> int:
        if self._sequence:
            return int(self._session.connection().execute(
                text("SELECT nextval('case_numbers')")).scalar_one())
        if self._next >= self._end:
            raise RuntimeError("case numbers taken beyond the batch's reservation")
        self._next += 1
        return self._next - 1

    def mark(self) -> int:
        return self._next

    def rewind(self, mark: int) -> None:
        """Give back the numbers taken since `mark` (their mail was rolled back)."""
        if not self._sequence and mark < self._next:
            self._next = mark

    def finish(self) -> None:
        """Give back what was reserved and not used."""
        unused = self._end - self._next
        if unused > 0:
            self._session.connection().execute(
                text("UPDATE counters SET value = value - :unused WHERE name = 'case'"),
                {"unused": unused})
        self._next = self._end = 0


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
              message: StoredMessage | None = None, **data: object) -> None:
    deferred = deferring(session)
    if deferred is not None:
        deferred.add(EVENTS, {"at": at, "actor": actor, "kind": kind, "data": data},
                     case_id=case, message_pk=message)
    else:
        session.add(Event(case=case, message=message, at=at, actor=actor, kind=kind, data=data))


def add_event_to_complete(session: Session, case: Case, kind: str, *, at: datetime,
                          message: StoredMessage | None = None, **data: object) -> dict[str, Any]:
    """add_event while the batch's rows are deferred, returning the row's values: its kind and
    data may still change until they are written (processor.composing)."""
    deferred = deferring(session)
    if deferred is None:
        raise RuntimeError("an event to complete later needs the batch's rows deferred")
    return deferred.add(EVENTS, {"at": at, "actor": "system", "kind": kind, "data": data},
                        case_id=case, message_pk=message)


def add_thread_claim(session: Session, message_id: str, case: Case, at: datetime) -> None:
    deferred = deferring(session)
    if deferred is not None:
        deferred.add(THREAD_CLAIMS, {"message_id": message_id, "created_at": at}, case_id=case)
    else:
        session.add(ThreadClaim(message_id=message_id, case=case, created_at=at))


def add_copy(session: Session, *, mailbox: str, folder: str, uidvalidity: int, uid: int,
             outcome: str, at: datetime, message: StoredMessage | None = None,
             quarantine: Quarantine | None = None) -> None:
    """Where a mail was found on the server, and what became of it."""
    values = {"mailbox": mailbox, "folder": folder, "uidvalidity": uidvalidity, "uid": uid,
              "outcome": outcome, "fetched_at": at}
    deferred = deferring(session)
    if deferred is not None:
        deferred.add(MESSAGE_COPIES, values, message_pk=message, quarantine_id=quarantine)
    else:
        session.add(MessageCopy(**values, message=message, quarantine=quarantine))


EVENTS, THREAD_CLAIMS, MESSAGE_COPIES, MESSAGES, OUTBOX, ATTACHMENTS = (
    cast(Table, model.__table__) for model in (Event, ThreadClaim, MessageCopy, Message,
                                               OutboxMail, Attachment))


class NewMessage:
    """A mail's row in the messages table while a batch is filed fast (processor.db.deferred):
    read and changed like the ORM's Message (`stored.case = case`, `stored.author_role`), and
    written with the batch's deferred rows, before the rows that point at it, which is when it
    gets its key (`id`). A change after that would be lost, so it is refused."""

    __slots__ = ("values", "case", "id")
    _OWN = frozenset(__slots__)

    def __init__(self, values: dict[str, Any]) -> None:
        object.__setattr__(self, "values", values)  # column -> value, without id and case_id
        object.__setattr__(self, "case", None)
        object.__setattr__(self, "id", None)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if self.id is not None:
            raise RuntimeError(f"message row {self.id} already written; {name} not changed")
        if name in self._OWN:
            object.__setattr__(self, name, value)
        elif name in self.values:
            self.values[name] = value
        else:
            raise AttributeError(f"a message row has no column {name!r}")

    def row_values(self) -> dict[str, Any]:
        return {**self.values, "case_id": None if self.case is None else self.case.id}


# A stored incoming mail: its ORM object, or its row written with the batch (above).
StoredMessage = Message | NewMessage


def pending_messages(session: Session) -> list[NewMessage]:
    """The stored mails of this batch whose rows are not written yet."""
    deferred = deferring(session)
    return [] if deferred is None else cast(list[NewMessage], deferred.keyed.get(MESSAGES, []))


def change_message(session: Session, message: StoredMessage, **changes: Any) -> None:
    """Change columns of a stored mail's row: an ORM object, a row still deferred, or one
    written already (a query within the batch needed it)."""
    if isinstance(message, NewMessage) and message.id is not None:
        session.connection().execute(
            MESSAGES.update().where(MESSAGES.c.id == message.id).values(**changes))
        message.values.update(changes)
        return
    for name, value in changes.items():
        setattr(message, name, value)


def new_message(session: Session, values: dict[str, Any]) -> StoredMessage:
    """The row of a newly stored mail: deferred in a fast filing, else an ORM object added to
    the session."""
    deferred = deferring(session)
    if deferred is None:
        message = Message(**values)
        session.add(message)
        return message
    row = NewMessage(values)
    deferred.add_keyed(MESSAGES, row)
    return row


def case_by_reference(session: Session, reference: str) -> Case | None:
    return session.scalars(select(Case).where(Case.reference == reference)).one_or_none()


def held_quarantine(session: Session) -> list[Quarantine]:
    return list(session.scalars(
        select(Quarantine).where(Quarantine.status == "held").order_by(Quarantine.id)))
