"""Alembic driven from code: upgrade to head, and refuse to run on an out-of-date schema.

Every command checks the schema before it starts, so the check is kept cheap: one query for the
revision Alembic recorded, compared with SCHEMA_HEAD. Alembic itself (with the templating it
loads) costs more to import than the rest of a short command such as `complaints case show`,
so only the functions that migrate import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Engine

from processor.errors import SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The newest revision in migrations/versions; a test fails when a migration is added without it.
SCHEMA_HEAD = "0005"
# Where Alembic records the revision a database is at (its default table name).
VERSION_TABLE = "alembic_version"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def head_revision() -> str:
    """The head as Alembic finds it in the migration files (SCHEMA_HEAD is checked against it)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database no migration has touched."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(VERSION_TABLE):
            return None
        revisions = connection.execute(
            sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    # The history is one line, so there is one row; several (branches merged by hand) are shown
    # as they are, which fails the check with all of them named.
    return " + ".join(sorted(revisions)) or None


def check_schema_current(engine: Engine) -> None:
    current, head = current_revision(engine), SCHEMA_HEAD
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise SchemaOutOfDate(f"the database schema is {state}; this version needs {head}")
