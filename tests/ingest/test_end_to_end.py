"""500 varied mails through `complaints poll --once` against real IMAP servers."""

from __future__ import annotations

from pathlib import Path

from tests.deployment import Deployment
from tests.mailgen import make_mails
from tests.servers import ImapAccount, PymapServer

N = 500


def _assert_all_ingested(dep: Deployment, account: ImapAccount, password: str) -> None:
    result = dep.command(["poll", "--once"], password)
    assert f"stored {N}" in result.stdout, result.stdout + result.stderr
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == N
    assert dep.scalar("SELECT count(*) FROM cases") == N
    assert dep.scalar("SELECT count(DISTINCT reference) FROM cases") == N
    # Each case's line is logged, none lost by holding a batch's lines until its commit.
    assert result.stderr.count("opened case C-") == N, result.stderr[-2000:]
    assert dep.scalar("SELECT count(*) FROM quarantine") == 0
    assert account.count("INBOX") == 0
    assert account.count("Processed") == N
    # A second poll finds nothing new and changes nothing.
    again = dep.command(["poll", "--once"], password)
    assert "fetched 0, stored 0" in again.stdout
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == N
    assert account.count("Processed") == N


def test_500_mails_from_dovecot_become_500_cases(
    deployment: Deployment, imap_account: ImapAccount
) -> None:
    assert imap_account.append("INBOX", make_mails(N)) == N
    _assert_all_ingested(deployment, imap_account, imap_account.password)
    # Every raw mail is kept byte for byte in the content-addressed store.
    blobs = [p for p in (deployment.root / "data" / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) >= N
    assert not [p for p in blobs if p.name.startswith(".tmp")]


def test_500_mails_from_pymap(tmp_path: Path, sqlite_url: str, pymap_server: PymapServer) -> None:
    """The same end-to-end run against a second IMAP implementation."""
    pymap_server.reset()
    dep = Deployment(
        tmp_path, sqlite_url, {"complaints": (pymap_server, ["complaints@example.com"])}
    ).write()
    dep.upgrade()
    assert pymap_server.append("INBOX", make_mails(N, seed=11)) == N
    _assert_all_ingested(dep, pymap_server, pymap_server.password)
