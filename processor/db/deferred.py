"""Rows nothing reads back while a batch is filed, written at its end with one executemany
per table instead of as an ORM object each.

History events, thread claims and the records of server copies are about six of the eleven
rows a new case adds. As ORM objects they cost the filing process about 1 ms per mail
(instrumented attributes, cascades, the unit of work); as plain rows, a few microseconds. A
row names the case or message it belongs to by the object, and the ORM flush just before the
write gives new ones their keys. Rows of a table are written in the order they were added, so
events keep the order of their keys that the timeline sorts by.

Only the fast filing of a batch defers (pipeline.ingest_batch). Filed carefully, mail by mail
in SAVEPOINTs, each mail's rows must roll back with it, so they are ORM objects again.
A query within the batch that must see deferred rows calls `write_deferred` first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

_KEY = "complaints.deferred_rows"


class DeferredRows:
    def __init__(self) -> None:
        # table -> [(column values, ((foreign key column, the object it points at), ...))]
        self._rows: dict[Table, list[tuple[dict[str, Any], tuple[tuple[str, Any], ...]]]] = {}

    def add(self, table: Table, values: dict[str, Any], **parents: Any) -> None:
        """`parents`: foreign key column -> ORM object (or None) whose key it takes."""
        self._rows.setdefault(table, []).append((values, tuple(parents.items())))

    def write(self, session: Session) -> None:
        if not self._rows:
            return
        session.flush()  # new cases and messages get their keys
        connection = session.connection()
        for table, rows in self._rows.items():
            connection.execute(table.insert(), [
                {**values, **{column: None if parent is None else parent.id
                              for column, parent in parents}}
                for values, parents in rows])
        self._rows.clear()


def deferring(session: Session) -> DeferredRows | None:
    """The rows being deferred in this session's batch, or None: add the ORM object."""
    return session.info.get(_KEY)


@contextmanager
def deferred_rows(session: Session) -> Iterator[DeferredRows]:
    """Defer rows added within the block; they are written when it ends without error (an
    error rolls back the batch, rows and all)."""
    rows = DeferredRows()
    session.info[_KEY] = rows
    try:
        yield rows
        rows.write(session)
    finally:
        session.info.pop(_KEY, None)


def write_deferred(session: Session) -> None:
    rows = deferring(session)
    if rows is not None:
        rows.write(session)
