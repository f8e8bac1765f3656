"""`complaints digest`: the daily case digest on the terminal, or queued as a mail."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime

import click

from processor.cli.common import runtime_from, settings_from
from processor.config import Settings
from processor.db import session_scope
from processor.digest import (
    Digest,
    collect_digest,
    parse_period_length,
    period_ending,
    queue_digest,
    render_digest,
    today_in,
)
from processor.errors import ComplaintsError


@click.command("digest")
@click.option("--date", "day", help="The date whose configured hour ends the period "
                                    "(YYYY-MM-DD, default: today in digest.timezone).")
@click.option("--period", "length", default="24h", show_default=True,
              help="How long before the end the period starts (e.g. 24h, 7d).")
@click.option("--format", "output", type=click.Choice(["text", "html", "json"]), default="text",
              show_default=True, help="What to print (ignored with --send).")
@click.option("--send", is_flag=True, help="Queue the digest mail to digest.recipients.")
@click.option("--force", is_flag=True, help="With --send: send even if this date was sent.")
@click.pass_context
def digest_command(ctx: click.Context, day: str | None, length: str, output: str, send: bool,
                   force: bool) -> None:
    """The team lead's morning view: new, waiting, overdue, response times, per mailbox.

    \b
    Examples:
      complaints digest
      complaints digest --date 2026-11-27 --format json
      complaints digest --send            # from cron, once a day after digest.hour
    """
    settings = settings_from(ctx)
    cfg = settings.digest
    if force and not send:
        raise ComplaintsError("--force only makes sense with --send")
    period = period_ending(_parse_day(day) if day else today_in(cfg.timezone), cfg.hour,
                           cfg.timezone, parse_period_length(length))
    now = datetime.now(UTC)
    if period.end > now:
        ends = f"{period.local(period.end):%Y-%m-%d %H:%M} ({period.zone})"
        if send:
            # Sending now would record this date as sent and block the full digest later.
            raise ComplaintsError(f"the period ends at {ends}, which has not come yet",
                                  hint="send after it, or give an earlier --date")
        click.echo(f"note: the period ends at {ends}; figures so far", err=True)
    runtime = runtime_from(ctx)
    with session_scope(runtime.engine) as session:
        digest = collect_digest(session, settings, period.start, period.end)
        if not send:
            _print(digest, settings, output)
            return
        body = render_digest(digest, settings)
        mail = queue_digest(session, digest, body, settings, now, force=force)
        mail_id, recipients = mail.id, ", ".join(mail.recipients)
    click.echo(f"digest for the period ending {period.local(period.end):%Y-%m-%d %H:%M} "
               f"({period.zone}) queued as outbox mail {mail_id} to {recipients}")
    if not settings.smtp.host:
        click.echo("smtp.host is not set: the mail waits in the outbox "
                   "(`complaints outbox list`)")
        return
    from processor.outbox import drain_once

    stats = drain_once(runtime.engine, settings)
    if stats.sent:
        click.echo(f"sent (outbox: {stats.sent} sent, {stats.retried} to retry, "
                   f"{stats.failed} failed)")
    else:
        click.echo(f"not sent yet (outbox: {stats.retried} to retry, {stats.failed} failed); "
                   "the outbox retries it")


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD",
                                 param_hint="--date") from None


def _print(digest: Digest, settings: Settings, output: str) -> None:
    if output == "json":
        json.dump(digest.as_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    body = render_digest(digest, settings)
    if output == "html":
        click.echo(body.html or "", nl=False)
    else:
        click.echo(body.text, nl=False)


COMMANDS = [digest_command]
