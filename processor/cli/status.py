"""`complaints status`: per mailbox, the cursor, who polls it, the last poll and the quarantine
count; then the workers with their heartbeats."""

from __future__ import annotations

from datetime import timedelta

import click
from sqlalchemy import Engine, func, select

from processor.cli.common import local_time, runtime_from
from processor.db import session_scope
from processor.db.leases import LeaseView, db_now, lease_views, workers
from processor.db.models import MailboxState, PollRun, Quarantine
from processor.health import check


@click.command("status")
@click.option("--check", is_flag=True,
              help="Only what needs attention, for a monitoring system: exit 0 when all is "
                   "well, 1 for a warning, 2 for a critical problem.")
@click.option("--max-age", "max_age_minutes", type=click.IntRange(min=1), default=60,
              show_default=True, help="With --check: a mailbox not polled for this many "
                                      "minutes is a critical problem.")
@click.pass_context
def status_command(ctx: click.Context, check: bool, max_age_minutes: int) -> None:
    """Show, per mailbox, which worker polls it, what the last poll did, the last error and
    the quarantine count; then every worker and its last heartbeat.

    \b
    Example:
      complaints status
      complaints status --check --max-age 30
    """
    runtime = runtime_from(ctx)
    if check:
        _check(ctx, runtime.engine, [m.name for m in runtime.settings.mailboxes],
               timedelta(minutes=max_age_minutes))
        return
    with session_scope(runtime.engine) as session:
        held = dict(session.execute(
            select(Quarantine.mailbox, func.count()).where(Quarantine.status == "held")
            .group_by(Quarantine.mailbox)).all())
        leases = {(view.mailbox, view.folder): view for view in lease_views(session)}
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
            click.echo(f"  polled by    {_holder(leases.get((mailbox.name, mailbox.folder)))}")
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
        rows = workers(session)
        takeover = runtime.settings.workers.takeover_seconds
        click.echo("workers" if rows else "workers      none has run yet")
        stopped = [w for w in rows if w.stopped_at is not None]
        # Running ones all; of the stopped ones (every cron `poll --once`), the latest few.
        shown = [w for w in rows if w.stopped_at is None] + stopped[-SHOW_STOPPED:]
        for worker in sorted(shown, key=lambda w: w.started_at):
            if worker.stopped_at is not None:
                state_text = f"stopped {local_time(worker.stopped_at)}"
            else:
                age = (db_now(session) - worker.heartbeat_at).total_seconds()
                state_text = (f"last heartbeat {local_time(worker.heartbeat_at)} ({age:.0f} s ago)"
                              + ("" if age <= takeover else ", presumed dead"))
            click.echo(f"  {worker.name}  started {local_time(worker.started_at)}, {state_text}")
        if len(stopped) > SHOW_STOPPED:
            click.echo(f"  ... and {len(stopped) - SHOW_STOPPED} more stopped in the last day")


SHOW_STOPPED = 5


def _check(ctx: click.Context, engine: Engine, mailboxes: list[str],
           max_age: timedelta) -> None:
    with session_scope(engine) as session:
        findings = check(session, mailboxes, db_now(session), max_age)
    if not findings:
        click.echo(f"OK: {len(mailboxes)} mailbox(es) polled without error in the last "
                   f"{max_age.total_seconds() / 60:.0f} minutes; nothing stuck in the outbox "
                   "or held in the quarantine")
        return
    for finding in findings:
        click.echo(f"{finding.level.upper()} {finding.subject}: {finding.text}")
    ctx.exit(2 if any(f.level == "critical" for f in findings) else 1)


def _holder(view: LeaseView | None) -> str:
    if view is None or view.holder is None:
        return "no worker"
    if view.expired:
        return f"no worker (the lease of {view.holder} expired {local_time(view.expires_at)})"
    return (f"{view.holder} since {local_time(view.acquired_at)}, lease until "
            f"{local_time(view.expires_at)}")


COMMANDS = [status_command]
