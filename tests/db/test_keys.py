"""New cases and messages of a flush get their keys before it on SQLite, so the ORM writes
them with one statement per table instead of one per row; the keys are the ones SQLite would
have given."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, event, select

from processor.db import session_scope
from processor.db.engine import open_database
from processor.db.models import Case, Message
from tests.deployment import migrate

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _case(number: int) -> Case:
    return Case(reference=f"C-{number:06d}", mailbox="desk",
                complainant_address="a@customer.example", subject="s", opened_at=T0,
                updated_at=T0)


def _message(case: Case, key: str) -> Message:
    return Message(case=case, dedup_key=key, direction="in", author_role="complainant",
                   message_id=f"<{key}@customer.example>", received_at=T0, size=1,
                   raw_sha256="0" * 64)


def _inserts(engine: Engine) -> list[tuple[str, bool]]:
    """(table, executemany) of every INSERT statement the engine runs from now on (a row
    inserted alone counts as one, batched or not)."""
    seen: list[tuple[str, bool]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any,
              executemany: bool) -> None:
        if statement.startswith("INSERT INTO"):
            seen.append((statement.split()[2], executemany))

    return seen


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A SQLite database opened as the desk opens it (its transactions BEGIN IMMEDIATE)."""
    migrate(sqlite_url)
    engine = open_database(sqlite_url)
    yield engine
    engine.dispose()


def test_a_flush_writes_each_tables_new_rows_in_one_statement(engine: Engine) -> None:
    with session_scope(engine) as session:  # rows already there: the new keys go above them
        old = _case(2)
        session.add_all([_case(1), old, _message(old, "old")])
    inserts = _inserts(engine)
    with session_scope(engine) as session:
        cases = [_case(number) for number in (3, 4, 5)]
        session.add_all([*cases, *(_message(case, f"k{i}") for i, case in enumerate(cases))])
    # Before, on SQLite: one INSERT per case and per message (SQLite's RETURNING cannot say
    # which key went to which row, so the ORM did not batch them).
    assert [table for table, _ in inserts] == ["cases", "messages"]
    with session_scope(engine) as session:
        rows = session.execute(select(Case.reference, Case.id).order_by(Case.id)).all()
        assert [reference for reference, _ in rows] == [f"C-{n:06d}" for n in range(1, 6)]
        ids = [key for _, key in rows]
        assert ids == sorted(ids) and len(set(ids)) == 5
        messages = session.scalars(select(Message).order_by(Message.id)).all()
        assert [(m.dedup_key, m.case.reference) for m in messages] == [
            ("old", "C-000002"), ("k0", "C-000003"), ("k1", "C-000004"), ("k2", "C-000005")]


def test_the_keys_are_the_ones_sqlite_would_give_after_a_savepoint_rolled_back(
        sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        session.add_all([_case(1), _case(2)])
        session.flush()
        savepoint = session.begin_nested()
        session.add_all([_case(3), _case(4)])
        session.flush()
        assert [c.id for c in session.scalars(select(Case).order_by(Case.id))] == [1, 2, 3, 4]
        savepoint.rollback()
        session.add_all([_case(5), _case(6)])
    assert _references_by_key(sqlite_engine) == [
        ("C-000001", 1), ("C-000002", 2), ("C-000005", 3), ("C-000006", 4)]


def test_an_engine_not_opened_by_the_desk_is_left_to_sqlite(tmp_path: Path) -> None:
    """Only engines whose transactions hold the write lock from their start may read the
    largest key and insert above it (processor.db.keys)."""
    url = f"sqlite:///{tmp_path / 'plain.sqlite3'}"
    migrate(url)
    engine = sa.create_engine(url)
    try:
        inserts = _inserts(engine)
        with session_scope(engine) as session:
            session.add_all([_case(1), _case(2)])
        assert [table for table, _ in inserts] == ["cases", "cases"]
    finally:
        engine.dispose()


def test_a_single_new_row_is_numbered_by_sqlite(sqlite_engine: Engine) -> None:
    """One INSERT either way, so the key is left to SQLite: the statement does not give it."""
    statements: list[str] = []

    @event.listens_for(sqlite_engine, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO"):
            statements.append(statement)

    with session_scope(sqlite_engine) as session:
        case = _case(1)
        session.add(case)
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO cases (reference,")
    assert case.id == 1


def test_rows_whose_savepoint_rolled_back_get_new_keys_when_added_again(
        sqlite_engine: Engine) -> None:
    """The keys given to rows of a rolled-back SAVEPOINT stay on the objects; added again
    after other new rows took those keys, they must not be inserted under them."""
    with session_scope(sqlite_engine) as session:
        session.add_all([_case(1), _case(2)])
        session.flush()
        savepoint = session.begin_nested()
        again = [_case(3), _case(4)]
        session.add_all(again)
        session.flush()
        assert [case.id for case in again] == [3, 4]
        savepoint.rollback()
        session.add_all([_case(5), _case(6), *again])  # 5 and 6 take keys 3 and 4
    assert _references_by_key(sqlite_engine) == [
        ("C-000001", 1), ("C-000002", 2), ("C-000005", 3), ("C-000006", 4),
        ("C-000003", 5), ("C-000004", 6)]


def _references_by_key(engine: Engine) -> list[tuple[str, int]]:
    with session_scope(engine) as session:
        return [(reference, key) for reference, key in
                session.execute(select(Case.reference, Case.id).order_by(Case.id))]
