"""`complaints init`: print a commented sample configuration."""

from __future__ import annotations

from pathlib import Path

import click

SAMPLE = '''\
# complaint-processor configuration. Every key can be overridden by an environment variable
# COMPLAINTS_<SECTION>_<KEY> (for a mailbox: COMPLAINTS_MAILBOX_<NAME>_<KEY>), e.g.
# COMPLAINTS_DATABASE_URL=postgresql://complaints@db/complaints

[database]
# SQLite (default, one process) or PostgreSQL: postgresql://user@host:5432/dbname
url = "sqlite:///var/complaints.sqlite3"

[storage]
# Raw mails and attachments, content-addressed by SHA-256. Back it up with the database.
data_dir = "var/data"

[processing]
batch_size = 200                 # mails fetched and committed per transaction
poll_interval_seconds = 60       # when the server has no IDLE
idle_timeout_seconds = 1500      # re-issue IDLE at least this often (RFC 2177: < 29 min)
max_message_bytes = 26214400     # larger mails are quarantined unparsed (25 MB)
after_processing = "move"        # "move" to processed_folder, "flag" with processed_flag,
                                 # or "leave" (read-only access: nothing changed on the server)
processed_flag = "$Processed"
case_prefix = "C-"
case_width = 6                   # C-000001
reconnect_max_seconds = 300      # cap of the exponential reconnect backoff
rules_dir = ""                   # your rules, searched after the built-in rules/
templates_dir = ""               # your templates, searched before the built-in templates/

[limits]
# Against hostile mail; a violated limit is recorded as a defect, never a crash.
max_depth = 20
max_parts = 500
max_headers = 1000
max_header_length = 65536
max_attachments = 200
max_attachment_bytes = 52428800
max_text_chars = 1000000
max_html_bytes = 2097152
max_detect_bytes = 65536

# One table per monitored mailbox; add more for other addresses or brands.
[mailbox.complaints]
host = "imap.example.com"
port = 993
tls = "implicit"                 # "implicit" (IMAPS), "starttls", or "none" (127.0.0.1 only)
verify_certificate = true
ca_file = ""                     # a private CA bundle, if your server uses one
user = "complaints@example.com"
password_env = "COMPLAINTS_IMAP_PASSWORD"   # or: password_file = "/run/secrets/imap"
# Office 365, Gmail: an OAuth 2.0 access token instead, printed by a helper (see README)
# auth = "xoauth2"
# oauth2_token_command = ["oama", "access", "complaints@example.com"]
folder = "INBOX"
processed_folder = "Processed"
quarantine_folder = "Quarantine"
addresses = ["complaints@example.com"]      # the addresses this mailbox receives

# Where acknowledgements and staff notices are submitted. Without a host they wait in the
# outbox (`complaints outbox list`) and go out once one is set.
[smtp]
host = "smtp.example.com"
port = 587
tls = "starttls"                 # "starttls", "implicit" (465), or "none" (127.0.0.1 only)
verify_certificate = true
ca_file = ""                     # a private CA bundle, if your server uses one
user = "complaints@example.com"
password_env = "COMPLAINTS_SMTP_PASSWORD"
envelope_sender = ""             # empty: the null sender <>, so no robot ever answers ours

[ack]
message_id_domain = "example.com"   # your domain: our Message-IDs and loop checks use it
installation_id = "complaints"      # one per installation that shares a mailbox
'''


@click.command("init")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of standard output (never overwrites).")
def init_command(output: Path | None) -> None:
    """Print a commented sample configuration.

    \b
    Example:
      complaints init -o complaints.toml
    """
    if output is None:
        click.echo(SAMPLE, nl=False)
        return
    if output.exists():
        raise click.ClickException(f"{output} exists; not overwriting it. "
                                   "Choose another name or remove it first.")
    output.write_text(SAMPLE, encoding="utf-8")
    click.echo(f"wrote {output}; set the password variable it names, then run "
               "`complaints db upgrade`")


COMMANDS = [init_command]
