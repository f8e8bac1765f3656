"""`complaints cases` and `complaints case show`: read the case store."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import click
from sqlalchemy import select

from processor.cli.case_export import CASE_COMMANDS
from processor.cli.case_status import CASE_STATUS_COMMANDS
from processor.cli.common import local_time, parse_since, runtime_from
from processor.db import session_scope
from processor.db.models import Case
from processor.timeline import load_timeline

STATUSES = ["new", "open", "pending", "resolved", "closed"]


@click.command("cases")
@click.option("--status", type=click.Choice(STATUSES), help="Only cases in this status.")
@click.option("--category", help="Only this category, e.g. billing.")
@click.option("--assignee", help="Only cases assigned to this name.")
@click.option("--appeal/--no-appeal", default=None, help="Only appeals, or no appeals.")
@click.option("--since", help="Only cases opened on or after this date (YYYY-MM-DD).")
@click.option("--older-than", "older_than", type=int, metavar="HOURS",
              help="Only cases opened more than HOURS ago.")
@click.option("--limit", type=int, default=200, show_default=True, help="At most this many rows.")
@click.pass_context
def cases_command(ctx: click.Context, status: str | None, category: str | None,
                  assignee: str | None, appeal: bool | None, since: str | None,
                  older_than: int | None, limit: int) -> None:
    """List cases, newest first, as a table.

    \b
    Example:
      complaints cases --status new --since 2026-11-01
      complaints cases --status open --older-than 48 --category technical_fault
    """
    since_at = parse_since(since)
    runtime = runtime_from(ctx)
    query = select(Case).order_by(Case.opened_at.desc(), Case.id.desc()).limit(limit)
    if status:
        query = query.where(Case.status == status)
    if category:
        query = query.where(Case.category == category)
    if assignee:
        query = query.where(Case.assignee == assignee)
    if appeal is not None:
        query = query.where(Case.is_appeal.is_(appeal))
    if since_at:
        query = query.where(Case.opened_at >= since_at)
    if older_than is not None:
        query = query.where(Case.opened_at <= datetime.now(UTC) - timedelta(hours=older_than))
    with session_scope(runtime.engine) as session:
        echo_case_table(session.scalars(query).all())


def echo_case_table(rows: Sequence[Case]) -> None:
    if not rows:
        click.echo("no cases")
        return
    click.echo(f"{'REFERENCE':<10} {'STATUS':<8} {'OPENED':<16} {'CATEGORY':<18} {'PRIORITY':<8} "
               f"{'FROM':<28} SUBJECT")
    for case in rows:
        click.echo(f"{case.reference:<10} {case.status:<8} {local_time(case.opened_at):<16} "
                   f"{(case.category or '-'):<18} {case.priority:<8} "
                   f"{case.complainant_address[:28]:<28} {_clip(case.subject, 50)}")


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.group("case")
def case_group() -> None:
    """Look at one case."""


@case_group.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True, help="Print the case and timeline as JSON.")
@click.pass_context
def case_show_command(ctx: click.Context, reference: str, as_json: bool) -> None:
    """Show a case with its messages and events in time order.

    \b
    Example:
      complaints case show C-000123
    """
    runtime = runtime_from(ctx)
    with session_scope(runtime.engine) as session:
        timeline = load_timeline(session, reference.strip().upper())
    if as_json:
        json.dump(timeline.as_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    case = timeline.case
    complainant = case["complainant"]
    assert isinstance(complainant, dict)
    click.echo(f"{case['reference']}  [{case['status']}]  {case['subject']}")
    click.echo(f"  from {complainant['name']} <{complainant['address']}> via {case['mailbox']}")
    click.echo(f"  category {case['category'] or '-'}, priority {case['priority']}, "
               f"tags {', '.join(case['tags']) or '-'}, assignee "  # type: ignore[arg-type]
               f"{case['assignee'] or '-'}")
    links = case.get("links")
    for link in links if isinstance(links, list) else []:
        click.echo(f"  {link['relation']}: {link['reference']} [{link['status']}]")
    details = case.get("details") or {}
    if isinstance(details, dict) and details.get("details"):
        found = {k: v for k, v in details["details"].items() if v}  # type: ignore[union-attr]
        for key, value in found.items():
            click.echo(f"  {key}: {', '.join(value) if isinstance(value, list) else value}")
    click.echo("")
    for entry in timeline.entries:
        when = local_time(entry.at)
        if entry.kind == "message":
            d = entry.data
            arrow = "<-" if d["direction"] == "in" else "->"
            click.echo(f"{when}  {arrow} {d['author_role']} {d['from']}: {d['subject']}")
            for line in str(d["new_text"]).strip().splitlines()[:40]:
                click.echo(f"      | {line}")
            for att in d["attachments"]:  # type: ignore[attr-defined]
                click.echo(f"      + {att['filename']} ({att['content_type']}, "
                           f"{att['size']} bytes)")
        else:
            extra = ", ".join(f"{k}={v}" for k, v in entry.data.items() if k != "actor")
            click.echo(f"{when}  * {entry.kind} by {entry.data.get('actor')}"
                       + (f": {extra}" if extra else ""))


for _command in (*CASE_COMMANDS, *CASE_STATUS_COMMANDS):
    case_group.add_command(_command)

COMMANDS = [cases_command, case_group]
