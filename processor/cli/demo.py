"""`complaints demo`: the whole job on an embedded default, with no server installed.

Starts pymap (an in-memory IMAP server) and an SMTP sink on loopback, loads the sample
complaints from examples/, ingests them into SQLite under ./demo-data, sends the
acknowledgements to the sink, and prints the cases it opened.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import click
from sqlalchemy import func, select

import processor
from processor.cli.cases import echo_case_table
from processor.config import (
    AckSettings,
    DatabaseSettings,
    MailboxSettings,
    Settings,
    SmtpServerSettings,
    StorageSettings,
)
from processor.db import open_database, session_scope, upgrade_schema
from processor.db.models import Case, OutboxMail
from processor.demo_servers import demo_servers, load_examples
from processor.errors import ComplaintsError
from processor.outbox import drain_once
from processor.runner import poll_all_once
from processor.runtime import open_runtime

EXAMPLES_DIR = Path(processor.__file__).resolve().parent.parent / "examples"
MARKER = ".complaints-demo"
PASSWORD_ENV = "COMPLAINTS_DEMO_IMAP_PASSWORD"


def _fresh_workdir(workdir: Path) -> None:
    if workdir.exists():
        if not (workdir / MARKER).exists():
            raise ComplaintsError(f"{workdir} exists and is not a demo directory; not touching it",
                                  hint="pass another --workdir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("created by `complaints demo`; safe to delete\n")


def demo_settings(workdir: Path, imap_host: str, imap_port: int, imap_user: str,
                  smtp_host: str, smtp_port: int) -> Settings:
    database = DatabaseSettings(url=f"sqlite:///{workdir / 'complaints.sqlite3'}")
    return Settings(
        source="(demo)", database=database,
        storage=StorageSettings(data_dir=str(workdir / "data")),
        smtp=SmtpServerSettings(host=smtp_host, port=smtp_port, tls="none"),
        ack=AckSettings(message_id_domain="demo.complaints.invalid"),
        mailboxes=(MailboxSettings(name="demo", host=imap_host, port=imap_port, tls="none",
                                   user=imap_user, password_env=PASSWORD_ENV,
                                   addresses=("complaints@example.com",)),),
    )


@click.command("demo")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("demo-data"), show_default=True,
              help="Where the demo keeps its SQLite database, evidence files and sent mail.")
def demo_command(workdir: Path) -> None:
    """Run the whole job on an embedded demo mailbox and print the cases it opened.

    Needs no server: pymap serves a mailbox loaded with examples/*.eml, aiosmtpd receives
    the acknowledgements. Afterwards the data stays in WORKDIR to explore.

    \b
    Example:
      complaints demo
      complaints -c demo-data/complaints.toml case show C-000001
    """
    examples = sorted(EXAMPLES_DIR.glob("*.eml"))
    if not examples:
        raise ComplaintsError(f"no sample mails in {EXAMPLES_DIR}",
                              hint="run the demo from a clone of the repository")
    workdir = workdir.resolve()
    _fresh_workdir(workdir)
    if logging.getLogger().level >= logging.INFO and not os.environ.get("COMPLAINTS_DEMO_VERBOSE"):
        logging.getLogger("processor").setLevel(logging.WARNING)  # the table says it all
    with demo_servers(workdir) as servers:
        os.environ[PASSWORD_ENV] = servers.imap_password
        loaded = load_examples(servers, "INBOX", examples)
        click.echo(f"demo mailbox {servers.imap_user}@{servers.imap_host}:{servers.imap_port} "
                   f"loaded with {loaded} sample complaints from {EXAMPLES_DIR.name}/")
        settings = demo_settings(workdir, servers.imap_host, servers.imap_port,
                                 servers.imap_user, servers.smtp_host, servers.smtp_port)
        upgrade_schema(open_database(settings.database.url))
        runtime = open_runtime(settings, with_rules=True)
        for stats in poll_all_once(runtime):
            click.echo(f"ingested: {stats.stored} stored, {stats.duplicates} duplicates, "
                       f"{stats.ignored} ignored, {stats.quarantined} quarantined")
        sent = drain_once(runtime.engine, settings)
        click.echo(f"automatic mails (acknowledgements, progress replies) sent to the SMTP "
                   f"sink: {sent.sent} "
                   f"(kept in {workdir.name}/outbox-sink/)\n")
    with session_scope(runtime.engine) as session:
        echo_case_table(session.scalars(select(Case).order_by(Case.id)).all())
        queued = session.scalar(select(func.count()).select_from(OutboxMail)
                                .where(OutboxMail.status != "sent"))
    (workdir / "complaints.toml").write_text(
        f'[database]\nurl = "{settings.database.url}"\n\n'
        f'[storage]\ndata_dir = "{settings.storage.data_dir}"\n', encoding="utf-8")
    command = sys.argv[0] if sys.argv[0].endswith("complaints") else "complaints"
    click.echo(f"\n{queued} outgoing mails not sent. Explore the cases with:\n"
               f"  {command} -c {workdir.name}/complaints.toml case show C-000001")


COMMANDS = [demo_command]
