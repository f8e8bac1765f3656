"""Engines and sessions: SQLite tuned for safe concurrent use, PostgreSQL via psycopg 3."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from processor.db.keys import keys_given_here
from processor.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000


def open_database(url: str, *, echo: bool = False,
                  idle_in_transaction_seconds: float | None = None,
                  synced_commits: bool = True) -> Engine:
    """Create the engine for a URL; plain `postgresql://` URLs are routed to psycopg 3.

    `idle_in_transaction_seconds` (PostgreSQL): the server ends a session that sits inside a
    transaction without a statement for that long, releasing its locks.
    `synced_commits=False` (SQLite in WAL mode): a commit returns before it is on disk; only
    for the filing of batches, which syncs them itself (processor.db.durability)."""
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
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, synced_commits))
        # pysqlite's own transaction handling defers BEGIN; take control so that
        # SAVEPOINTs and write locks behave as documented.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        keys_given_here(engine)  # safe under BEGIN IMMEDIATE only: see processor.db.keys
        return engine
    connect_args = {}
    if idle_in_transaction_seconds:
        connect_args["options"] = ("-c idle_in_transaction_session_timeout="
                                   f"{int(idle_in_transaction_seconds * 1000)}")
    try:
        return create_engine(parsed, echo=echo, pool_pre_ping=True, connect_args=connect_args)
    except NoSuchModuleError:
        raise ConfigError(f"no driver for {parsed.drivername}", key="database.url",
                          hint="install the PostgreSQL driver: pip install "
                               "'complaint-processor[postgres]'") from None
    except ModuleNotFoundError as exc:
        raise ConfigError(f"database driver missing: {exc.name}", key="database.url",
                          hint="pip install 'complaint-processor[postgres]'") from None


def _sqlite_pragmas(synced_commits: bool, dbapi_connection,  # type: ignore[no-untyped-def]
                    _record) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see above)
    cursor = dbapi_connection.cursor()
    journal = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    # FULL: a commit is on disk before we touch the mail on the server. NORMAL only in WAL
    # mode, where a commit not yet synced is lost whole or kept whole, never half.
    synchronous = "NORMAL" if not synced_commits and journal == "wal" else "FULL"
    cursor.execute(f"PRAGMA synchronous={synchronous}")
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


# SQLSTATEs that mean "another transaction got there first": unique violation, deadlock,
# serialisation failure, lock not available. Only PostgreSQL has concurrent writers here.
_CONFLICT_STATES = frozenset({"23505", "40P01", "40001", "55P03"})


def is_concurrency_conflict(exc: BaseException) -> bool:
    """True for a database error caused by another worker's concurrent transaction."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError):
            return getattr(current.orig, "sqlstate", None) in _CONFLICT_STATES
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def conflicts_as(error: type[Exception], *, enabled: bool = True) -> Iterator[None]:
    """Re-raise a concurrency conflict (see above) as `error`, for the caller to retry."""
    try:
        yield
    except Exception as exc:
        if enabled and not isinstance(exc, error) and is_concurrency_conflict(exc):
            raise error(_first_line(exc)) from exc
        raise


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).strip().splitlines()[0][:300] if str(orig or exc).strip() else \
        exc.__class__.__name__
