"""Folder leases and the worker registry, on SQLite and PostgreSQL (processor.db.leases)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from processor.coordination import gone_from_here, worker_name
from processor.db import (
    check_schema_current,
    is_concurrency_conflict,
    leases,
    open_database,
    session_scope,
)
from processor.db.models import OutboxMail, Worker
from processor.errors import LeaseLost
from processor.outbox import queue_mail

LONG = timedelta(minutes=5)
GONE = timedelta(0)  # a lease that has expired the moment it was taken


def test_a_held_lease_is_refused_to_others_and_renewed_for_its_holder(engine: Engine) -> None:
    first = leases.try_acquire(engine, "box", "INBOX", "host-a:1", LONG)
    assert first == leases.Lease("box", "INBOX", "host-a:1", 1)
    assert leases.try_acquire(engine, "box", "INBOX", "host-b:2", LONG) is None
    assert leases.try_acquire(engine, "box", "INBOX", "host-a:1", LONG) == first
    assert leases.renew(engine, [first], LONG) == []
    # Another folder of the same mailbox is a lease of its own.
    assert leases.try_acquire(engine, "box", "Other", "host-b:2", LONG) is not None


def test_an_expired_lease_is_taken_over_with_a_new_epoch_and_fences_the_old_holder(
        engine: Engine) -> None:
    old = leases.try_acquire(engine, "box", "INBOX", "host-a:1", GONE)
    assert old is not None
    new = leases.try_acquire(engine, "box", "INBOX", "host-b:2", LONG)
    assert new == leases.Lease("box", "INBOX", "host-b:2", 2)
    with pytest.raises(LeaseLost, match="taken over"), session_scope(engine) as session:
        leases.fence(session, old, LONG)
    assert leases.renew(engine, [old, new], LONG) == [old]
    with session_scope(engine) as session:
        leases.fence(session, new, LONG)  # the new holder commits as usual


def test_a_released_lease_is_free_at_once(engine: Engine) -> None:
    lease = leases.try_acquire(engine, "box", "INBOX", "host-a:1", LONG)
    assert lease is not None
    leases.release(engine, lease)
    taken = leases.try_acquire(engine, "box", "INBOX", "host-b:2", LONG)
    assert taken is not None and taken.epoch == 2
    with session_scope(engine) as session:
        view, = leases.lease_views(session)
    assert (view.holder, view.expired) == ("host-b:2", False)


def test_the_only_possible_worker_takes_a_live_lease(engine: Engine) -> None:
    """SQLite: the process lock proves the previous holder is gone (a restart after a kill)."""
    leases.try_acquire(engine, "box", "INBOX", "host-a:1", LONG)
    assert leases.try_acquire(engine, "box", "INBOX", "host-c:3", LONG, take_any=True) \
        == leases.Lease("box", "INBOX", "host-c:3", 2)
    assert leases.try_acquire(engine, "box", "INBOX", "host-b:2", LONG) is None


def test_outbox_claims_of_stopped_or_silent_workers_are_released(engine: Engine) -> None:
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        session.add_all([
            Worker(name="live:1", host="live", pid=1, started_at=now, heartbeat_at=now),
            Worker(name="silent:2", host="silent", pid=2, started_at=now,
                   heartbeat_at=now - timedelta(minutes=10)),
            Worker(name="stopped:3", host="stopped", pid=3, started_at=now, heartbeat_at=now,
                   stopped_at=now)])
        for worker in ("live:1", "silent:2", "stopped:3"):
            mail = EmailMessage()
            mail["From"], mail["To"] = "desk@example.com", "a@example.org"
            mail["Subject"], mail["Message-ID"] = "x", f"<{worker}@desk.example.com>"
            mail.set_content("x\n")
            row = queue_mail(session, mail, kind="notice", recipients=["a@example.org"], now=now)
            row.claimed_by, row.claimed_until = worker, now + LONG
    assert leases.release_claims_of_dead_workers(engine, timedelta(seconds=30)) == 2
    with session_scope(engine) as session:
        claimed = session.scalars(sa.select(OutboxMail.claimed_by)
                                  .where(OutboxMail.claimed_by.is_not(None))).all()
    assert claimed == ["live:1"]


def test_the_registry_records_start_heartbeat_and_stop(engine: Engine) -> None:
    leases.register_worker(engine, "host-a:7", "host-a", 7)
    leases.beat(engine, "host-a:7")
    with session_scope(engine) as session:
        worker, = leases.workers(session)
        assert worker.stopped_at is None and worker.heartbeat_at >= worker.started_at
    leases.mark_stopped(engine, "host-a:7")
    with session_scope(engine) as session:
        assert leases.workers(session)[0].stopped_at is not None
    # A worker stopped over a day ago (a cron poll) is forgotten when the next one registers.
    with session_scope(engine) as session:
        old = session.get(Worker, "host-a:7")
        assert old is not None
        old.stopped_at = old.heartbeat_at = datetime.now(UTC) - timedelta(days=2)
    leases.register_worker(engine, "host-b:8", "host-b", 8)
    with session_scope(engine) as session:
        assert [w.name for w in leases.workers(session)] == ["host-b:8"]


def test_only_postgresql_unique_violations_count_as_a_concurrent_write(engine: Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError) as caught, session_scope(engine) as session:
        session.add(Worker(name="twin:1", host="h", pid=1, started_at=datetime.now(UTC),
                           heartbeat_at=datetime.now(UTC)))
        session.flush()
        session.execute(sa.insert(Worker).values(name="twin:1", host="h", pid=1,
                                                 started_at=datetime.now(UTC),
                                                 heartbeat_at=datetime.now(UTC)))
    # SQLite has a single worker, so a unique violation there is a bug to quarantine, never a
    # race to retry.
    assert is_concurrency_conflict(caught.value) is (engine.dialect.name == "postgresql")


def test_a_process_is_presumed_gone_only_when_it_can_be_checked_from_here() -> None:
    child = subprocess.run([sys.executable, "-c", "from processor.coordination import "
                            "worker_name; print(worker_name())"],
                           capture_output=True, text=True, check=True)
    exited = child.stdout.strip()
    assert gone_from_here(exited)  # this host, this pid namespace, and the process has exited
    assert not gone_from_here(worker_name())  # ourselves
    host, pid, token = exited.split(":")
    assert not gone_from_here(f"other-host:{pid}:{token}")  # cannot be seen from here
    namespace, _, random_part = token.partition(".")
    assert not gone_from_here(f"{host}:{pid}:1{namespace}.{random_part}")  # another pid ns


def test_workers_starting_together_upgrade_the_schema_once(pg_url: str, tmp_path: Path) -> None:
    """Each container runs `complaints db upgrade` as it starts: on one fresh database at the
    same moment, they take turns and all succeed."""
    env = dict(os.environ, COMPLAINTS_DATABASE_URL=pg_url,
               COMPLAINTS_CONFIG=str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    upgrades = [subprocess.Popen([sys.executable, "-m", "processor", "db", "upgrade"], env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [(proc.wait(timeout=120), proc.stderr.read()) for proc in upgrades
               if proc.stderr is not None]
    assert [code for code, _ in results] == [0, 0, 0], results
    engine = open_database(pg_url)
    check_schema_current(engine)
    engine.dispose()
