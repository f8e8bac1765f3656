"""`complaints tick`: the time-driven work of `complaints run`, once (for cron)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from processor.cli.common import runtime_from
from processor.scheduler import tick


@click.command("tick")
@click.pass_context
def tick_command(ctx: click.Context) -> None:
    """Do the scheduled case work once: close resolved cases after the quiet period.

    `complaints run` does this by itself every few minutes; use `tick` from cron when the
    poller runs elsewhere or only as `poll --once`.

    \b
    Example:
      */10 * * * *  complaints tick
    """
    runtime = runtime_from(ctx)
    result = tick(runtime.engine, runtime.settings, datetime.now(UTC))
    click.echo(f"closed {len(result.closed)} case(s)"
               + (f": {', '.join(result.closed)}" if result.closed else ""))


COMMANDS = [tick_command]
