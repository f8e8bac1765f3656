"""The `complaints` command: parse arguments, load settings, call one function per command.

Each command group lives in its own module (processor/cli/<name>.py) and is registered here.
Errors from the processor's own tree are printed as one line plus what to do next, never as a
traceback, and the process exits with status 2 (usage/config) or 1 (runtime).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from processor import __version__
from processor.errors import ComplaintsError, ConfigError, RulesError, SchemaOutOfDate


class _Group(click.Group):
    """A click group that turns our exceptions into a short message and an exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ComplaintsError as exc:
            click.echo(f"error: {exc}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            code = 2 if isinstance(exc, ConfigError | RulesError | SchemaOutOfDate) else 1
            ctx.exit(code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="complaints")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              envvar="COMPLAINTS_CONFIG", help="Configuration file (default: ./complaints.toml).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Human-readable lines or JSON lines.")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, log_format: str, verbose: int) -> None:
    """Email complaint desk: mail in an IMAP folder becomes cases with a full history.

    \b
    Example:
      complaints init > complaints.toml
      complaints db upgrade
      complaints poll --once
    """
    from processor.logsetup import configure_logging

    configure_logging(log_format, verbose)
    ctx.obj = {"config_path": config_path}


def _register() -> None:
    from processor.cli import (
        cases,
        db,
        demo,
        digest,
        init,
        outbox,
        parse,
        poll,
        quarantine,
        rules,
        status,
        templates,
        tick,
    )

    for module in (cases, db, demo, digest, init, outbox, parse, poll, quarantine, rules, status,
                   templates, tick):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
