"""`complaints db upgrade`: bring the database schema to this version."""

from __future__ import annotations

import click

from processor.cli.common import settings_from
from processor.db import open_database, upgrade_schema
from processor.db.migrate import current_revision


@click.group("db")
def db_group() -> None:
    """Database schema management."""


@db_group.command("upgrade")
@click.pass_context
def upgrade_command(ctx: click.Context) -> None:
    """Create or migrate the database schema (safe to run repeatedly).

    \b
    Example:
      complaints db upgrade
    """
    settings = settings_from(ctx)
    engine = open_database(settings.database.url)
    before = current_revision(engine)
    upgrade_schema(engine)
    after = current_revision(engine)
    click.echo(f"schema at {after}" + ("" if before == after else f" (was {before or 'empty'})"))


COMMANDS = [db_group]
