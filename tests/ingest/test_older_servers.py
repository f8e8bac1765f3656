"""A mailbox on an older IMAP server: without MOVE, the desk copies, marks and expunges exactly
its own UIDs; without UIDPLUS too, it only marks them (see MailboxConnection.move); without
IDLE, `run` polls every `poll_interval_seconds`."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.deployment import Deployment
from tests.ingest.test_service import wait_until
from tests.mailgen import make_mails
from tests.servers import DovecotServer

N = 12


def test_poll_files_and_clears_the_inbox_without_move(tmp_path: Path, sqlite_url: str,
                                                      older_dovecot: DovecotServer) -> None:
    account = older_dovecot.account()
    with account.connect() as client:
        announced = set(client.capabilities())
    assert b"MOVE" not in announced
    has_uidplus = b"UIDPLUS" in announced
    mails = make_mails(N, seed=21)
    assert account.append("INBOX", mails) == N
    dep = Deployment(tmp_path, sqlite_url,
                     {"complaints": (account, ["complaints@example.com"])}).write()
    dep.upgrade()

    result = dep.command(["poll", "--once"], account.password)
    assert f"fetched {N}, stored {N}" in result.stdout, result.stdout + result.stderr
    assert sorted(account.fetch_all("Processed")) == sorted(mails)
    with account.connect() as client:
        client.select_folder("INBOX", readonly=True)
        left = client.get_flags(client.search("ALL"))
    if has_uidplus:
        assert left == {}  # expunged: exactly the UIDs copied
    else:
        # Only marked: a plain EXPUNGE would also remove what others marked deleted.
        assert len(left) == N and all(b"\\Deleted" in flags for flags in left.values())

    again = dep.command(["poll", "--once"], account.password)
    assert "fetched 0, stored 0" in again.stdout, again.stdout + again.stderr
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == N
    assert account.count("Processed") == N


def test_run_polls_at_its_interval_where_the_server_has_no_idle(
        tmp_path: Path, sqlite_url: str, dovecot_without_idle: DovecotServer) -> None:
    account = dovecot_without_idle.account()
    with account.connect() as client:
        assert b"IDLE" not in client.capabilities()
    dep = Deployment(tmp_path, sqlite_url, {"complaints": (account, ["complaints@example.com"])},
                     processing={"poll_interval_seconds": 1}).write()
    dep.upgrade()
    proc = dep.popen(["run"], account.password)
    try:
        wait_until(lambda: (dep.scalar("SELECT count(*) FROM poll_runs") or 0) >= 1,
                   what="the first poll")
        account.append("INBOX", make_mails(3, seed=22))
        wait_until(lambda: dep.scalar("SELECT count(*) FROM cases") == 3, timeout=30,
                   what="the next interval's poll filing the new mail")
        assert (dep.scalar("SELECT count(*) FROM poll_runs") or 0) >= 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "stopped cleanly" in stderr
    assert account.count("Processed") == 3
