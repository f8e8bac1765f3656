"""A mailbox reached with an OAuth 2.0 access token (XOAUTH2), as Office 365 and Gmail ask.

Dovecot checks each token against a userinfo endpoint on loopback (tests.servers.TokenIssuer),
as a provider's server checks it against the provider. The desk gets its token from the
configured command at each connection; here `cat` of a file the test writes, as a token
helper's cache would be.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.deployment import Deployment
from tests.ingest.test_mailbox_behaviour import _status_of
from tests.mailgen import make_mails
from tests.servers import DovecotServer, ImapAccount, TokenIssuer

NO_PASSWORD = "not-used-with-a-token"


def _desk(tmp_path: Path, sqlite_url: str, account: object, token_file: Path,
          **settings: object) -> Deployment:
    dep = Deployment(tmp_path, sqlite_url, {"complaints": (account, ["complaints@example.com"])},
                     mailbox_settings={"complaints": {
                         "auth": "xoauth2",
                         "oauth2_token_command": ["cat", str(token_file)], **settings}}).write()
    dep.upgrade()
    return dep


def _token_desk(tmp_path: Path, sqlite_url: str, server: DovecotServer,
                token: Callable[[ImapAccount], str], mails: list[bytes]
                ) -> tuple[Deployment, ImapAccount, Path]:
    """A new account holding `mails`, and a desk logging in to it with the token
    `token(account)`, kept in a file the token command prints."""
    account = server.account()
    token_file = tmp_path / "token"
    token_file.write_text(token(account) + "\n")
    account.append("INBOX", mails)
    return _desk(tmp_path, sqlite_url, account, token_file), account, token_file


def test_a_mailbox_is_polled_with_a_fresh_access_token_at_each_connection(
    tmp_path: Path, sqlite_url: str, dovecot_oauth2: tuple[DovecotServer, TokenIssuer]
) -> None:
    server, issuer = dovecot_oauth2
    dep, account, token_file = _token_desk(tmp_path, sqlite_url, server,
                                           lambda account: issuer.issue(account.user),
                                           make_mails(2, seed=91))
    first = token_file.read_text().strip()

    result = dep.command(["-vv", "poll", "--once"], NO_PASSWORD)
    assert "complaints: fetched 2, stored 2" in result.stdout, result.stdout + result.stderr
    assert first in issuer.asked
    assert first not in result.stdout + result.stderr  # -vv traces commands, never the token
    log = server.log_path.read_text(errors="replace")
    assert f"user=<{account.user}>, method=XOAUTH2" in log

    # The helper refreshed the token; the provider no longer takes the old one.
    issuer.revoke(first)
    second = issuer.issue(account.user)
    token_file.write_text(second + "\n")
    account.append("INBOX", make_mails(1, seed=92))
    result = dep.command(["poll", "--once"], NO_PASSWORD)
    assert "complaints: fetched 1, stored 1" in result.stdout, result.stdout + result.stderr
    assert issuer.asked[-1] == second


def test_a_refused_token_or_a_failing_command_is_reported_and_nothing_is_touched(
    tmp_path: Path, sqlite_url: str, dovecot_oauth2: tuple[DovecotServer, TokenIssuer]
) -> None:
    server, issuer = dovecot_oauth2
    dep, account, token_file = _token_desk(tmp_path, sqlite_url, server,
                                           lambda _: "tok-never-issued", make_mails(1, seed=93))

    result = dep.command(["poll", "--once"], NO_PASSWORD, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "complaints: not polled: logging in to" in result.stdout, result.stdout
    assert "the server refused the access token" in result.stdout
    assert "hint: run the token command by hand" in result.stdout
    assert "Traceback" not in result.stderr
    status = _status_of(dep.command(["status"], NO_PASSWORD).stdout, "complaints")
    assert "refused the access token" in status["last error"], status

    token_file.unlink()  # the helper's cache is gone: `cat` fails
    result = dep.command(["poll", "--once"], NO_PASSWORD, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "not polled: the token command exited 1: cat:" in result.stdout, result.stdout
    assert account.count("INBOX") == 1  # nothing was taken

    token_file.write_text(issuer.issue(account.user) + "\n")
    result = dep.command(["poll", "--once"], NO_PASSWORD)
    assert "complaints: fetched 1, stored 1" in result.stdout, result.stdout


def test_token_settings_that_cannot_work_are_named(
    tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
    dovecot_oauth2: tuple[DovecotServer, TokenIssuer]
) -> None:
    account = dovecot_oauth2[0].account()
    dep = _desk(tmp_path, sqlite_url, account, tmp_path / "token",
                oauth2_token_command=["no-such-token-helper", "access"])
    result = dep.command(["poll", "--once"], NO_PASSWORD, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no program 'no-such-token-helper'" in result.stderr
    assert "mailbox.complaints.oauth2_token_command" in result.stderr
    assert "Traceback" not in result.stderr

    dep.mailbox_settings["complaints"] = {"auth": "xoauth2"}
    dep.write()
    result = dep.command(["poll", "--once"], NO_PASSWORD, check=False)
    assert result.returncode == 2 and "needs the command that prints an access token" in \
        result.stderr, result.stderr

    # A server that offers no XOAUTH2 (the plain test Dovecot) is told apart from a bad token.
    plain = dovecot.account()
    (tmp_path / "plain").mkdir()
    (tmp_path / "token").write_text("tok-x\n")
    other = _desk(tmp_path / "plain", f"sqlite:///{tmp_path / 'plain.sqlite3'}", plain,
                  tmp_path / "token")
    result = other.command(["poll", "--once"], NO_PASSWORD, check=False)
    assert result.returncode == 1
    assert "the server offers no AUTHENTICATE XOAUTH2" in result.stdout, result.stdout
