"""`complaints case status REF`: where a case stands, the same summary a complainant receives."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from sqlalchemy import select

from processor.cli.common import runtime_from
from processor.db import session_scope
from processor.db.models import Case
from processor.progress import case_progress_facts, category_label, progress_summary


@click.command("status")
@click.argument("reference")
@click.option("--language", help="Word the summary in this language (default: the case's).")
@click.pass_context
def case_status_command(ctx: click.Context, reference: str, language: str | None) -> None:
    """Print the progress summary of one case: status in plain words, when it was last
    worked on, the response-time target and whether it is met, what the team waits for.

    \b
    Example:
      complaints case status C-000123
    """
    runtime = runtime_from(ctx, with_rules=True)
    with session_scope(runtime.engine) as session:
        case = session.scalars(select(Case).where(
            Case.reference == reference.strip().upper())).one_or_none()
        if case is None:
            raise click.ClickException(f"no case {reference}")
        chosen = language or case.language or runtime.settings.ack.default_language
        rules = runtime.rules.current if runtime.rules else None
        summary = progress_summary(case_progress_facts(session, case), datetime.now(UTC),
                                   runtime.settings.ack, chosen,
                                   category_label(rules, case.category, chosen))
    for line in summary.lines():
        click.echo(line)


CASE_STATUS_COMMANDS = [case_status_command]
