"""SIGKILL at many points of a 200-mail ingest, restart each time: none lost, none doubled."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deployment import Deployment
from tests.mailgen import make_mails
from tests.servers import ImapAccount

N = 200  # ten batches of 20: every kill below lands with mail filed before and after it


def _finish(dep: Deployment, account: ImapAccount) -> None:
    """Restart until a poll completes, then check the invariant."""
    dep.command(["poll", "--once"], account.password)
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == N
    assert dep.scalar("SELECT count(DISTINCT dedup_key) FROM messages WHERE direction = 'in'") == N
    assert dep.scalar("SELECT count(*) FROM cases") == N
    assert dep.scalar("SELECT count(DISTINCT reference) FROM cases") == N
    assert dep.scalar("SELECT count(*) FROM quarantine") == 0
    assert account.count("INBOX") == 0
    assert account.count("Processed") == N


@pytest.mark.parametrize(
    "point", ["mid-batch:50", "before-commit:2", "after-commit:3", "after-move:3"]
)
def test_killed_at_a_failpoint_then_restarted(
    tmp_path: Path, sqlite_url: str, imap_account: ImapAccount, point: str
) -> None:
    # On SQLite only: the commit/move protocol is the same on both databases, and PostgreSQL
    # gets the external SIGKILL test below (CI time is kept for what differs).
    deployment = Deployment(
        tmp_path, sqlite_url, {"complaints": (imap_account, ["complaints@example.com"])}
    )
    deployment.upgrade()
    deployment.processing["batch_size"] = 20
    deployment.write()
    imap_account.append("INBOX", make_mails(N))
    # Kill the same way three times in a row (each run dies at its n-th hit), then finish.
    for _ in range(3):
        assert _run_with_failpoint(deployment, imap_account, point) == -signal.SIGKILL
    _finish(deployment, imap_account)
    deployment.close()


def _run_with_failpoint(dep: Deployment, account: ImapAccount, point: str) -> int:
    env = dep.env(account.password)
    env["COMPLAINTS_FAILPOINT"] = point
    proc = subprocess.run(
        [sys.executable, "-m", "processor", "poll", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return proc.returncode


def test_killed_from_outside_at_several_moments(
    deployment: Deployment, imap_account: ImapAccount
) -> None:
    """SIGKILL sent by another process whenever the store has grown past a threshold."""
    deployment.processing["batch_size"] = 20
    deployment.write()
    imap_account.append("INBOX", make_mails(N))
    for threshold in (12, 68, 132, 184):
        proc = deployment.popen(["poll", "--once"], imap_account.password)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (
                deployment.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") or 0
            ) >= threshold:
                break
            time.sleep(0.1)  # between questions: asking faster takes CPU from the poll watched
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    _finish(deployment, imap_account)
