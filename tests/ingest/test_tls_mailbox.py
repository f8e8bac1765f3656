"""A mailbox reached over TLS, as a real one is: IMAPS (the default, port 993) and STARTTLS,
against Dovecot with a self-signed certificate that the desk trusts through `ca_file`."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from processor.config import MailboxSettings
from processor.errors import MailboxError, MailboxUnavailable
from processor.imap import MailboxConnection
from tests.deployment import PASSWORD_ENV, Deployment
from tests.ingest.test_service import wait_until
from tests.mailgen import make_mails
from tests.servers import DovecotServer, ImapAccount

DESK = ["complaints@example.com"]


def _tls_deployment(tmp_path: Path, sqlite_url: str, server: DovecotServer,
                    account: ImapAccount, **mailbox: object) -> Deployment:
    dep = Deployment(tmp_path, sqlite_url, {"complaints": (account, DESK)},
                     mailbox_settings={"complaints": mailbox}).write()
    dep.upgrade()
    return dep


def _tls_logins(server: DovecotServer, user: str) -> list[str]:
    """Dovecot's login lines for `user` that say the session was encrypted."""
    return [line for line in server.log_path.read_text(errors="replace").splitlines()
            if "Login: user=<" + user + ">" in line and "TLS" in line]


@pytest.mark.parametrize("mode", ["implicit", "starttls"])
def test_poll_over_tls_with_the_ca_file(tmp_path: Path, sqlite_url: str,
                                        dovecot_tls: DovecotServer, mode: str) -> None:
    account = dovecot_tls.account()
    assert account.append("INBOX", make_mails(20, seed=5)) == 20
    assert dovecot_tls.tls_port is not None
    port = dovecot_tls.tls_port if mode == "implicit" else dovecot_tls.port
    dep = _tls_deployment(tmp_path, sqlite_url, dovecot_tls, account, tls=mode, port=port,
                          ca_file=str(dovecot_tls.ca_file))
    result = dep.command(["poll", "--once"], account.password)
    assert "fetched 20, stored 20" in result.stdout, result.stdout + result.stderr
    assert account.count("INBOX") == 0
    assert account.count("Processed") == 20
    assert _tls_logins(dovecot_tls, account.user), "the desk's session was not encrypted"


def test_an_untrusted_certificate_is_refused_and_says_what_to_do(
        tmp_path: Path, sqlite_url: str, dovecot_tls: DovecotServer) -> None:
    account = dovecot_tls.account()
    assert account.append("INBOX", make_mails(3, seed=6)) == 3
    dep = _tls_deployment(tmp_path, sqlite_url, dovecot_tls, account, tls="implicit",
                          port=dovecot_tls.tls_port)  # no ca_file: the system's CAs
    result = dep.command(["poll", "--once"], account.password, check=False)
    assert result.returncode != 0
    assert "certificate is not trusted" in result.stderr, result.stderr
    assert "ca_file" in result.stderr and "Traceback" not in result.stderr
    assert account.count("INBOX") == 3  # nothing was taken

    # The escape hatch for a network one trusts.
    dep.mailbox_settings["complaints"]["verify_certificate"] = False
    dep.write()
    result = dep.command(["poll", "--once"], account.password)
    assert "fetched 3, stored 3" in result.stdout, result.stdout + result.stderr


def _imaps(server: DovecotServer, account: ImapAccount) -> MailboxSettings:
    assert server.tls_port is not None
    return MailboxSettings(name="complaints", host=account.host, port=server.tls_port,
                           tls="implicit", ca_file=str(server.ca_file), user=account.user,
                           password_env=PASSWORD_ENV, addresses=tuple(DESK))


def test_idle_over_tls_sees_new_mail_and_waits_quietly(dovecot_tls: DovecotServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    account = dovecot_tls.account()
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    with MailboxConnection(_imaps(dovecot_tls, account)).connect() as connection:
        connection.select("INBOX")
        # Nothing arrives: the wait ends at its timeout, without error, the connection usable.
        assert connection.wait_for_change(timeout=1.5, stop_check_seconds=0.5) is False
        appended = threading.Timer(0.2, account.append, ("INBOX", make_mails(1, seed=7)))
        appended.start()
        try:
            assert connection.wait_for_change(timeout=10, stop_check_seconds=0.5) is True
        finally:
            appended.join()
        assert len(connection.uids_after(0)) == 1



def test_a_connection_dropped_while_idling_over_tls_is_reported_at_once(
        dovecot_tls: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    account = dovecot_tls.account()
    monkeypatch.setenv(PASSWORD_ENV, account.password)
    connection = MailboxConnection(_imaps(dovecot_tls, account)).connect()
    try:
        connection.select("INBOX")
        kicked = threading.Timer(0.3, dovecot_tls.kick, (account.user,))
        kicked.start()
        started = time.monotonic()
        with pytest.raises(MailboxUnavailable, match="waiting with IDLE"):
            connection.wait_for_change(timeout=60, stop_check_seconds=10)
        kicked.join()
        # Within a stop-check step, not at the timeout: the runner reconnects at once.
        assert time.monotonic() - started < 10
    finally:
        connection.close()


@pytest.mark.parametrize("right", [True, False])
def test_a_password_beyond_ascii_logs_in_with_sasl_plain(dovecot_tls: DovecotServer,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         right: bool) -> None:
    """imaplib refuses such a password for LOGIN (UnicodeEncodeError, a traceback); the
    desk authenticates with PLAIN instead, in UTF-8, over STARTTLS as a real server wants."""
    password = os.environ.get("DOVECOT_TEST_UTF8_PASSWORD", "pässwörd-密码")
    monkeypatch.setenv(PASSWORD_ENV, password if right else "wrong-密码")
    account = dovecot_tls.account()
    settings = MailboxSettings(name="complaints", host=account.host, port=dovecot_tls.port,
                               tls="starttls", ca_file=str(dovecot_tls.ca_file),
                               user=account.user, password_env=PASSWORD_ENV,
                               addresses=tuple(DESK))
    if right:
        with MailboxConnection(settings).connect() as connection:
            assert connection.select("INBOX").exists == 0
    else:
        with pytest.raises(MailboxError, match="server said"):
            MailboxConnection(settings).connect()


def test_run_records_why_it_cannot_reach_a_mailbox(tmp_path: Path, sqlite_url: str,
                                                   dovecot_tls: DovecotServer) -> None:
    """The service keeps retrying; the log gives the hint, and `complaints status` the reason."""
    untrusted, refused = dovecot_tls.account(), dovecot_tls.account()
    (tmp_path / "wrong-password").write_text("not-the-password\n")
    dep = Deployment(
        tmp_path, sqlite_url,
        {"untrusted": (untrusted, ["a@example.com"]), "refused": (refused, ["b@example.com"])},
        mailbox_settings={
            "untrusted": {"tls": "implicit", "port": dovecot_tls.tls_port},
            "refused": {"tls": "starttls", "ca_file": str(dovecot_tls.ca_file),
                        "password_env": "", "password_file": str(tmp_path / "wrong-password")}},
    ).write()
    dep.upgrade()
    proc = dep.popen(["run"], untrusted.password)
    try:
        wait_until(lambda: dep.scalar("SELECT count(DISTINCT mailbox) FROM poll_runs "
                                      "WHERE last_error IS NOT NULL") == 2,
                   timeout=60, what="both failures recorded")
        status = dep.command(["status"], untrusted.password).stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "certificate is not trusted" in status and "server said" in status, status
    assert "hint: set ca_file" in stderr, stderr
    assert "Traceback" not in stderr
