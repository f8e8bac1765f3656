"""`complaints tick`: the time-driven work of `complaints run`, once (for cron)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from processor.cli.common import runtime_from
from processor.scheduler import tick


@click.command("tick")
@click.pass_context
def tick_command(ctx: click.Context) -> None:
    """Do the scheduled case work once: escalate late cases, remind and resolve cases waiting
    on the complainant, close resolved cases after the quiet period.

    `complaints run` does this by itself every few minutes; use `tick` from cron when the
    poller runs elsewhere or only as `poll --once`. Running both is safe: nothing is done twice.

    \b
    Example:
      */10 * * * *  complaints tick
    """
    runtime = runtime_from(ctx, with_rules=True)
    result = tick(runtime.engine, runtime.settings, datetime.now(UTC), renderer=runtime.renderer,
                  store=runtime.store)
    for label, refs in (("escalated", result.escalated), ("reminded", result.reminded),
                        ("resolved automatically", result.auto_resolved)):
        click.echo(f"{label} {len(refs)} case(s)" + (f": {', '.join(refs)}" if refs else ""))
    click.echo(f"closed {len(result.closed)} case(s)"
               + (f": {', '.join(result.closed)}" if result.closed else ""))
    for line in result.skipped:
        click.echo(f"skipped {line}")


COMMANDS = [tick_command]
