"""The most verbose logging traces the IMAP commands and never the mail fetched with them.

imapclient asks imaplib for its own trace, which formats every server response, fetched mail
included, whether or not a logger prints it; processor.imap turns it off.
"""

from __future__ import annotations

from pathlib import Path

from tests.deployment import Deployment
from tests.servers import DovecotServer

# Only in the mail's body: the subject and addresses may appear in ordinary log lines.
BODY_MARKER = "the agent laughed at me, reference zq7-body-marker"
MAIL = (
    "From: Ann Lee <ann@customer.example>\r\nTo: complaints@example.com\r\n"
    "Subject: rude agent\r\nMessage-ID: <trace-1@customer.example>\r\n"
    "Date: Mon, 02 Nov 2026 10:00:00 +0800\r\n"
    f"Content-Type: text/plain; charset=us-ascii\r\n\r\nOn the call {BODY_MARKER}.\r\n"
).encode()


def test_debug_logging_traces_commands_without_the_mail(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer) -> None:
    account = dovecot.account()
    dep = Deployment(tmp_path, sqlite_url, {"complaints": (account, ["complaints@example.com"])}
                     ).write()
    dep.upgrade()
    account.append("INBOX", [MAIL])
    try:
        result = dep.command(["-vv", "poll", "--once"], account.password)
        assert "complaints: fetched 1, stored 1" in result.stdout
        log = result.stdout + result.stderr
        assert "imapclient" in log and "UID FETCH" in log.upper(), \
            "the IMAP commands are no longer traced at -vv"
        assert "zq7-body-marker" not in log, [line for line in log.splitlines() if "zq7" in line]
        assert "agent laughed" not in log
    finally:
        dep.close()
