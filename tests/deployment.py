"""Fixtures that set up a deployment for a test: a fresh database (SQLite or PostgreSQL), a
configuration file pointing at real test servers, and a way to run the `complaints` command."""

from __future__ import annotations

import atexit
import io
import locale
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from processor.config import Settings, load_settings
from processor.db import open_database, upgrade_schema
from tests.forked import run_complaints, stop_forking
from tests.servers import ImapAccount

PASSWORD_ENV = "COMPLAINTS_TEST_IMAP_PASSWORD"


# -- databases built by the migrations, copied ------------------------------------------------
# Running the five migrations takes two to four seconds on a slow machine, and well over a
# hundred tests need a migrated database. Each test process migrates one empty database of each
# kind once, and a test's empty database is made a copy of it: the same file for SQLite, a
# database created from it as a template for PostgreSQL. The migrations themselves are tested
# on empty databases (tests/db/test_migrations.py), and a database that is not empty, at an
# older revision say, is still upgraded by Alembic.

_ADMIN_URLS: dict[str, str] = {}  # PostgreSQL database made by _fresh_postgres -> admin URL
_TEMPLATES: dict[str, str] = {}  # "sqlite" -> migrated file; admin URL -> migrated database


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema, as upgrade_schema does."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite") and parsed.database:
        target = Path(parsed.database)
        if not target.exists() or target.stat().st_size == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_sqlite_template(), target)
            return
    elif parsed.database in _ADMIN_URLS and _is_empty(url):
        admin_url = _ADMIN_URLS[parsed.database]
        template = _postgres_template(admin_url)
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{parsed.database}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{parsed.database}" TEMPLATE "{template}"')
        admin.dispose()
        return
    engine = open_database(url)
    upgrade_schema(engine)
    engine.dispose()


def _is_empty(url: str) -> bool:
    engine = open_database(url)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
    engine.dispose()
    return not tables


def _sqlite_template() -> Path:
    if "sqlite" not in _TEMPLATES:
        path = Path(tempfile.mkdtemp(prefix="complaints-schema-")) / "migrated.sqlite3"
        engine = open_database(f"sqlite:///{path}")
        upgrade_schema(engine)
        engine.dispose()  # the last connection closed: the file holds the whole schema
        atexit.register(shutil.rmtree, path.parent, ignore_errors=True)
        _TEMPLATES["sqlite"] = str(path)
    return Path(_TEMPLATES["sqlite"])


def _postgres_template(admin_url: str) -> str:
    if admin_url not in _TEMPLATES:
        name = f"ct_schema_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        engine = open_database(make_url(admin_url).set(database=name)
                               .render_as_string(hide_password=False))
        upgrade_schema(engine)
        engine.dispose()  # a template may have no one connected while it is copied
        atexit.register(_drop_database, admin_url, name)
        _TEMPLATES[admin_url] = name
    return _TEMPLATES[admin_url]


def _drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def _fresh_postgres(admin_url: str) -> Iterator[str]:
    name = f"ct_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    _ADMIN_URLS[name] = admin_url
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        _ADMIN_URLS.pop(name, None)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind; tests using it run once on each."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'complaints.sqlite3'}"
        return
    admin_url = request.getfixturevalue("postgres_url")
    yield from _fresh_postgres(admin_url)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """An empty database of each kind, built by the migrations (a copy of one, see migrate)."""
    migrate(db_url)
    engine = open_database(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'complaints.sqlite3'}"


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    yield from _fresh_postgres(postgres_url)


@dataclass
class Deployment:
    """A configuration file, its data directory and database, and the `complaints` command."""

    root: Path
    db_url: str
    accounts: dict[str, tuple[ImapAccount, list[str]]]
    processing: dict[str, object] = field(default_factory=dict)
    sections: dict[str, dict[str, object]] = field(default_factory=dict)
    # Per mailbox name, settings that replace the plain-IMAP ones written by default.
    mailbox_settings: dict[str, dict[str, object]] = field(default_factory=dict)
    _engine: sa.Engine | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.root / "complaints.toml"

    def write(self) -> Deployment:
        lines = [f'[database]\nurl = "{self.db_url}"\n',
                 f'[storage]\ndata_dir = "{self.root / "data"}"\n', "[processing]"]
        lines += [f"{key} = {_toml(value)}" for key, value in self.processing.items()]
        for section, values in self.sections.items():
            lines += [f"\n[{section}]", *(f"{k} = {_toml(v)}" for k, v in values.items())]
        for name, (account, addresses) in self.accounts.items():
            mailbox: dict[str, object] = {
                "host": account.host, "port": account.port, "tls": "none", "user": account.user,
                "password_env": PASSWORD_ENV, "addresses": addresses,
                **self.mailbox_settings.get(name, {})}
            lines += [f"\n[mailbox.{name}]", *(f"{k} = {_toml(v)}" for k, v in mailbox.items())]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return self

    def env(self, password: str) -> dict[str, str]:
        return dict(os.environ, COMPLAINTS_CONFIG=str(self.config_path),
                    **{PASSWORD_ENV: password})

    def use_smtp(self, host: str, port: int, **ack: object) -> Deployment:
        """Send through a test SMTP server on loopback; `ack` overrides [ack] settings."""
        self.sections["smtp"] = {"host": host, "port": port, "tls": "none",
                                 "retry_base_seconds": 1, "retry_cap_seconds": 2}
        self.sections["ack"] = {"message_id_domain": "desk.example.com",
                                "installation_id": "test-desk", **ack}
        return self.write()

    def settings(self, password: str) -> Settings:
        os.environ[PASSWORD_ENV] = password
        return load_settings(self.config_path, environ=self.env(password))

    def upgrade(self) -> None:
        migrate(self.db_url)

    def command(self, args: Sequence[str], password: str, *, check: bool = True,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = run_complaints(args, self.env(password), timeout=timeout)
        result = subprocess.CompletedProcess(done.args, done.returncode, _text(done.stdout),
                                             _text(done.stderr))
        if check and result.returncode != 0:
            raise AssertionError(f"complaints {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def command_bytes(self, args: Sequence[str], password: str) -> bytes:
        """Standard output as bytes, for commands that print a raw mail."""
        done = run_complaints(args, self.env(password))
        done.check_returncode()
        return done.stdout

    def popen(self, args: Sequence[str], password: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "processor", *args],
                                env=self.env(password), text=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def scalar(self, sql: str) -> object:
        if self._engine is None:
            self._engine = open_database(self.db_url)
        with self._engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()

    def execute(self, sql: str) -> None:
        """Change the database directly (a test that ages its records, say)."""
        if self._engine is None:
            self._engine = open_database(self.db_url)
        with self._engine.begin() as conn:
            conn.exec_driver_sql(sql)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _text(output: bytes) -> str:
    """Output as subprocess.run(text=True) gives it: decoded, with universal newlines."""
    return io.TextIOWrapper(io.BytesIO(output), encoding=locale.getpreferredencoding(False)).read()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture
def deployment(tmp_path: Path, db_url: str, imap_account: ImapAccount) -> Iterator[Deployment]:
    """One Dovecot mailbox `complaints` receiving complaints@example.com, schema upgraded."""
    dep = Deployment(tmp_path, db_url,
                     {"complaints": (imap_account, ["complaints@example.com"])}).write()
    dep.upgrade()
    yield dep
    dep.close()


@pytest.fixture(scope="session", autouse=True)
def _forked_commands() -> Iterator[None]:
    """The process `complaints` commands are forked from ends with the session."""
    yield
    stop_forking()
