"""Primary keys of new rows given by the desk before a flush, on SQLite.

To learn the key SQLite gives each new row, the ORM inserts the rows of a flush one statement
at a time: SQLite's RETURNING does not say which returned key belongs to which row of a
multi-row INSERT, so SQLAlchemy does not batch them. A batch of 10,000 mails made 19,000
INSERT statements for its cases and messages alone. With the keys given beforehand, the ORM
writes each table's new rows with one `executemany`.

This is safe because every SQLite transaction of the desk begins with BEGIN IMMEDIATE
(processor.db.engine): it holds the database's write lock from its first statement, so no
other writer can insert between reading the largest key and inserting above it. The keys are
the ones SQLite would have chosen (the largest plus one, in the order the objects were added),
and a SAVEPOINT rolled back takes its rows with it, so the next flush reads the largest key
again. PostgreSQL batches such inserts by itself (its sequences hand out keys in the order of
the rows), and is left alone.
"""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Column, Connection, Engine, Integer, Table, event, func, inspect, select
from sqlalchemy.orm import Session

# Engines whose transactions begin with BEGIN IMMEDIATE (registered by open_database).
_WRITE_LOCKED: weakref.WeakSet[Engine] = weakref.WeakSet()
# Fewer new rows of a class than this are left to SQLite: one INSERT each either way.
MIN_ROWS = 2


def keys_given_here(engine: Engine) -> None:
    """Give new rows their keys before each flush of a session bound to `engine`."""
    _WRITE_LOCKED.add(engine)


@event.listens_for(Session, "before_flush")
def _give_keys(session: Session, _flush_context: Any, _instances: Any) -> None:
    bind = session.get_bind()
    if getattr(bind, "engine", bind) not in _WRITE_LOCKED:
        return
    waiting: dict[type, list[Any]] = {}
    for obj in session.new:
        # A key given here to a row that is still new was never written (its flush failed,
        # or its SAVEPOINT was rolled back): it may be taken by now, so it is given again.
        if _integer_key(type(obj)) and (obj.id is None or inspect(obj).info.get(_GIVEN)):
            waiting.setdefault(type(obj), []).append(obj)
    for cls, objects in waiting.items():
        if len(objects) < MIN_ROWS:
            for obj in objects:  # left to SQLite
                if inspect(obj).info.pop(_GIVEN, False):
                    obj.id = None
            continue
        key_column: Column[Any] = inspect(cls).primary_key[0]
        # session.connection(), not session.execute: that would flush again.
        top = _largest_key(session.connection(), key_column)
        objects.sort(key=lambda obj: inspect(obj).insert_order)
        for key, obj in enumerate(objects, start=top + 1):
            obj.id = key
            inspect(obj).info[_GIVEN] = True


def _largest_key(connection: Connection, key_column: Column[Any]) -> int:
    """The largest key in the table so far (0 when empty); under BEGIN IMMEDIATE no other
    writer can add one before this transaction's rows take the next ones."""
    return connection.execute(select(func.max(key_column))).scalar() or 0


_GIVEN = "complaints.key_given"  # in an object's InstanceState.info


_KEYED: dict[type, bool] = {}


def _integer_key(cls: type) -> bool:
    """A mapped class whose key is one integer column `id` the database would number."""
    known = _KEYED.get(cls)
    if known is None:
        key: tuple[Column[Any], ...] = inspect(cls).primary_key
        known = _KEYED[cls] = (len(key) == 1 and key[0].name == "id"
                               and isinstance(key[0].type, Integer)
                               and key[0].autoincrement in (True, "auto"))
    return known


def insert_returning_keys(connection: Connection, table: Table,
                          rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows` (all with the same columns) into `table`, whose key is an integer `id`,
    with one executemany; returns their keys in the order of `rows`. On SQLite the keys are
    given here, as for the ORM's rows above; elsewhere the database gives them and returns
    them in the rows' order."""
    if not rows:
        return []
    key_column = table.c.id
    if connection.engine in _WRITE_LOCKED:
        top = _largest_key(connection, key_column)
        keys = list(range(top + 1, top + 1 + len(rows)))
        connection.execute(table.insert(), [{**row, "id": key}
                                            for row, key in zip(rows, keys, strict=True)])
        return keys
    return list(connection.execute(
        table.insert().returning(key_column, sort_by_parameter_order=True), rows).scalars())
