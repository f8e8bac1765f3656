"""A relay that refuses the desk's login: the mail waits, none fails, the relay is asked once.

The refusals are real replies of an aiosmtpd server (530 at MAIL FROM, as a relay that wants a
login answers; the 535 of a wrong password is in tests/ack/test_smtp.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from processor.db import session_scope
from processor.db.models import Counter
from processor.outbox import LOGIN_REFUSALS, _set_counter
from tests.acknowledge.conftest import Desk, make_desk
from tests.servers import DovecotServer, SmtpSink

LOGIN_WANTED = (530, "5.7.0 Authentication required")


def complaint(sender: str, n: int) -> bytes:
    return (f"From: {sender}\r\nTo: complaints@example.com\r\nSubject: complaint {n}\r\n"
            f"Message-ID: <login-{n}@customer.example>\r\n\r\nMy bill is wrong.\r\n").encode()


def refusals(desk: Desk) -> int:
    with session_scope(desk.runtime.engine) as session:
        return session.scalar(select(Counter.value).where(Counter.name == LOGIN_REFUSALS)) or 0


def test_a_refused_login_fails_no_mail_and_is_met_once_per_wait(
        tmp_path: Path, db_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink) -> None:
    desk = make_desk(tmp_path, db_url, dovecot, smtp_delivering)
    # Refusals must not use up the attempts; the waits are 30 s, then 60 s (the test
    # deployment's own are a second or two).
    desk.deployment.sections["smtp"].update(max_attempts=2, retry_base_seconds=30,
                                             retry_cap_seconds=3600)
    desk.deployment.write()
    desk.runtime.settings = desk.deployment.settings(desk.desk_account.password)
    senders = [desk.complainant() for _ in range(3)]
    desk.deliver(*(complaint(s, n) for n, s in enumerate(senders)))
    desk.poll()
    smtp = desk.smtp
    smtp.fail_next(*LOGIN_WANTED, times=10, at="mail")
    start = datetime.now(UTC)

    first = desk.send(clock=lambda: start)
    assert (first.sent, first.failed) == (0, 0)
    assert first.login_refused and "530" in first.login_refused
    assert smtp.failures_left("mail") == 9  # one MAIL FROM, not one per queued mail
    waiting = desk.outbox()
    assert [m.status for m in waiting] == ["queued"] * 3
    assert all(m.attempts == 0 for m in waiting)
    assert {m.next_attempt_at for m in waiting} == {start + timedelta(seconds=30)}
    assert "refused the desk's login" in (waiting[0].last_error or "")

    # Within the wait nothing is tried, not even mail queued since; after it, one more
    # refusal doubles the wait.
    senders.append(desk.complainant())
    desk.deliver(complaint(senders[-1], 4))
    desk.poll()
    assert desk.send(clock=lambda: start + timedelta(seconds=29)).sent == 0
    assert smtp.failures_left("mail") == 9
    again = start + timedelta(seconds=31)
    assert desk.send(clock=lambda: again).login_refused
    assert smtp.failures_left("mail") == 8 and refusals(desk) == 2
    assert {m.next_attempt_at for m in desk.outbox()} == {again + timedelta(seconds=60)}
    third = again + timedelta(seconds=61)
    assert desk.send(clock=lambda: third).failed == 0  # past max_attempts, still waiting
    assert [m.status for m in desk.outbox()] == ["queued"] * 4

    # The login is mended: everything goes, once, and the count of refusals starts over.
    smtp.clear_failures()
    sent = desk.send(clock=lambda: third + timedelta(hours=1))
    assert (sent.sent, sent.failed, sent.login_refused) == (4, 0, None)
    assert all(len(desk.inbox_of(s)) == 1 for s in senders)
    assert refusals(desk) == 0
    desk.runtime.engine.dispose()
    desk.deployment.close()


def test_mail_sent_before_the_refusal_keeps_its_copy_in_the_sent_folder(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
        smtp_delivering: SmtpSink) -> None:
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_delivering)
    desk.deployment.sections["smtp"]["sent_folder"] = "Sent"
    desk.deployment.write()
    desk.runtime.settings = desk.deployment.settings(desk.desk_account.password)
    senders = [desk.complainant() for _ in range(2)]
    desk.deliver(*(complaint(s, n) for n, s in enumerate(senders)))
    desk.poll()
    desk.smtp.fail_next(*LOGIN_WANTED, at="mail", after=1)  # the password changed in between
    stats = desk.send()
    assert (stats.sent, stats.failed) == (1, 0) and stats.login_refused
    assert len(desk.desk_account.fetch_all("Sent")) == 1
    assert [m.status for m in desk.outbox()] == ["sent", "queued"]
    desk.runtime.engine.dispose()
    desk.deployment.close()


def test_the_commands_say_the_login_was_refused_and_outbox_send_flushes_the_wait(
        desk: Desk) -> None:
    sender = desk.complainant()
    desk.deliver(complaint(sender, 1))
    password = desk.desk_account.password
    desk.smtp.fail_next(*LOGIN_WANTED, times=2, at="mail")
    polled = desk.deployment.command(["poll", "--once"], password, check=False)
    assert polled.returncode == 1  # cron mails the error to whoever can mend the login
    assert "stored 1" in polled.stdout and "outbox: sent 0, retrying 1, failed 0" in polled.stdout
    assert "refused the desk's login" in polled.stderr and "none failed" in polled.stderr
    before_refusal = datetime.now(UTC)
    refused = desk.deployment.command(["outbox", "send"], password, check=False)
    assert refused.returncode == 1
    assert "refused the desk's login" in refused.stderr and "none failed" in refused.stderr
    assert "hint: check [smtp] user" in refused.stderr and "Traceback" not in refused.stderr
    [held] = desk.outbox()
    # Held from the second refusal on, for twice the base wait (the deployment's 1 s base and
    # 2 s cap), counted from the attempt: not from the assertion, which a loaded machine
    # reaches later than that.
    assert held.status == "queued" and held.attempts == 0
    assert held.next_attempt_at >= before_refusal + timedelta(seconds=2)
    check = desk.deployment.command(["status", "--check"], password, check=False)
    assert check.returncode == 2, check.stdout  # critical at once: no acknowledgement goes out
    assert "CRITICAL outbox: the SMTP server refused the desk's login 2 times" in check.stdout
    # Mended (the sink accepts again): `outbox send` does not wait out the hold.
    sent = desk.deployment.command(["outbox", "send"], password)
    assert "sent 1" in sent.stdout
    assert len(desk.inbox_of(sender)) == 1
    check = desk.deployment.command(["status", "--check"], password, check=False)
    assert check.returncode == 0 and check.stdout.startswith("OK"), check.stdout


def test_two_workers_counting_the_first_refusal_at_once_both_count(engine: sa.Engine) -> None:
    """The counter's row is made by the first refusal ever. Two PostgreSQL workers refused at
    the same moment both try to make it: the second waits on the first's row, then counts."""
    if engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL has writers that wait on each other's rows")
    counts: list[int] = []
    first = Session(engine)
    counts.append(_set_counter(first, LOGIN_REFUSALS, Counter.value + 1))  # not committed

    def second() -> None:
        with session_scope(engine) as session:
            counts.append(_set_counter(session, LOGIN_REFUSALS, Counter.value + 1))

    waiting = threading.Thread(target=second)
    waiting.start()
    with engine.connect() as watcher:  # until the second worker waits on the first's row
        for _ in range(1000):
            if watcher.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")):
                break
            waiting.join(0.01)
    first.commit()
    first.close()
    waiting.join(30)
    assert counts == [1, 2]
    with session_scope(engine) as session:
        assert session.scalar(select(Counter.value).where(Counter.name == LOGIN_REFUSALS)) == 2
