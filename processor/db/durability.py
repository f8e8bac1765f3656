"""Batches of mail committed without waiting for the disk, and made durable before the server
lets go of them.

On SQLite, a commit with `synchronous=FULL` waits for an fsync of the write-ahead log: about
20 ms per batch on the benchmark's disk, in the filing thread, which paces a poll. So the
filing commits on a connection of its own with `synchronous=NORMAL`: in WAL mode a commit is
still atomic and ordered, but it reaches the disk later. The mailbox connection's thread calls
`make_durable` (one fsync of the log) before it moves, flags or quarantines any filed mail on
the server: a mail leaves the folder only once its batch is on disk, as before. The fsync
overlaps the filing of the next batch instead of holding it up.

What a power cut can still take is a batch committed a few milliseconds before it: its mails
are still in the folder and are filed again (the cursor and the rows went with it). The
acknowledgements it queued are sent only after the same fsync, when the sender is woken by the
poll, but the sender's own round can pick one up in the moment between: that complainant may
get a second acknowledgement after the power comes back, never no acknowledgement and never a
lost mail.

PostgreSQL commits are durable when they return: there the filing uses the one engine and
`make_durable` does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine

from processor.db.engine import open_database


class FilingDurability:
    """The engine batches are filed with, and how to make what it committed durable."""

    def __init__(self, engine: Engine, *, echo: bool = False) -> None:
        database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
        self._log_files: tuple[Path, ...] = ()
        self.engine = engine
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            self.engine = open_database(engine.url.render_as_string(hide_password=False),
                                        echo=echo, synced_commits=False)
            # The log while the database is in WAL mode; the file itself otherwise (a
            # filesystem without WAL: then the commits were synced anyway, see engine.py).
            self._log_files = (path.with_name(path.name + "-wal"), path)

    def make_durable(self) -> None:
        """Everything the filing engine committed before this call is on disk when it returns.
        Raises OSError when the disk refuses: the caller must not touch the server then."""
        for path in self._log_files:
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # no log (checkpointed and closed, or no WAL): the database itself
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            return
