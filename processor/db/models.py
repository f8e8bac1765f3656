"""SQLAlchemy 2.0 models: the case store. Migrations in processor/db/migrations are the schema."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    inspect,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, WriteOnlyMapped, mapped_column, relationship
from sqlalchemy.types import JSON, TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        # Used where the value is written into SQL text (literal binds); bind_processor below
        # is what statements use.
        if value is None:
            return None
        _refuse_naive(value)
        return value.astimezone(UTC).replace(tzinfo=None) if _is_sqlite(dialect) else value

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], object] | None:
        """On SQLite, the UTC conversion and SQLite's text form in one step, in the form
        SQLAlchemy's own DATETIME writes ("YYYY-MM-DD HH:MM:SS.ffffff", compared as text):
        a batch binds about ten datetimes per mail, and the two steps took 3% of a poll."""
        if not _is_sqlite(dialect):
            return super().bind_processor(dialect)

        # Most datetimes of a batch are the same object (its `now`): the last one's text is
        # kept, as one tuple, so that threads sharing this processor never mix two values.
        last: tuple[datetime | None, str | None] = (None, None)

        def to_text(value: datetime | None) -> str | None:
            nonlocal last
            if value is None:
                return None
            seen = last
            if seen[0] is value:
                return seen[1]
            _refuse_naive(value)
            utc = value.astimezone(UTC) if value.utcoffset() else value
            text = (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d} {utc.hour:02d}:"
                    f"{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}")
            last = (value, text)
            return text

        return to_text

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _refuse_naive(value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")


def _is_sqlite(dialect: object) -> bool:
    return getattr(dialect, "name", "") == "sqlite"


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime()}


@event.listens_for(Base, "init", propagate=True)
def _server_defaults_known(target: Base, _args: Any, values: dict[str, Any]) -> None:
    """A new row takes the Python default of each column that has a server default too.
    A value the ORM does not know after an INSERT it reads back with RETURNING, which on
    SQLite means one INSERT statement per row (processor.db.keys)."""
    for key, value in _server_defaulted(type(target)):
        values.setdefault(key, value)


@functools.cache
def _server_defaulted(cls: type[Base]) -> tuple[tuple[str, Any], ...]:
    return tuple((attribute.key, column.default.arg)
                 for attribute in inspect(cls).column_attrs
                 for column in attribute.columns[:1]
                 if column.server_default is not None and column.default is not None
                 and column.default.is_scalar)


class Counter(Base):
    """Named counters; case references come from here so they stay unique across writers."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class MailboxState(Base):
    """The cursor of one monitored folder: what has been committed locally."""

    __tablename__ = "mailbox_states"
    __table_args__ = (UniqueConstraint("mailbox", "folder", name="uq_mailbox_states_folder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]


class PollRun(Base):
    """What one poll of one mailbox did; `complaints status` reads the latest."""

    __tablename__ = "poll_runs"
    __table_args__ = (Index("ix_poll_runs_mailbox_started", "mailbox", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    stored: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(200))  # who polled (several may run)


class Worker(Base):
    """One running `complaints run` or `poll --once` process, with its last heartbeat.

    A worker whose heartbeat is older than the takeover time is taken for dead: its folder
    leases may be taken over and its outbox claims are released."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]


class FolderLease(Base):
    """Which worker polls a monitored folder, until when.

    `epoch` grows on every change of holder: a batch commits only while its worker still holds
    the epoch it started with (see processor.db.leases.fence), so a worker that lost its lease
    mid-batch cannot commit over its successor."""

    __tablename__ = "folder_leases"

    mailbox: Mapped[str] = mapped_column(String(100), primary_key=True)
    folder: Mapped[str] = mapped_column(String(500), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    acquired_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class ThreadClaim(Base):
    """A Message-ID belongs to one case: the mail itself, or a mail it replies to.

    Two workers filing mails of one thread at the same moment both try to claim the thread's
    Message-IDs; the primary key lets only one commit, and the other retries its batch and
    then finds the case (processor.casework)."""

    __tablename__ = "thread_claims"

    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    created_at: Mapped[datetime]

    case: Mapped[Case] = relationship()


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_updated", "status", "updated_at"),
        Index("ix_cases_opened_at", "opened_at"),
        Index("ix_cases_complainant", "complainant_address"),
        Index("ix_cases_due", "status", "first_response_due_at"),
        Index("ix_cases_resolved_at", "resolved_at"),
        Index("ix_cases_parent", "parent_case_id"),
        # The daily digest (processor/db/digest_queries.py):
        # (time, opened_at): "open at the end of a past period" reads only the index.
        Index("ix_cases_resolved_opened", "resolved_at", "opened_at"),
        Index("ix_cases_closed_opened", "closed_at", "opened_at"),
        Index("ix_cases_first_response", "first_response_at", "first_response_due_at"),
        Index("ix_cases_appeal_opened", "is_appeal", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    mailbox: Mapped[str] = mapped_column(String(100))
    complainant_address: Mapped[str] = mapped_column(String(320))
    complainant_name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(8), default="en")
    category: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    sla_hours: Mapped[int | None] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    team: Mapped[str | None] = mapped_column(String(100))
    assignee: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Lifecycle times (issue: case history) and targets; all UTC.
    first_response_due_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    last_outbound_at: Mapped[datetime | None]
    reopened_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    is_appeal: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # An appeal or a follow-up case points at the case it continues.
    parent_case_id: Mapped[int | None] = mapped_column(
        ForeignKey("cases.id", name="fk_cases_parent_case_id"))
    link_kind: Mapped[str | None] = mapped_column(String(16))  # appeal, follow-up

    messages: WriteOnlyMapped[Message] = relationship(back_populates="case")
    events: WriteOnlyMapped[Event] = relationship(back_populates="case")


class Message(Base):
    """One mail on a case, incoming or outgoing; the raw bytes live in the blob store.

    `dedup_key` identifies the mail across folders, mailboxes and rescans (see
    processor/dedup.py); its unique index is what makes a retried ingest harmless.
    """

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_case", "case_id", "received_at"),
        Index("ix_messages_message_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(8))  # "in" or "out"
    author_role: Mapped[str] = mapped_column(String(16))  # complainant, staff, system, unknown
    message_id: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to_addresses: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    cc_addresses: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    received_by: Mapped[list[str]] = mapped_column(JSON, default=list)
    sent_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    language: Mapped[str] = mapped_column(String(8), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    new_text: Mapped[str] = mapped_column(Text, default="")
    auto_submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw_sha256: Mapped[str] = mapped_column(String(64))

    case: Mapped[Case | None] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", cascade="all, delete-orphan", order_by="Attachment.id"
    )


class MessageCopy(Base):
    """Each server copy of a stored mail: which mailbox, folder and UID it was fetched from."""

    __tablename__ = "message_copies"
    __table_args__ = (
        UniqueConstraint("mailbox", "folder", "uidvalidity", "uid", name="uq_message_copies_uid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    quarantine_id: Mapped[int | None] = mapped_column(ForeignKey("quarantine.id"))
    mailbox: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))  # stored, duplicate, quarantined, ignored
    fetched_at: Mapped[datetime]

    message: Mapped[Message | None] = relationship()
    quarantine: Mapped[Quarantine | None] = relationship()


class Attachment(Base):
    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_sha256", "sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    filename: Mapped[str] = mapped_column(Text)
    stored_name: Mapped[str] = mapped_column(String(80))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    inline: Mapped[bool] = mapped_column(Boolean, default=False)
    content_id: Mapped[str | None] = mapped_column(String(998))

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """The case history: every change, with time and actor."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_case_at", "case_id", "at"),
        Index("ix_events_kind_at", "kind", "at"),  # the daily digest: reopened in a period
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)

    case: Mapped[Case] = relationship(back_populates="events")
    message: Mapped[Message | None] = relationship()


class Quarantine(Base):
    """A mail that could not be processed: raw bytes kept in the blob store, with the reason."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    raw_sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    stage: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="held")  # held, released
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))


class OutboxMail(Base):
    """A mail to send, written in the same transaction as the case change that caused it.

    The Message-ID is fixed when the mail is queued, so a duplicate delivery after a crash in
    the window between the server's 250 and our commit is recognisable by the receiver.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_recipient_kind", "recipient", "kind", "created_at"),
        Index("ix_outbox_case", "case_id"),
        # The per-minute ceiling counts automatic mail by creation time, and rows are kept.
        Index("ix_outbox_created_automatic", "created_at", "automatic"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(32))  # ack, staff-notify, relay, digest, ...
    automatic: Mapped[bool] = mapped_column(Boolean, default=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    recipient: Mapped[str] = mapped_column(String(320))  # first recipient, lower-cased
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, sent, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None]

    # Set through the relationship, so a case opened in the same unit of work gets its id
    # when the batch is flushed (case_id read off an unflushed case would be None).
    case: Mapped[Case | None] = relationship()


class Suppression(Base):
    """An address that gets no automatic mail until `until` (it bounced permanently)."""

    __tablename__ = "suppressions"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime]
    until: Mapped[datetime]


class DigestRun(Base):
    """One digest per period end: `--send` twice for the same date sends once."""

    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("period_end", name="uq_digest_runs_period_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    period_end: Mapped[datetime]
    sent_at: Mapped[datetime]
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
