"""`complaints quarantine list|show|retry`: mails that could not be processed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
from sqlalchemy import select

from processor.cli.common import local_time, runtime_from
from processor.db import session_scope
from processor.db.models import Quarantine
from processor.errors import NotFound
from processor.imap import FetchedMail
from processor.pipeline import ingest_again


@click.group("quarantine")
def quarantine_group() -> None:
    """Mails that failed processing: kept with their reason, never lost."""


@quarantine_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include released entries.")
@click.pass_context
def quarantine_list(ctx: click.Context, show_all: bool) -> None:
    """List quarantined mails.

    \b
    Example:
      complaints quarantine list
    """
    runtime = runtime_from(ctx)
    query = select(Quarantine).order_by(Quarantine.id)
    if not show_all:
        query = query.where(Quarantine.status == "held")
    with session_scope(runtime.engine) as session:
        rows = session.scalars(query).all()
        if not rows:
            click.echo("quarantine is empty")
            return
        click.echo(f"{'ID':>5} {'WHEN':<16} {'MAILBOX':<14} {'UID':>7} {'STAGE':<12} "
                   f"{'STATUS':<9} REASON")
        for q in rows:
            click.echo(f"{q.id:>5} {local_time(q.created_at):<16} {q.mailbox[:14]:<14} "
                       f"{q.uid or 0:>7} {q.stage:<12} {q.status:<9} {q.reason[:70]}")


def _entry(session: object, entry_id: int) -> Quarantine:
    entry = session.get(Quarantine, entry_id)  # type: ignore[attr-defined]
    if entry is None:
        raise NotFound(f"no quarantine entry {entry_id}",
                       hint="see `complaints quarantine list --all`")
    return entry


@quarantine_group.command("show")
@click.argument("entry_id", type=int)
@click.option("--raw", is_flag=True, help="Write the original bytes to standard output.")
@click.pass_context
def quarantine_show(ctx: click.Context, entry_id: int, raw: bool) -> None:
    """Show one quarantined mail: where it came from, why, and where its bytes are.

    \b
    Example:
      complaints quarantine show 3
      complaints quarantine show 3 --raw > mail.eml
    """
    runtime = runtime_from(ctx)
    with session_scope(runtime.engine) as session:
        q = _entry(session, entry_id)
        if raw:
            if not q.raw_sha256:
                raise NotFound(f"entry {entry_id} has no stored bytes")
            # click.get_binary_stream is deprecated (gone in Click 9): the standard buffer.
            sys.stdout.buffer.write(runtime.store.get(q.raw_sha256))
            sys.stdout.buffer.flush()
            return
        click.echo(f"entry      {q.id} ({q.status})")
        click.echo(f"received   {local_time(q.created_at)} from {q.mailbox}/{q.folder} "
                   f"uid {q.uid} (uidvalidity {q.uidvalidity})")
        click.echo(f"size       {q.size} bytes")
        click.echo(f"stage      {q.stage}")
        click.echo(f"reason     {q.reason}")
        if q.raw_sha256:
            click.echo(f"raw bytes  {runtime.store.path_for(q.raw_sha256)}")


@quarantine_group.command("retry")
@click.argument("entry_ids", type=int, nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every held entry.")
@click.pass_context
def quarantine_retry(ctx: click.Context, entry_ids: tuple[int, ...], retry_all: bool) -> None:
    """Process quarantined mails again (after a fix or a rule change).

    A mail that now succeeds is filed on a case and its entry is released; its server copy
    stays in the quarantine folder as evidence.

    \b
    Example:
      complaints quarantine retry 3 4
      complaints quarantine retry --all
    """
    if not entry_ids and not retry_all:
        raise click.UsageError("name entry ids, or use --all")
    runtime = runtime_from(ctx, with_rules=True)
    with session_scope(runtime.engine) as session:
        if retry_all:
            entry_ids = tuple(session.scalars(
                select(Quarantine.id).where(Quarantine.status == "held")).all())
    failures = 0
    for entry_id in entry_ids:
        with session_scope(runtime.engine) as session:
            q = _entry(session, entry_id)
            if q.status != "held":
                click.echo(f"{entry_id}: already {q.status}")
                continue
            if not q.raw_sha256:
                click.echo(f"{entry_id}: no stored bytes to retry")
                failures += 1
                continue
            mailbox = runtime.settings.mailbox(q.mailbox)
            ictx = runtime.ingest_context(mailbox, q.folder, q.uidvalidity or 0)
            mail = FetchedMail(q.uid or 0, runtime.store.get(q.raw_sha256), q.size)
            try:
                outcome = ingest_again(session, runtime.store, ictx, mail)
            except Exception as exc:  # report and keep it held
                click.echo(f"{entry_id}: still failing: {exc.__class__.__name__}: {exc}")
                failures += 1
                continue
            q.status, q.resolved_at = "released", datetime.now(UTC)
            runtime.store.sync()
            click.echo(f"{entry_id}: {outcome.outcome}"
                       + (f" on {outcome.case_reference}" if outcome.case_reference else ""))
    if failures:
        ctx.exit(1)


COMMANDS = [quarantine_group]
