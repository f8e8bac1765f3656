"""`complaints poll --once` and `complaints run`: ingest mail from the monitored mailboxes."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

import click

from processor.cli.common import runtime_from
from processor.outbox import drain_once
from processor.poller import PollStats, Progress
from processor.runner import poll_all_once, run_service

PROGRESS_THRESHOLD = 200


def _progress_bar(ctx: click.Context) -> Callable[[int], Progress | None] | None:
    """A progress bar on a terminal when a poll works through a large backlog."""
    if not sys.stderr.isatty():
        return None

    def start(total: int) -> Progress | None:
        if total < PROGRESS_THRESHOLD:
            return None
        bar = ctx.with_resource(click.progressbar(length=total, label="ingesting",
                                                  file=sys.stderr))
        return bar.update

    return start


def print_stats(results: list[PollStats]) -> None:
    for stats in results:
        if stats.skipped:
            click.echo(f"{stats.mailbox}: skipped, another worker is polling it right now")
            continue
        if stats.failed:
            click.echo(f"{stats.mailbox}: not polled: {stats.failed}")
            continue
        click.echo(f"{stats.mailbox}: fetched {stats.fetched}, stored {stats.stored}, "
                   f"duplicates {stats.duplicates}, ignored {stats.ignored}, "
                   f"quarantined {stats.quarantined}, {stats.duration_ms} ms")
        if stats.refused:
            left = f"{stats.unmoved} filed mails left in place: " if stats.unmoved else ""
            click.echo(f"{stats.mailbox}: {left}{stats.refused}")


@click.command("poll")
@click.option("--once", is_flag=True, required=True, help="Poll every mailbox once and exit.")
@click.option("--mailbox", "mailbox_name", help="Only this configured mailbox.")
@click.pass_context
def poll_command(ctx: click.Context, once: bool, mailbox_name: str | None) -> None:
    """Fetch and file new mail from every configured mailbox once, then exit.

    \b
    Example:
      complaints poll --once
    """
    runtime = runtime_from(ctx, with_rules=True, worker=True)
    only = (runtime.settings.mailbox(mailbox_name),) if mailbox_name else None
    results = poll_all_once(runtime, _progress_bar(ctx), only)
    print_stats(results)
    login_refused = None
    if runtime.settings.smtp.host:
        sent = drain_once(runtime.engine, runtime.settings)
        click.echo(f"outbox: sent {sent.sent}, retrying {sent.retried}, failed {sent.failed}")
        login_refused = sent.login_refused
    failed = [stats.mailbox for stats in results if stats.failed]
    refused = [stats.mailbox for stats in results if stats.refused]
    if failed:  # after the others and the outbox, so that cron still reports it
        click.echo(f"error: {len(failed)} mailbox(es) could not be polled: {', '.join(failed)}; "
                   "`complaints status` shows why", err=True)
    if refused:  # the mail is filed; the server needs mending all the same
        click.echo(f"error: the server refused to move filed mail in {', '.join(refused)}; "
                   "see above, or `complaints status`", err=True)
    if login_refused:  # cron mails this line to whoever can mend the login
        click.echo(f"error: {login_refused}; the outgoing mail waits, none failed; mend [smtp], "
                   "then `complaints outbox send`", err=True)
    if failed or refused or login_refused:
        ctx.exit(1)


@click.command("run")
@click.pass_context
def run_command(ctx: click.Context) -> None:
    """Run the processor: keep every mailbox drained (IDLE or interval polling).

    SIGTERM or Ctrl-C finish the mail in hand and exit cleanly; connection errors are retried
    with capped exponential backoff.

    \b
    Example:
      complaints run --log-format json
    """
    runtime = runtime_from(ctx, with_rules=True, worker=True)  # refuses invalid rules
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    def reload_rules(signum: int, _frame: object) -> None:
        # Off the signal handler: reading files and logging are not async-signal-safe.
        if runtime.rules is not None:
            threading.Thread(target=runtime.rules.reload, name="rules-reload").start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, reload_rules)
    run_service(runtime, stop)


COMMANDS = [poll_command, run_command]
