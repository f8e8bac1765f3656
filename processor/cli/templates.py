"""`complaints templates list|preview`: see what a mail template renders to for a real case."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import click

from processor.cli.common import settings_from
from processor.compose import ack_context
from processor.db import session_scope
from processor.db.store import case_by_reference
from processor.errors import NotFound
from processor.render import TemplateRenderer, format_when
from processor.runtime import open_runtime


@click.group("templates")
def templates_group() -> None:
    """Mail templates (templates/ and the configured override directory)."""


@templates_group.command("list")
@click.pass_context
def templates_list(ctx: click.Context) -> None:
    """List template names and their languages.

    \b
    Example:
      complaints templates list
    """
    settings = settings_from(ctx)
    renderer = TemplateRenderer.with_override(settings.processing.templates_dir or None,
                                              settings.ack.default_language)
    for name in sorted(renderer.available_templates()):
        click.echo(f"{name}: {', '.join(sorted(renderer.languages(name)))}")


@templates_group.command("preview")
@click.argument("name")
@click.option("--case", "reference", required=True, help="Render for this case, e.g. C-000123.")
@click.option("--lang", help="Language (default: the case's).")
@click.option("--html", "as_html", is_flag=True, help="Show the HTML part instead of the text.")
@click.pass_context
def templates_preview(ctx: click.Context, name: str, reference: str, lang: str | None,
                      as_html: bool) -> None:
    """Render template NAME for a case to the terminal (nothing is sent).

    \b
    Example:
      complaints templates preview ack-default --case C-000123 --lang zh
    """
    runtime = open_runtime(settings_from(ctx), with_rules=True)
    assert runtime.renderer is not None
    with session_scope(runtime.engine) as session:
        case = case_by_reference(session, reference.strip().upper())
        if case is None:
            raise NotFound(f"no case {reference}", hint="list cases with `complaints cases`")
        language = lang or case.language or runtime.settings.ack.default_language
        category = case.category or "other"
        sla = case.sla_hours or 48
        due = (case.first_response_due_at or case.opened_at + timedelta(hours=sla))
        stored = case.details or {}
        details = stored.get("details")
        missing = stored.get("missing")
        context = {
            **ack_context(
                case_ref=case.reference, subject=case.subject,
                category_label=(runtime.rules.current.category_label(category, language)
                                if runtime.rules else category),
                first_answer_by=format_when(
                    due.astimezone(ZoneInfo(runtime.settings.ack.timezone)), language),
                sla_hours=sla, missing=list(missing) if isinstance(missing, list) else []),
            "priority": case.priority, "status": case.status,
            "complainant": {"name": case.complainant_name, "address": case.complainant_address},
            "details": ({k: ", ".join(v) for k, v in details.items() if v}
                        if isinstance(details, dict) else {}),
            "attachments": [], "text": "(the complaint text appears here)",
        }
    body = runtime.renderer.render_pair(name, language, context)
    click.echo(body.html if as_html and body.html else body.text)


COMMANDS = [templates_group]
