"""A server that refuses to move filed mail: the desk files on, and moves it once allowed.

Dovecot with access control lists (the `dovecot_acl` instance) takes the right to add mail to
"Processed" away from the account, as an administrator or a shared mailbox's owner would. No
stand-in: the refusal is the server's own `NO [NOPERM]`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.config import MailboxSettings
from processor.imap import MailboxConnection, uid_sets
from tests.deployment import Deployment
from tests.ingest.test_mailbox_behaviour import _status_of
from tests.mailgen import make_mails
from tests.servers import DovecotServer

READ_ONLY = "lr"  # see the folder, read it; no "i": nothing may be added to it
ALL_RIGHTS = "lrwstipekxa"


def test_filing_goes_on_while_the_server_refuses_to_move_filed_mail(
    tmp_path: Path, sqlite_url: str, dovecot_acl: DovecotServer
) -> None:
    account = dovecot_acl.account()
    account.create("Processed")
    dovecot_acl.set_rights(account.user, "Processed", READ_ONLY)
    dep = Deployment(tmp_path, sqlite_url, {"complaints": (account, ["complaints@example.com"])}
                     ).write()
    dep.upgrade()
    first, later = make_mails(3, seed=71), make_mails(2, seed=72)

    account.append("INBOX", first)
    result = dep.command(["poll", "--once"], account.password, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "complaints: fetched 3, stored 3" in result.stdout, result.stdout + result.stderr
    assert "3 filed mails left in place" in result.stdout, result.stdout
    assert "NOPERM" in result.stdout and "let the account add mail to 'Processed'" in \
        result.stdout, result.stdout
    assert "error: the server refused to move filed mail in complaints" in result.stderr
    assert "Traceback" not in result.stderr
    assert account.count("INBOX") == 3 and account.count("Processed") == 0

    # Before, the poll stopped at the refused move of the mail already filed, and every poll
    # after it did the same: new complaints waited in the INBOX until someone noticed.
    account.append("INBOX", later)
    result = dep.command(["poll", "--once"], account.password, check=False)
    assert "complaints: fetched 2, stored 2" in result.stdout, result.stdout + result.stderr
    assert "5 filed mails left in place" in result.stdout, result.stdout
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == 5
    assert dep.scalar("SELECT count(*) FROM cases") == 5
    status = _status_of(dep.command(["status"], account.password).stdout, "complaints")
    assert "NOPERM" in status["last error"], status
    assert "errors 1" in status["last poll"], status
    check = dep.command(["status", "--check"], account.password, check=False)
    assert check.returncode == 2 and "NOPERM" in check.stdout, check.stdout

    dovecot_acl.set_rights(account.user, "Processed", ALL_RIGHTS)
    result = dep.command(["poll", "--once"], account.password)
    assert "complaints: fetched 0, stored 0" in result.stdout, result.stdout
    assert "left in place" not in result.stdout
    assert account.count("INBOX") == 0
    assert sorted(account.fetch_all("Processed")) == sorted(first + later)
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == 5
    status = _status_of(dep.command(["status"], account.password).stdout, "complaints")
    assert "errors 0" in status["last poll"], status
    check = dep.command(["status", "--check"], account.password, check=False)
    assert check.returncode == 0 and check.stdout.startswith("OK"), check.stdout


def test_flag_mode_on_a_folder_that_keeps_no_keyword_says_so(
    tmp_path: Path, sqlite_url: str, dovecot_acl: DovecotServer
) -> None:
    """Office 365 keeps no keyword of its own choosing in any folder, nor does Dovecot for an
    account that may not change flags: both answer OK to the STORE and drop the keyword, so
    "flag" mode marked nothing, said nothing, and counted every mail ever filed as still to
    be marked at each poll. The folder's PERMANENTFLAGS tell beforehand."""
    account = dovecot_acl.account()
    mails = make_mails(3, seed=73)
    account.append("INBOX", mails)
    dovecot_acl.set_rights(account.user, "INBOX", "lrs")  # read, and mark read: no "w"
    dep = Deployment(tmp_path, sqlite_url, {"complaints": (account, ["complaints@example.com"])},
                     processing={"after_processing": "flag"}).write()
    dep.upgrade()

    result = dep.command(["poll", "--once"], account.password, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "complaints: fetched 3, stored 3" in result.stdout, result.stdout + result.stderr
    assert ("3 filed mails left in place: the server keeps no keyword $Processed in 'INBOX' "
            "(its PERMANENTFLAGS: \\Seen)") in result.stdout, result.stdout
    assert 'after_processing = "move"' in result.stdout, result.stdout
    again = dep.command(["poll", "--once"], account.password, check=False)
    assert again.returncode == 1 and "complaints: fetched 0, stored 0" in again.stdout
    assert "the server keeps no keyword" in again.stdout, again.stdout
    assert "left in place" not in again.stdout  # nothing new; the mail is filed once
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == 3

    dovecot_acl.set_rights(account.user, "INBOX", ALL_RIGHTS)
    result = dep.command(["poll", "--once"], account.password)
    assert "complaints: fetched 0, stored 0" in result.stdout, result.stdout
    assert "keyword" not in result.stdout
    with account.connect() as client:
        client.select_folder("INBOX")
        assert client.search(["UNKEYWORD", "$Processed"]) == []
        assert len(client.search(["KEYWORD", "$Processed"])) == 3


def test_a_mailbox_the_account_may_only_read_is_filed_and_leave_mode_says_so(
    tmp_path: Path, sqlite_url: str, dovecot_acl: DovecotServer
) -> None:
    """A shared or journal mailbox the desk may only read. The server opens it read-only
    (imaplib took that for a lost connection, and every poll failed); the desk files it all
    the same and says nothing can be moved, until after_processing = "leave" says that is
    meant: then it changes nothing on the server, creates no folder, and files each mail once,
    by the cursor."""
    account = dovecot_acl.account()
    account.append("INBOX", make_mails(3, seed=74))
    dovecot_acl.set_rights(account.user, "INBOX", READ_ONLY)
    dep = Deployment(tmp_path, sqlite_url, {"complaints": (account, ["complaints@example.com"])}
                     ).write()
    dep.upgrade()

    result = dep.command(["poll", "--once"], account.password, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "complaints: fetched 3, stored 3" in result.stdout, result.stdout + result.stderr
    assert "3 filed mails left in place: the server lets the account only read 'INBOX'" in \
        result.stdout, result.stdout
    assert "connection lost" not in result.stdout + result.stderr

    other = dovecot_acl.account()  # a read-only mailbox of its own: no folder made in it
    other.append("INBOX", make_mails(2, seed=75))
    dovecot_acl.set_rights(other.user, "INBOX", READ_ONLY)
    (tmp_path / "leave").mkdir()
    dep = Deployment(tmp_path / "leave", f"sqlite:///{tmp_path / 'leave.sqlite3'}",
                     {"complaints": (other, ["complaints@example.com"])},
                     processing={"after_processing": "leave"}).write()
    dep.upgrade()
    result = dep.command(["poll", "--once"], other.password)
    assert "fetched 2, stored 2" in result.stdout, result.stdout + result.stderr
    assert "left in place" not in result.stdout and "WARNING" not in result.stderr
    again = dep.command(["poll", "--once"], other.password)
    assert "fetched 0, stored 0" in again.stdout, again.stdout
    with other.connect() as client:
        assert [name for _, _, name in client.list_folders()] == ["INBOX"]
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
        assert len(flags) == 2, flags
        assert not any(set(f) & {b"\\Seen", b"$Processed"} for f in flags.values()), flags
    check = dep.command(["status", "--check"], other.password, check=False)
    assert check.returncode == 0, check.stdout

    dovecot_acl.set_rights(other.user, "INBOX", ALL_RIGHTS)  # to deliver the next one
    other.append("INBOX", make_mails(1, seed=76))
    dovecot_acl.set_rights(other.user, "INBOX", READ_ONLY)
    result = dep.command(["poll", "--once"], other.password)
    assert "fetched 1, stored 1" in result.stdout, result.stdout
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == 3


def test_a_long_backlog_of_filed_mail_moves_in_one_go(
    dovecot_acl: DovecotServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """15,000 UIDs one by one make an 89 KB command line, which Dovecot refuses ("Too long
    argument"): the backlog a refusing server left behind could never be moved. As ranges,
    it is one short command; a UID in a gap (not ours: marked deleted) stays where it is."""
    account = dovecot_acl.account()
    account.create("Processed")
    tiny = [b"From: a@example.com\r\nSubject: %d\r\n\r\nx\r\n" % i for i in range(15_001)]
    account.append("INBOX", tiny)
    uids = account.uids("INBOX")
    not_ours = uids[7_000]
    with account.connect() as client:
        client.select_folder("INBOX")
        client.add_flags([not_ours], [b"\\Deleted"])
    ours = [uid for uid in uids if uid != not_ours]
    monkeypatch.setenv("COMPLAINTS_TEST_IMAP_PASSWORD", account.password)
    settings = MailboxSettings(name="complaints", host=account.host, port=account.port,
                               tls="none", user=account.user,
                               password_env="COMPLAINTS_TEST_IMAP_PASSWORD")
    with MailboxConnection(settings) as connection:
        connection.select("INBOX")
        connection.move(ours, "Processed")
    assert account.count("Processed") == 15_000
    assert account.uids("INBOX") == [not_ours]


def test_uid_sets_are_ranges_that_never_span_a_gap() -> None:
    assert list(uid_sets([])) == []
    assert list(uid_sets([4])) == [["4"]]
    assert list(uid_sets([5, 1, 2, 3, 7, 8, 10, 3])) == [["1:3", "5", "7:8", "10"]]
    assert list(uid_sets(range(1, 20_001))) == [["1:20000"]]
    assert list(uid_sets([1, 3, 5, 7, 8], max_runs=2)) == [["1", "3"], ["5", "7:8"]]
