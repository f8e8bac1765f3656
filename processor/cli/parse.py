"""`complaints parse`: show what the processor sees in one mail."""

from __future__ import annotations

import json
import sys
from typing import BinaryIO

import click

from processor.mail import ParsedMessage, parse_message


@click.command("parse")
@click.argument("file", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stable keys).")
def parse_command(file: BinaryIO, as_json: bool) -> None:
    """Parse FILE (an .eml, or - for standard input) and print what the processor sees.

    \b
    Example:
      complaints parse tests/mail/samples/qq-mail.eml --json
    """
    try:
        raw = file.read()
    except OSError as exc:
        raise click.ClickException(f"cannot read {file.name}: {exc.strerror or exc}") from None
    message = parse_message(raw)
    if as_json:
        output = json.dumps(message.as_json(), ensure_ascii=False, indent=2) + "\n"
    else:
        output = _summary(message)
    # Bytes, so a terminal or pipe in a non-UTF-8 locale cannot fail on Chinese text.
    sys.stdout.flush()
    stdout = getattr(sys.stdout, "buffer", None)
    if stdout is None:
        click.echo(output, nl=False)
        return
    stdout.write(output.encode("utf-8"))
    stdout.flush()


def _summary(message: ParsedMessage) -> str:
    def people(addresses: object) -> str:
        return ", ".join(f"{a.name} <{a.address}>" if a.name else a.address
                         for a in addresses) or "-"  # type: ignore[attr-defined]

    lines = [
        f"Message-ID:   {message.message_id or '-'}",
        f"In-Reply-To:  {message.in_reply_to or '-'}",
        f"Date:         {message.as_json()['date'] or '-'}",
        f"From:         {people((message.from_,) if message.from_ else ())}",
        f"To:           {people(message.to)}",
        f"Cc:           {people(message.cc)}",
        f"Subject:      {message.subject}",
        f"Normalized:   {message.normalized_subject}",
        f"Language:     {message.language}",
        "Automatic:    " + ("yes: " + "; ".join(message.auto_reasons)
                            if message.auto_submitted else "no"),
    ]
    for attachment in message.all_attachments():
        flags = " inline" if attachment.inline else ""
        cid = f" cid:{attachment.content_id}" if attachment.content_id else ""
        lines.append(f"Attachment:   {attachment.filename} ({attachment.content_type}, "
                     f"{attachment.size} bytes{flags}{cid})")
    lines.extend(f"Defect:       {defect}" for defect in message.defects)
    lines += ["", "--- new text ---", message.new_text, "", "--- text ---", message.text, ""]
    return "\n".join(lines)


COMMANDS = [parse_command]
