"""Engines and sessions: SQLite tuned for safe concurrent use, PostgreSQL via psycopg 3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from processor.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def open_database(url: str, *, echo: bool = False) -> Engine:
    """Create the engine for a URL; plain `postgresql://` URLs are routed to psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}", key="database.url",
                          hint="e.g. sqlite:///var/complaints.sqlite3 or "
                               "postgresql://user@host/dbname") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, echo=echo,
                               connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take control so that
        # SAVEPOINTs and write locks behave as documented.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    try:
        return create_engine(parsed, echo=echo, pool_pre_ping=True)
    except NoSuchModuleError:
        raise ConfigError(f"no driver for {parsed.drivername}", key="database.url",
                          hint="install the PostgreSQL driver: pip install "
                               "'complaint-processor[postgres]'") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(f"database driver missing: {exc.name}", key="database.url",
                          hint="pip install 'complaint-processor[postgres]'") from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see above)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before we touch the mail on the server.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session
