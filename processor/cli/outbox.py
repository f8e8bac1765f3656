"""`complaints outbox list|retry|send`: outgoing mail waiting, sent or failed."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from sqlalchemy import select

from processor.cli.common import local_time, runtime_from
from processor.db import session_scope
from processor.db.models import OutboxMail
from processor.errors import ComplaintsError
from processor.outbox import bring_forward, drain_once

STATUSES = ["queued", "sent", "failed"]


@click.group("outbox")
def outbox_group() -> None:
    """Outgoing mail: acknowledgements, relays, notifications, digests."""


@outbox_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only mail in this state.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.pass_context
def outbox_list(ctx: click.Context, status: str | None, limit: int) -> None:
    """List outgoing mail, newest first, with attempts and the last error.

    \b
    Example:
      complaints outbox list --status failed
    """
    runtime = runtime_from(ctx)
    query = select(OutboxMail).order_by(OutboxMail.id.desc()).limit(limit)
    if status:
        query = query.where(OutboxMail.status == status)
    with session_scope(runtime.engine) as session:
        rows = session.scalars(query).all()
        if not rows:
            click.echo("outbox is empty" if not status else f"no {status} mail")
            return
        click.echo(f"{'ID':>6} {'CREATED':<16} {'KIND':<13} {'STATUS':<7} {'TRIES':>5} "
                   f"{'TO':<30} LAST ERROR / NEXT ATTEMPT")
        for m in rows:
            note = m.last_error or ""
            if m.status == "queued":
                note = f"next {local_time(m.next_attempt_at)} {note}".strip()
            click.echo(f"{m.id:>6} {local_time(m.created_at):<16} {m.kind:<13} {m.status:<7} "
                       f"{m.attempts:>5} {m.recipient[:30]:<30} {note[:70]}")


@outbox_group.command("retry")
@click.argument("ids", type=int, nargs=-1)
@click.option("--all-failed", is_flag=True, help="Re-queue every failed mail.")
@click.pass_context
def outbox_retry(ctx: click.Context, ids: tuple[int, ...], all_failed: bool) -> None:
    """Re-queue failed mail for sending now (after fixing the SMTP settings, say).

    The Message-ID stays the same, so a receiver can recognise a mail it already has.

    \b
    Example:
      complaints outbox retry 17 18
      complaints outbox retry --all-failed
    """
    if not ids and not all_failed:
        raise click.UsageError("name outbox ids, or use --all-failed")
    runtime = runtime_from(ctx)
    now = datetime.now(UTC)
    with session_scope(runtime.engine) as session:
        query = select(OutboxMail).where(OutboxMail.status == "failed")
        if ids:
            query = query.where(OutboxMail.id.in_(ids))
        rows = session.scalars(query).all()
        missing = set(ids) - {r.id for r in rows}
        if missing:
            raise ComplaintsError(f"not failed or not found: {sorted(missing)}",
                                  hint="see `complaints outbox list --status failed`")
        for row in rows:
            row.status, row.next_attempt_at, row.attempts = "queued", now, 0
            row.claimed_by = row.claimed_until = None
    click.echo(f"re-queued {len(rows)} mail(s); `complaints run` sends them, or "
               "`complaints outbox send` now")


@outbox_group.command("send")
@click.pass_context
def outbox_send(ctx: click.Context) -> None:
    """Send every queued mail now, once, also mail waiting for a retry, and report what
    happened (after mending the SMTP settings, say).

    \b
    Example:
      complaints outbox send
    """
    runtime = runtime_from(ctx)
    if not runtime.settings.smtp.host:
        raise ComplaintsError("no SMTP server is configured",
                              hint="set [smtp] host (and port, tls, user) in the configuration")
    bring_forward(runtime.engine, datetime.now(UTC))
    stats = drain_once(runtime.engine, runtime.settings)
    click.echo(f"sent {stats.sent}, retrying later {stats.retried}, failed {stats.failed}")
    if stats.login_refused:
        raise ComplaintsError(f"{stats.login_refused}; the queued mail waits, none failed",
                              hint="check [smtp] user and password_env or password_file (or "
                                   "auth), then run `complaints outbox send` again")


COMMANDS = [outbox_group]
