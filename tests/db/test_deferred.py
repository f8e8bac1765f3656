"""Rows deferred to the end of a fast batch land as the ORM would have written them, in order,
and a query within the batch that needs them sees them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from processor.casework import _participants
from processor.db import session_scope
from processor.db.deferred import deferred_rows, deferring, write_deferred
from processor.db.models import Attachment, Case, Event, Message, MessageCopy, ThreadClaim
from processor.db.store import (
    ATTACHMENTS,
    NewMessage,
    add_copy,
    add_event,
    add_thread_claim,
    change_message,
    new_message,
    pending_messages,
)
from processor.progress import case_progress_facts

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _case(reference: str) -> Case:
    return Case(reference=reference, mailbox="desk", complainant_address="a@customer.example",
                subject="s", opened_at=T0, updated_at=T0)


def _message(case: Case, key: str) -> Message:
    return Message(case=case, dedup_key=key, direction="in", author_role="complainant",
                   message_id=f"<{key}@customer.example>", received_at=T0, size=1,
                   raw_sha256="0" * 64)


def test_deferred_rows_are_written_at_the_end_linked_and_in_order(engine: Engine) -> None:
    with session_scope(engine) as session, deferred_rows(session):
        assert deferring(session) is not None
        first, second = _case("C-000001"), _case("C-000002")
        m1, m2 = _message(first, "k1"), _message(second, "k2")
        session.add_all([first, second, m1, m2])
        for kind in ("case-opened", "classified", "ack-queued"):
            add_event(session, first, kind, at=T0, message=m1, note=kind)
            add_event(session, second, kind, at=T0, message=m2)
        add_thread_claim(session, m1.message_id, first, T0)
        add_copy(session, mailbox="desk", folder="INBOX", uidvalidity=7, uid=1,
                 outcome="stored", at=T0, message=m1)
        assert not session.scalars(select(Event)).all()  # nothing written yet
    assert deferring(session) is None
    with session_scope(engine) as session:
        events = session.scalars(select(Event).order_by(Event.id)).all()
        assert [(e.case.reference, e.kind, e.message.dedup_key) for e in events] == [
            ("C-000001", "case-opened", "k1"), ("C-000002", "case-opened", "k2"),
            ("C-000001", "classified", "k1"), ("C-000002", "classified", "k2"),
            ("C-000001", "ack-queued", "k1"), ("C-000002", "ack-queued", "k2")]
        assert events[0].data == {"note": "case-opened"} and events[0].actor == "system"
        claim = session.get(ThreadClaim, "<k1@customer.example>")
        assert claim is not None and claim.case.reference == "C-000001"
        copy = session.scalars(select(MessageCopy)).one()
        assert (copy.uid, copy.outcome, copy.message.dedup_key) == (1, "stored", "k1")


def test_an_error_writes_none_of_them(engine: Engine) -> None:
    with pytest.raises(RuntimeError), session_scope(engine) as session, deferred_rows(session):
        case = _case("C-000001")
        session.add(case)
        add_event(session, case, "case-opened", at=T0)
        raise RuntimeError("the batch failed")
    with session_scope(engine) as session:
        assert not session.scalars(select(Event)).all()
        assert not session.scalars(select(Case)).all()


def test_a_query_within_the_batch_sees_the_batchs_staff_events(engine: Engine) -> None:
    with session_scope(engine) as session, deferred_rows(session):
        case = _case("C-000001")
        session.add(case)
        add_event(session, case, "staff-reply", at=T0 + timedelta(hours=3),
                  actor="agent@desk.example.com")
        facts = case_progress_facts(session, case)
        assert facts.last_worked_at is not None
        assert facts.last_worked_at.replace(tzinfo=UTC) == T0 + timedelta(hours=3)


def test_work_waiting_for_the_batch_starts_once_in_its_last_write_after_what_was_unfinished(
        engine: Engine) -> None:
    happened: list[str] = []

    class Composing:
        def finish(self, session: object) -> None:
            happened.append("finished")

        def cancel(self) -> None:
            happened.append("cancelled")

    with session_scope(engine) as session, deferred_rows(session) as rows:
        rows.unfinished.append(Composing())
        rows.when_finished.append(lambda: happened.append("started"))
        session.add(_case("C-000001"))
        write_deferred(session)  # a query within the batch: not its last write
        assert happened == ["finished"]
    assert happened == ["finished", "finished", "started", "cancelled"]

    happened.clear()
    with pytest.raises(RuntimeError), session_scope(engine) as session, \
            deferred_rows(session) as rows:
        rows.when_finished.append(lambda: happened.append("started"))
        raise RuntimeError("the batch failed")
    assert happened == []  # a batch that fails never starts it


def _values(key: str, sender: str = "a@customer.example") -> dict[str, object]:
    return dict(dedup_key=key, direction="in", author_role="complainant",
                message_id=f"<{key}@customer.example>", in_reply_to=None, references=[],
                subject="s", from_address=sender, from_name="", to_addresses=[],
                cc_addresses=[], received_by=["desk@example.com"], sent_at=None,
                received_at=T0, language="en", text="t", new_text="t", auto_submitted=False,
                defects=[], size=1, raw_sha256="0" * 64)


def test_a_stored_mails_row_is_written_before_the_rows_pointing_at_it_and_given_its_key(
        engine: Engine) -> None:
    with session_scope(engine) as session:  # a mail stored before: the keys go on from it
        session.add(_message(_case("C-000001"), "k0"))
    with session_scope(engine) as session, deferred_rows(session):
        case = _case("C-000002")
        session.add(case)
        rows = [new_message(session, _values(key)) for key in ("k1", "k2")]
        assert all(isinstance(row, NewMessage) and row.id is None for row in rows)
        rows[1].case = case
        rows[1].author_role = "participant"
        add_event(session, case, "mail-filed", at=T0, message=rows[1])
        add_copy(session, mailbox="desk", folder="INBOX", uidvalidity=7, uid=2,
                 outcome="stored", at=T0, message=rows[1])
        deferring(session).add(ATTACHMENTS, {  # type: ignore[union-attr]
            "filename": "a.png", "stored_name": "x", "content_type": "image/png", "size": 1,
            "sha256": "1" * 64, "inline": False, "content_id": None}, message_pk=rows[1])
        assert pending_messages(session) == rows
        assert not session.scalars(select(Message).where(Message.dedup_key != "k0")).all()
    assert pending_messages(session) == []
    with session_scope(engine) as session:
        stored = {m.dedup_key: m for m in session.scalars(select(Message))}
        assert stored["k0"].id < rows[0].id < rows[1].id  # in the order they were made
        assert [stored["k1"].id, stored["k2"].id] == [rows[0].id, rows[1].id]
        assert stored["k1"].case is None and stored["k2"].case.reference == "C-000002"
        assert stored["k2"].author_role == "participant"
        assert stored["k2"].received_by == ["desk@example.com"]
        event = session.scalars(select(Event)).one()
        assert event.message_pk == rows[1].id and event.case_id == stored["k2"].case_id
        assert session.scalars(select(MessageCopy)).one().message_pk == rows[1].id
        assert session.scalars(select(Attachment)).one().message_pk == rows[1].id


def test_a_row_written_within_the_batch_is_changed_in_the_database_never_silently(
        engine: Engine) -> None:
    with session_scope(engine) as session, deferred_rows(session):
        row = new_message(session, _values("k1"))
        change_message(session, row, received_by=["a@example.com"])  # not written yet
        write_deferred(session)  # a query within the batch needed the rows
        assert row.id is not None
        with pytest.raises(RuntimeError, match="already written"):
            row.author_role = "staff"
        change_message(session, row, received_by=["a@example.com", "b@example.com"])
        assert row.received_by == ["a@example.com", "b@example.com"]
    with session_scope(engine) as session:
        stored = session.scalars(select(Message)).one()
        assert stored.received_by == ["a@example.com", "b@example.com"]
        assert stored.author_role == "complainant"


def test_who_took_part_counts_the_batchs_mails_not_yet_written(engine: Engine) -> None:
    with session_scope(engine) as session, deferred_rows(session):
        case = _case("C-000001")
        session.add(case)
        session.flush()
        for key, sender, role in (("k1", "a@customer.example", "complainant"),
                                  ("k2", "b@customer.example", "participant"),
                                  ("k3", "c@customer.example", "unknown")):
            row = new_message(session, _values(key, sender))
            row.case, row.author_role = case, role
        assert _participants(session, case) == {"a@customer.example", "b@customer.example"}
