"""Rows nothing reads back while a batch is filed, written at its end with one executemany
per table instead of as an ORM object each.

History events, thread claims, the records of server copies and the attachments of stored
mail are about six of the eleven rows a new case adds. As ORM objects they cost the filing
process about 1 ms per mail (instrumented attributes, cascades, the unit of work); as plain
rows, a few microseconds. A row names the case or message it belongs to by the object, and
the ORM flush just before the write gives new ones their keys. Rows of a table are written in
the order they were added, so events keep the order of their keys that the timeline sorts by.

A stored mail's own row is deferred too (processor.db.store.NewMessage): other rows and the
rest of the batch refer to it, so it is written first, with its key given as it is written.
As an ORM object, it was about half of what the batch's flush cost the filing process
(benchmarks/RESULTS.md).

Only the fast filing of a batch defers (pipeline.ingest_batch). Filed carefully, mail by mail
in SAVEPOINTs, each mail's rows must roll back with it, so they are ORM objects again.
A query within the batch that must see deferred rows calls `write_deferred` first.

Work that must be done before the rows are written (acknowledgements composed in other
processes, processor.composing) registers as `Unfinished`: it is finished first, or cancelled
when the batch fails. What may start once it is all finished, alongside the batch's last
database work (syncing the batch's files to disk, processor.blobstore), registers in
`when_finished`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.orm import Session

from processor.db.keys import insert_returning_keys

_KEY = "complaints.deferred_rows"


class Unfinished(Protocol):
    def finish(self, session: Session) -> None:
        """Complete what has been started so far; called before each write."""

    def cancel(self) -> None:
        """Drop what is left; called when the batch ends, whether it was written or not."""


class KeyedRow(Protocol):
    """A row other deferred rows point at: written before them, and given its key then."""

    id: int | None

    def row_values(self) -> dict[str, Any]:
        """The column values to insert (the foreign keys of its parents resolved)."""


class DeferredRows:
    def __init__(self) -> None:
        # table -> rows to be written before the others, in the order they were added
        self.keyed: dict[Table, list[KeyedRow]] = {}
        # table -> [(column values, ((foreign key column, the object it points at), ...))]
        self._rows: dict[Table, list[tuple[dict[str, Any], tuple[tuple[str, Any], ...]]]] = {}
        self.unfinished: list[Unfinished] = []
        # Called once, in the batch's last write, when its unfinished work is finished.
        self.when_finished: list[Callable[[], None]] = []

    def add(self, table: Table, values: dict[str, Any], **parents: Any) -> dict[str, Any]:
        """`parents`: foreign key column -> ORM object (or None) whose key it takes. Returns
        `values`, which the caller may still change until the rows are written."""
        self._rows.setdefault(table, []).append((values, tuple(parents.items())))
        return values

    def add_keyed(self, table: Table, row: KeyedRow) -> None:
        self.keyed.setdefault(table, []).append(row)

    def write(self, session: Session, *, last: bool = False) -> None:
        if self.unfinished:
            # New cases and messages get their keys first: the worker processes go on
            # composing the batch's acknowledgements meanwhile, so fewer are left for this
            # process to compose itself when it finishes them (benchmarks/RESULTS.md).
            session.flush()
        for work in self.unfinished:
            work.finish(session)
        if last:
            for start in self.when_finished:
                start()
        if not self._rows and not any(self.keyed.values()):
            return
        session.flush()  # new cases get their keys (and what finishing added too)
        connection = session.connection()
        for table, keyed in self.keyed.items():
            if keyed:
                keys = insert_returning_keys(connection, table,
                                             [row.row_values() for row in keyed])
                for row, key in zip(keyed, keys, strict=True):
                    row.id = key
                keyed.clear()
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
        rows.write(session, last=True)
    finally:
        session.info.pop(_KEY, None)
        for work in rows.unfinished:  # what is left when the batch failed
            work.cancel()


def write_deferred(session: Session) -> None:
    rows = deferring(session)
    if rows is not None:
        rows.write(session)
