"""Several `complaints run` processes on one PostgreSQL database, with Dovecot and a real SMTP
server: each folder polled by one worker at a time, a dead or frozen worker's folder taken
over, nothing lost, nothing doubled, threads and limits right under concurrency."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path

import pytest

from processor.db import open_database, session_scope
from processor.outbox import queue_mail
from tests.deployment import Deployment
from tests.servers import DovecotServer, ImapAccount, SmtpSink
from tests.workers.conftest import WorkerProcess, Workers, wait_until

TAKEOVER = 6  # seconds; workers.takeover_seconds in these deployments
# Queued mail for three workers to share: three claims of 100 (processor.outbox's batch).
N_OUTBOX = 300


def complaint(index: int, *, to: str = "complaints@example.com", sender: str | None = None,
              message_id: str | None = None, in_reply_to: str | None = None,
              subject: str | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender or f"Customer {index} <customer{index}@mail.example.org>"
    mail["To"] = to
    mail["Subject"] = subject or f"Calls keep dropping, line {index}"
    mail["Date"] = format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    mail["Message-ID"] = message_id or f"<complaint-{index}@mail.example.org>"
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    mail.set_content(f"Our calls to your hotline dropped again today (report {index}).\n")
    return mail.as_bytes()


def desk(tmp_path: Path, pg_url: str, smtp: SmtpSink | None,
         mailboxes: dict[str, ImapAccount], name: str = "desk", **ack: object) -> Deployment:
    """A configuration file over one shared database and data directory."""
    root = tmp_path / name
    root.mkdir(exist_ok=True)
    dep = Deployment(root, pg_url, {box: (account, [f"{box}@example.com"])
                                    for box, account in mailboxes.items()})
    dep.processing["batch_size"] = 50
    dep.sections["workers"] = {"takeover_seconds": TAKEOVER}
    if smtp is not None:
        dep.use_smtp(smtp.host, smtp.port, **{"per_sender": 100, "global_per_minute": 100_000,
                                              **ack})
    dep.write()
    # All configurations of one test share one data directory, as hosts share a volume.
    text = dep.config_path.read_text().replace(str(root / "data"), str(tmp_path / "data"))
    dep.config_path.write_text(text)
    return dep


def message_ids(received: list) -> Counter[str]:  # type: ignore[type-arg]
    parser = BytesHeaderParser()
    return Counter(str(parser.parsebytes(mail.content)["Message-ID"]) for mail in received)


def polls_never_overlap(dep: Deployment, mailbox: str) -> None:
    """A folder is polled by one worker at a time: polls by different workers never overlap.

    A poll that failed is left out: a frozen worker's poll spans its successor's, but fails
    at its first statement after it wakes (the test of that checks so)."""
    engine = open_database(dep.db_url)
    with engine.connect() as conn:
        runs = conn.exec_driver_sql(
            "SELECT worker, started_at, finished_at FROM poll_runs WHERE mailbox = %(m)s "
            "AND worker IS NOT NULL AND last_error IS NULL ORDER BY started_at",
            {"m": mailbox}).all()
    engine.dispose()
    assert runs, "no poll was recorded"
    for earlier, later in zip(runs, runs[1:], strict=False):
        if earlier.worker != later.worker and earlier.finished_at is not None:
            assert later.started_at >= earlier.finished_at, (earlier, later)


def wait_for_backlog(dep: Deployment, account: ImapAccount, n: int, timeout: float) -> None:
    """Every mail filed, every outgoing mail sent, the folder empty."""
    wait_until(lambda: dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == n
               and dep.scalar("SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0
               and account.count("INBOX") == 0, timeout=timeout, what="the backlog")


def each_mail_once(dep: Deployment, account: ImapAccount, smtp: SmtpSink, n: int) -> None:
    """Stored once, a case each, moved once, acknowledged once."""
    assert dep.scalar("SELECT count(DISTINCT dedup_key) FROM messages "
                      "WHERE direction = 'in'") == n
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == n
    assert dep.scalar("SELECT count(*) FROM message_copies") == n
    assert dep.scalar("SELECT count(*) FROM cases") == n
    assert account.count("Processed") == n
    assert dep.scalar("SELECT count(*) FROM outbox WHERE kind = 'ack'") == n
    assert dep.scalar("SELECT count(*) FROM outbox WHERE case_id IS NULL") == 0
    sent = message_ids(smtp.received)
    assert len(sent) == n and set(sent.values()) == {1}, sent.most_common(3)


# --- three workers, one mailbox --------------------------------------------------------------

def test_three_workers_on_one_mailbox_store_and_answer_every_mail_once(
        tmp_path: Path, pg_url: str, imap_account: ImapAccount, smtp_server: SmtpSink,
        workers: Workers) -> None:
    n = 300  # six batches: enough for the folder to change hands and for both to stand by
    dep = desk(tmp_path, pg_url, smtp_server, {"complaints": imap_account})
    dep.upgrade()
    imap_account.append("INBOX", [complaint(i) for i in range(n)])
    started = [workers.start(dep, imap_account.password) for _ in range(3)]

    wait_for_backlog(dep, imap_account, n, timeout=900)
    assert [worker.stop() for worker in started] == [0, 0, 0], [w.log()[-3000:] for w in started]
    each_mail_once(dep, imap_account, smtp_server, n)
    polls_never_overlap(dep, "complaints")
    # The folder had one holder at a time; the other two stood by (and said so).
    assert sum("standing by" in worker.log() for worker in started) >= 2


# --- a worker dies, or freezes, mid-batch --------------------------------------------------------

def _holder(dep: Deployment) -> object:
    return dep.scalar("SELECT holder FROM folder_leases WHERE mailbox = 'complaints' "
                      "AND expires_at > now()")


def holder_and_heir(tmp_path: Path, pg_url: str, account: ImapAccount, smtp: SmtpSink,
                    workers: Workers, n: int, failpoint: str,
                    ) -> tuple[Deployment, WorkerProcess, WorkerProcess]:
    """n mails; a first worker that holds the folder and will hit `failpoint`, then a second.

    The first sends no mail: a kill between the SMTP server's acceptance and the commit that
    records it would send that one mail again, by design (at-least-once delivery); these
    tests are about the mailbox."""
    dep = desk(tmp_path, pg_url, smtp, {"complaints": account})
    dep.upgrade()
    account.append("INBOX", [complaint(i) for i in range(n)])
    first = workers.start(dep, account.password, COMPLAINTS_FAILPOINT=failpoint,
                          COMPLAINTS_SMTP_HOST="")
    wait_until(lambda: first.owns(_holder(dep)), what="the first worker to hold the folder")
    return dep, first, workers.start(dep, account.password)


def test_worker_killed_mid_batch_is_taken_over_within_the_takeover_time(
        tmp_path: Path, pg_url: str, imap_account: ImapAccount, smtp_server: SmtpSink,
        workers: Workers) -> None:
    n = 150
    dep, victim, heir = holder_and_heir(tmp_path, pg_url, imap_account, smtp_server, workers,
                                        n, "mid-batch:70")
    assert victim.proc.wait(timeout=300) == -signal.SIGKILL
    died = time.monotonic()
    took = wait_until(lambda: heir.owns(_holder(dep)), timeout=3 * TAKEOVER,
                      what="the second worker to take the folder over")
    assert took <= TAKEOVER, f"took {took:.1f} s"
    assert time.monotonic() - died <= TAKEOVER + 1

    wait_for_backlog(dep, imap_account, n, timeout=600)
    assert heir.stop() == 0, heir.log()[-3000:]
    each_mail_once(dep, imap_account, smtp_server, n)
    assert "this worker polls INBOX now (lease epoch 2)" in heir.log()


def test_frozen_worker_is_taken_over_and_cannot_commit_when_it_wakes(
        tmp_path: Path, pg_url: str, imap_account: ImapAccount, smtp_server: SmtpSink,
        workers: Workers) -> None:
    """A hung host (SIGSTOP mid-batch, inside its transaction): its process lives, so only the
    lease's expiry can free the folder; PostgreSQL ends its stalled transaction, and when it
    wakes its lease is gone: it must not file or move anything."""
    n = 150
    dep, frozen, heir = holder_and_heir(tmp_path, pg_url, imap_account, smtp_server, workers,
                                        n, "mid-batch:70:stop")
    # Reaching the 70th mail takes as long as the machine needs; the takeover time counts
    # from the freeze.
    wait_until(frozen.stopped_by_signal, timeout=300, what="the first worker to freeze")
    wait_until(lambda: heir.owns(_holder(dep)), timeout=4 * TAKEOVER,
               what="the second worker to take the folder over")
    wait_for_backlog(dep, imap_account, n, timeout=600)
    os.kill(frozen.proc.pid, signal.SIGCONT)
    wait_until(lambda: "standing by" in frozen.log(), timeout=60,
               what="the woken worker to stand by")
    assert frozen.stop() == 0, frozen.log()[-3000:]
    assert heir.stop() == 0, heir.log()[-3000:]
    each_mail_once(dep, imap_account, smtp_server, n)
    polls_never_overlap(dep, "complaints")
    # The poll it was frozen in failed when it woke: it committed nothing after the takeover.
    assert dep.scalar("SELECT count(*) FROM poll_runs WHERE "
                      f"starts_with(worker, '{frozen.name_prefix}') "
                      "AND last_error IS NOT NULL") == 1


# --- one thread, two workers ----------------------------------------------------------------------

def test_mails_of_one_thread_at_two_workers_at_once_land_on_one_case(
        tmp_path: Path, pg_url: str, dovecot: DovecotServer, smtp_server: SmtpSink,
        workers: Workers) -> None:
    """Each thread's complaint reaches one mailbox and two replies to it reach the other; one
    worker serves each mailbox, both at once. Without the thread claims, each worker would
    open its own case for the thread (neither sees the other's uncommitted rows)."""
    threads = 30
    first, second = dovecot.account(), dovecot.account()
    boxes = {"first": first, "second": second}
    one = desk(tmp_path, pg_url, smtp_server, {"first": first}, name="one", per_sender=3)
    two = desk(tmp_path, pg_url, smtp_server, {"second": second}, name="two", per_sender=3)
    one.upgrade()
    mails: dict[str, list[bytes]] = {"first": [], "second": []}
    for i in range(threads):
        here, there = ("first", "second") if i % 2 else ("second", "first")
        origin = f"<thread-{i}@mail.example.org>"
        sender = f"Customer {i} <customer{i}@mail.example.org>"
        mails[here].append(complaint(i, to=f"{here}@example.com", sender=sender,
                                     message_id=origin))
        for reply in (1, 2):
            mails[there].append(complaint(
                i, to=f"{there}@example.com", sender=sender, in_reply_to=origin,
                message_id=f"<thread-{i}-reply-{reply}@mail.example.org>",
                subject=f"Re: Calls keep dropping, line {i}"))
    for box, raws in mails.items():
        boxes[box].append("INBOX", raws)
    started = [workers.start(one, first.password), workers.start(two, second.password)]

    total = threads * 3
    wait_until(lambda: one.scalar("SELECT count(*) FROM messages WHERE direction = 'in'")
               == total and one.scalar("SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0
               and first.count("INBOX") == 0 and second.count("INBOX") == 0,
               timeout=300, what="both mailboxes")
    assert [worker.stop() for worker in started] == [0, 0]

    engine = open_database(pg_url)
    with engine.connect() as conn:
        spread = conn.exec_driver_sql(
            "SELECT substring(message_id from '^<thread-([0-9]+)') AS thread, "
            "count(DISTINCT case_id) FROM messages WHERE direction = 'in' GROUP BY 1").all()
    engine.dispose()
    assert len(spread) == threads
    assert {cases for _, cases in spread} == {1}, [row for row in spread if row[1] != 1]
    assert one.scalar("SELECT count(*) FROM cases") == threads
    # One acknowledgement per thread: the case was opened once.
    acks = Counter(mail.rcpt_tos for mail in smtp_server.received)
    assert len(acks) == threads and set(acks.values()) == {1}, acks.most_common(3)


def test_acknowledgement_limit_per_sender_holds_across_workers(
        tmp_path: Path, pg_url: str, dovecot: DovecotServer, smtp_server: SmtpSink,
        workers: Workers) -> None:
    """One sender writes 12 complaints, 6 to each of two mailboxes served by two workers at
    once; with at most 3 acknowledgements per sender, exactly 3 go out in all (not 3 each)."""
    first, second = dovecot.account(), dovecot.account()
    one = desk(tmp_path, pg_url, smtp_server, {"first": first}, name="one", per_sender=3)
    two = desk(tmp_path, pg_url, smtp_server, {"second": second}, name="two", per_sender=3)
    one.upgrade()
    sender = "Repeat Writer <repeat@mail.example.org>"
    first.append("INBOX", [complaint(i, to="first@example.com", sender=sender)
                           for i in range(6)])
    second.append("INBOX", [complaint(100 + i, to="second@example.com", sender=sender)
                            for i in range(6)])
    started = [workers.start(one, first.password), workers.start(two, second.password)]
    wait_until(lambda: one.scalar("SELECT count(*) FROM cases") == 12
               and one.scalar("SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0,
               timeout=120, what="both mailboxes")
    assert [worker.stop() for worker in started] == [0, 0]
    assert one.scalar("SELECT count(*) FROM outbox WHERE kind = 'ack'") == 3
    assert len(smtp_server.received) == 3
    assert one.scalar("SELECT count(*) FROM events WHERE kind = 'ack-skipped'") == 9


# --- the outbox ----------------------------------------------------------------------------

def test_three_workers_drain_an_outbox_of_300_sending_each_mail_once(
        tmp_path: Path, pg_url: str, imap_account: ImapAccount, smtp_server: SmtpSink,
        workers: Workers) -> None:
    dep = desk(tmp_path, pg_url, smtp_server, {"complaints": imap_account})
    dep.upgrade()
    engine = open_database(pg_url)
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        for i in range(N_OUTBOX):
            mail = EmailMessage()
            recipient = f"person{i}@mail.example.org"
            mail["From"] = "complaints@example.com"
            mail["To"] = recipient
            mail["Subject"] = f"Queued notice {i}"
            mail["Message-ID"] = f"<queued-{i}@desk.example.com>"
            mail.set_content("Your case is being handled.\n")
            queue_mail(session, mail, kind="notice", recipients=[recipient], now=now)
    engine.dispose()
    started = [workers.start(dep, imap_account.password) for _ in range(3)]
    wait_until(lambda: dep.scalar("SELECT count(*) FROM outbox WHERE status = 'sent'")
               == N_OUTBOX,
               timeout=300, what="the outbox to drain")
    assert [worker.stop() for worker in started] == [0, 0, 0]
    sent = message_ids(smtp_server.received)
    assert len(sent) == N_OUTBOX and set(sent.values()) == {1}, sent.most_common(3)
    assert dep.scalar("SELECT max(attempts) FROM outbox") == 1
    assert sum("sent notice" in worker.log() for worker in started) >= 2, \
        "one worker sent everything: the claims were not shared"


# --- what an operator sees --------------------------------------------------------------------

def one_holding(tmp_path: Path, pg_url: str, account: ImapAccount,
                workers: Workers) -> tuple[Deployment, WorkerProcess]:
    """A deployment without SMTP and one worker holding its folder."""
    dep = desk(tmp_path, pg_url, None, {"complaints": account})
    dep.upgrade()
    holder = workers.start(dep, account.password)
    wait_until(lambda: holder.owns(_holder(dep)), what="the worker to hold the folder")
    return dep, holder


def test_status_shows_who_polls_which_mailbox_and_the_heartbeats(
        tmp_path: Path, pg_url: str, imap_account: ImapAccount, workers: Workers) -> None:
    dep, holder = one_holding(tmp_path, pg_url, imap_account, workers)
    spare = workers.start(dep, imap_account.password)
    wait_until(lambda: dep.scalar("SELECT count(*) FROM workers WHERE "
                                  f"starts_with(name, '{spare.name_prefix}')"),
               what="the second worker to register")
    out = dep.command(["status"], imap_account.password).stdout
    assert f"polled by    {holder.name_prefix}" in out
    assert f"  {holder.name_prefix}" in out and f"  {spare.name_prefix}" in out
    assert out.count("last heartbeat") == 2
    assert spare.stop() == 0 and holder.stop() == 0
    out = dep.command(["status"], imap_account.password).stdout
    assert "polled by    no worker" in out
    assert out.count("stopped ") == 2


def test_poll_once_skips_a_mailbox_another_worker_is_polling(
        tmp_path: Path, pg_url: str, imap_account: ImapAccount, workers: Workers) -> None:
    dep, holder = one_holding(tmp_path, pg_url, imap_account, workers)
    result = dep.command(["poll", "--once"], imap_account.password)
    assert "complaints: skipped, another worker is polling it right now" in result.stdout
    assert holder.stop() == 0


@pytest.mark.parametrize("second", [["run"], ["poll", "--once"]])
def test_a_second_worker_on_sqlite_is_refused_with_advice(
        tmp_path: Path, sqlite_url: str, imap_account: ImapAccount, workers: Workers,
        second: list[str]) -> None:
    dep = Deployment(tmp_path, sqlite_url,
                     {"complaints": (imap_account, ["complaints@example.com"])}).write()
    dep.upgrade()
    first = workers.start(dep, imap_account.password)
    wait_until(lambda: dep.scalar("SELECT count(*) FROM folder_leases"),
               what="the first worker to start polling")
    result = dep.command(second, imap_account.password, check=False, timeout=60)
    assert result.returncode != 0
    assert "already running on the SQLite database" in result.stderr
    assert "PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr
    assert first.proc.poll() is None  # the first one is untouched
    assert first.stop() == 0
    # Once it stopped, a worker may start again.
    assert dep.command(["poll", "--once"], imap_account.password).returncode == 0
