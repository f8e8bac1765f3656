"""Migrations are the schema: they build every table, and the models agree with them."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from processor.db import check_schema_current, open_database, upgrade_schema
from processor.db.migrate import SCHEMA_HEAD, current_revision, head_revision
from processor.db.models import Base
from processor.errors import SchemaOutOfDate


def test_models_and_migrations_agree(db_url: str) -> None:
    engine = open_database(db_url)
    upgrade_schema(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_the_schema_check_expects_the_newest_migration() -> None:
    # The check compares against SCHEMA_HEAD, not Alembic's reading of the migration files, so a
    # migration added without moving SCHEMA_HEAD would let old schemas through.
    assert SCHEMA_HEAD == head_revision()


def test_out_of_date_schema_is_refused_until_upgraded(db_url: str) -> None:
    engine = open_database(db_url)
    try:
        check_schema_current(engine)
        raise AssertionError("an empty database passed the schema check")
    except SchemaOutOfDate as exc:
        assert "complaints db upgrade" in (exc.hint or "")
    upgrade_schema(engine, "0001")
    try:
        check_schema_current(engine)
        raise AssertionError("a database at 0001 passed the schema check")
    except SchemaOutOfDate as exc:
        assert "0001" in str(exc)
    upgrade_schema(engine)
    check_schema_current(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()
