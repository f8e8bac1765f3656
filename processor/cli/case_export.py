"""`complaints case export` and `complaints case verify`: a case as a verifiable evidence bundle."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import click

from processor.cli.common import runtime_from
from processor.dossier_verify import verify_dossier
from processor.export import export_case, safe_file_stem


def default_exporter() -> str:
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # noqa: BLE001 - getuser raises anything from KeyError to OSError
        return "unknown"


@click.command("export")
@click.argument("reference")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="The ZIP to write (default: <REF>-<UTC time>.zip here); never overwritten.")
@click.option("--include-linked", is_flag=True,
              help="Also include the linked cases (appeals, follow-ups); they are always listed.")
@click.option("--by", "exported_by", help="Who exports, for the record (default: your user name).")
@click.pass_context
def export_command(ctx: click.Context, reference: str, out: Path | None, include_linked: bool,
                   exported_by: str | None) -> None:
    """Export a case as a ZIP of its original mails, attachments, timeline and manifest.

    Every mail is included byte for byte as received or sent, every attachment under a safe
    name, timeline.json (as `case show --json`) and a printable timeline.html; manifest.json
    lists each file with its size and SHA-256. The export is recorded on the case with the
    manifest's hash.

    \b
    Example:
      complaints case export C-000123 --out C-000123.zip --include-linked
      complaints case verify C-000123.zip
    """
    reference = reference.strip().upper()
    now = datetime.now(UTC)
    by = (exported_by or "").strip() or default_exporter()
    target = out or Path.cwd() / f"{safe_file_stem(reference)}-{now:%Y%m%dT%H%M%SZ}.zip"
    runtime = runtime_from(ctx)
    result = export_case(runtime.engine, runtime.store, reference, target, exported_by=by,
                         now=now, include_linked=include_linked)
    click.echo(f"exported {reference} to {result.path}: {result.mails} mails, "
               f"{result.attachments} attachments, {result.files} files, "
               f"{result.bytes_written} bytes")
    if result.linked:
        click.echo(f"included linked cases: {', '.join(result.linked)}")
    click.echo(f"manifest sha256 {result.manifest_sha256}")


@click.command("verify")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
def verify_command(bundle: Path) -> None:
    """Check a case export: every file against the manifest's SHA-256, and nothing extra.

    Prints each missing, added or altered file; exits 0 when the bundle is intact and 1
    otherwise. Compare the manifest hash printed with the one recorded on the case.

    \b
    Example:
      complaints case verify C-000123-20261114T093000Z.zip
    """
    report = verify_dossier(bundle)
    click.echo(f"{report.case}, exported {report.exported_at} by {report.exported_by} "
               f"with {report.software}")
    click.echo(f"manifest sha256 {report.manifest_sha256 or '-'}")
    for problem in report.problems:
        click.echo(f"{problem.kind.upper()}: {problem.path}: {problem.detail}")
    if report.intact:
        click.echo(f"intact: {report.files_checked} files match the manifest")
        return
    click.echo(f"NOT INTACT: {len(report.problems)} problem(s) in {report.files_checked} "
               "listed files")
    raise click.exceptions.Exit(1)


CASE_COMMANDS = [export_command, verify_command]
