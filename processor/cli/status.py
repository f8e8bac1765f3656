"""`complaints status`: per mailbox, the cursor, the last poll and the quarantine count."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from processor.cli.common import local_time, runtime_from
from processor.db import session_scope
from processor.db.models import MailboxState, PollRun, Quarantine


@click.command("status")
@click.pass_context
def status_command(ctx: click.Context) -> None:
    """Show, per mailbox, what the last poll did, the last error and the quarantine count.

    \b
    Example:
      complaints status
    """
    runtime = runtime_from(ctx)
    with session_scope(runtime.engine) as session:
        held = dict(session.execute(
            select(Quarantine.mailbox, func.count()).where(Quarantine.status == "held")
            .group_by(Quarantine.mailbox)).all())
        for mailbox in runtime.settings.mailboxes:
            state = session.scalars(select(MailboxState).where(
                MailboxState.mailbox == mailbox.name)).first()
            last = session.scalars(select(PollRun).where(PollRun.mailbox == mailbox.name)
                                   .order_by(PollRun.id.desc()).limit(1)).first()
            last_error = session.scalars(
                select(PollRun).where(PollRun.mailbox == mailbox.name,
                                      PollRun.last_error.is_not(None))
                .order_by(PollRun.id.desc()).limit(1)).first()
            click.echo(f"{mailbox.name} ({mailbox.user}@{mailbox.host}:{mailbox.port}/"
                       f"{mailbox.folder})")
            if state:
                click.echo(f"  cursor       uidvalidity {state.uidvalidity}, last uid "
                           f"{state.last_uid}")
            if last:
                click.echo(f"  last poll    {local_time(last.started_at)}: fetched {last.fetched}, "
                           f"stored {last.stored}, duplicates {last.duplicates}, quarantined "
                           f"{last.quarantined}, errors {last.errors}, {last.duration_ms} ms")
            else:
                click.echo("  last poll    never")
            if last_error:
                click.echo(f"  last error   {local_time(last_error.started_at)}: "
                           f"{last_error.last_error}")
            click.echo(f"  quarantine   {held.get(mailbox.name, 0)} held")


COMMANDS = [status_command]
