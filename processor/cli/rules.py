"""`complaints rules check|test`: validate the rule files; show how one mail would be classified."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import BinaryIO

import click

from processor.classify import (
    Classification,
    RuleSet,
    builtin_rules_dir,
    check_rules,
    classify,
    discover_templates,
    load_rules,
)
from processor.config import Settings, load_settings
from processor.errors import ComplaintsError
from processor.mail import parse_message


def _settings(ctx: click.Context) -> Settings:
    return load_settings((ctx.find_root().obj or {}).get("config_path"))


def _rule_dirs(settings: Settings) -> list[Path]:
    override = settings.processing.rules_dir
    return [builtin_rules_dir(), *([Path(override)] if override else [])]


def _templates(settings: Settings) -> set[str]:
    from processor.render import builtin_templates_dir

    override = settings.processing.templates_dir
    return discover_templates([builtin_templates_dir(), *([Path(override)] if override else [])])


@click.group("rules")
def rules_group() -> None:
    """Check the classification rules (rules/*.toml) and try them on a mail."""


@rules_group.command("check")
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Validate every rule file, built-in and configured; list each problem as file:line.

    Exits 1 when any problem is found: unknown keys, bad regex, unknown category or template,
    unreachable rules.

    \b
    Example:
      complaints rules check
      complaints -c /etc/complaints/complaints.toml rules check
    """
    settings = _settings(ctx)
    directories = _rule_dirs(settings)
    problems = check_rules(directories, _templates(settings))
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s); the processor will not start until they are "
                   "fixed", err=True)
        ctx.exit(1)
    rules = load_rules(directories)
    click.echo(f"ok: {len(rules.rules)} rules in {len(rules.files)} files "
               f"({', '.join(str(d) for d in directories)})")


@rules_group.command("test")
@click.argument("file", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (stable keys).")
@click.option("--received-by", metavar="ADDRESS",
              help="The monitored address that received the mail (default: its To and Cc).")
@click.pass_context
def test_command(ctx: click.Context, file: BinaryIO, as_json: bool,
                 received_by: str | None) -> None:
    """Show which rules match FILE (an .eml, or - for standard input) and why, then the result.

    Nothing is stored and nothing is sent.

    \b
    Example:
      complaints rules test examples/complaint-zh.eml
      complaints rules test complaint.eml --json --received-by complaints@example.com
    """
    settings = _settings(ctx)
    rules = load_rules(_rule_dirs(settings), _templates(settings))
    raw = file.read()
    if not raw:
        raise ComplaintsError(f"{file.name} is empty", hint="pass a saved .eml file")
    message = parse_message(raw)
    result = classify(message, rules, received_by)
    if as_json:
        json.dump(result.as_json(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    _print_result(result, rules, message.language)


def _print_result(result: Classification, rules: RuleSet, language: str) -> None:
    click.echo("matched rules, in order:")
    for match in result.matched:
        click.echo(f"  {match.rule}  ({match.file})")
        for reason in match.reasons:
            click.echo(f"      - {reason}")
    if not result.matched:
        click.echo("  (none)")
    label = rules.category_label(result.category, language)
    click.echo("")
    click.echo(f"category:     {result.category} ({label})")
    click.echo(f"priority:     {result.priority}")
    click.echo(f"sla_hours:    {result.sla_hours}")
    click.echo(f"tags:         {', '.join(result.tags) or '-'}")
    click.echo(f"team:         {result.team or '-'}")
    click.echo(f"assignee:     {result.assignee or '-'}")
    click.echo(f"ack_template: {result.ack_template}")
    ignored = "yes: no case is opened, nothing is sent" if result.ignored else "no"
    click.echo(f"ignored:      {ignored}")
    click.echo("details:")
    for name, values in result.details.as_json().items():
        click.echo(f"  {name}: {' | '.join(values) if values else '-'}")
    click.echo(f"missing:      {', '.join(result.missing) or '-'}")


COMMANDS = [rules_group]
