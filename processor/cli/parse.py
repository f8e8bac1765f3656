"""`complaints parse`: show what the processor sees in one mail."""

from __future__ import annotations

import json
import sys

import click

from processor.mail import parse_message


@click.command("parse")
@click.argument("file", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stable keys).")
def parse_command(file: click.utils.LazyFile, as_json: bool) -> None:
    """Parse FILE (an .eml, or - for standard input) and print what the processor sees.

    \b
    Example:
      complaints parse examples/complaint-zh.eml --json
    """
    message = parse_message(file.read())
    if as_json:
        json.dump(message.as_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    for key, value in message.as_json().items():
        click.echo(f"{key}: {value}")


COMMANDS = [parse_command]
