"""`complaints run`: IDLE wake-up, SIGTERM, and reconnection after Dovecot restarts mid-batch."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from processor.runner import QUIET_RECONNECT_AFTER_SECONDS
from tests.deployment import Deployment
from tests.mailgen import make_mails
from tests.servers import DovecotServer, ImapAccount


def wait_until(condition, timeout: float = 120.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Wait for a state change we can only observe by asking (the database, the server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)  # between questions: asking faster takes CPU from the service watched
    raise AssertionError(f"timed out waiting for {what}")


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


def test_run_wakes_on_new_mail_with_idle_and_stops_on_sigterm(
    deployment: Deployment, imap_account: ImapAccount
) -> None:
    # Left two days ago by a process killed in the middle of a batch: swept at start.
    leftover = deployment.root / "data" / "blobs" / "ab" / ".tmp-4242-1-0"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a mail")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(leftover, (two_days_ago, two_days_ago))
    proc = deployment.popen(["run"], imap_account.password)
    try:
        wait_until(
            lambda: deployment.scalar("SELECT count(*) FROM poll_runs") or 0, what="the first poll"
        )
        wait_until(lambda: not leftover.exists(), timeout=30, what="the leftover swept")
        imap_account.append("INBOX", make_mails(1))
        wait_until(
            lambda: deployment.scalar("SELECT count(*) FROM cases") == 1,
            timeout=30,
            what="the case from the new mail",
        )
    finally:
        code, stderr = _stop(proc)
    assert code == 0, stderr
    assert "stopped cleanly" in stderr
    assert "removed 1 leftover temporary file(s)" in stderr
    assert imap_account.count("Processed") == 1


def test_dovecot_restart_mid_batch_loses_and_doubles_nothing(
    tmp_path: Path, db_url: str, private_dovecot: DovecotServer
) -> None:
    # A Dovecot of its own: restarting the shared one would cut off the tests running beside.
    dovecot, imap_account = private_dovecot, private_dovecot.account()
    deployment = Deployment(tmp_path, db_url,
                            {"complaints": (imap_account, ["complaints@example.com"])})
    deployment.upgrade()
    n = 200
    deployment.processing["batch_size"] = 10
    deployment.write()
    imap_account.append("INBOX", make_mails(n))
    proc = deployment.popen(["run"], imap_account.password)
    try:
        wait_until(
            lambda: (
                (deployment.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") or 0)
                >= 40
            ),
            what="ingest to be under way",
        )
        dovecot.restart()
        wait_until(
            lambda: (
                deployment.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == n
                and imap_account.count("INBOX") == 0
            ),
            timeout=180,
            what="the backlog",
        )
        # One mail more, filed only over a restored connection: the backlog may be done
        # before the restart bites (then the outage hits the IDLE that follows).
        imap_account.append("INBOX", make_mails(1, seed=99))
        wait_until(
            lambda: deployment.scalar("SELECT count(*) FROM messages WHERE direction = 'in'")
            == n + 1,
            timeout=60,
            what="a mail after the restart",
        )
    finally:
        code, stderr = _stop(proc)
    assert code == 0, stderr
    assert (
        deployment.scalar("SELECT count(DISTINCT dedup_key) FROM messages WHERE direction = 'in'")
        == n + 1
    )
    assert deployment.scalar("SELECT count(*) FROM cases") == n + 1
    assert imap_account.count("Processed") == n + 1
    outages = stderr.count("retrying with backoff")
    restored = stderr.count("connection restored")
    # The restart may land between two polls (nothing to report) or during one; each outage
    # is logged once, and each logged outage ends with one "restored" line.
    assert outages == restored == 1, stderr
    deployment.close()


def test_an_idle_connection_the_server_ends_is_reopened_quietly(
    deployment: Deployment, imap_account: ImapAccount, dovecot: DovecotServer
) -> None:
    """Servers end idle connections now and then; that is no outage to log or record."""
    proc = deployment.popen(["run"], imap_account.password)
    try:
        wait_until(lambda: deployment.scalar("SELECT count(*) FROM poll_runs") or 0,
                   what="the first poll")
        # Idle for longer than a connection that ends at once (which is treated as a fault).
        time.sleep(QUIET_RECONNECT_AFTER_SECONDS + 1)
        dovecot.kick(imap_account.user)
        imap_account.append("INBOX", make_mails(1))
        wait_until(lambda: deployment.scalar("SELECT count(*) FROM cases") == 1, timeout=30,
                   what="the mail filed after the reconnect")
    finally:
        code, stderr = _stop(proc)
    assert code == 0, stderr
    assert "the server ended the idle connection" in stderr
    assert "retrying with backoff" not in stderr
    assert deployment.scalar("SELECT count(*) FROM poll_runs WHERE last_error IS NOT NULL") == 0
