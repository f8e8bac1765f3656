"""Never lose or double an outgoing mail: SMTP down and back, 5xx, a crash before sending."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from processor.db import session_scope
from processor.outbox import (
    CLAIM_SECONDS,
    DrainStats,
    claim_due,
    drain_outbox,
    queue_mail,
    send_claimed,
    smtp_settings,
)
from tests.acknowledge.conftest import Desk, make_desk
from tests.deployment import Deployment
from tests.servers import DovecotServer, ImapAccount, SmtpSink


def complaint(sender: str, n: int = 1) -> bytes:
    return (f"From: {sender}\r\nTo: complaints@example.com\r\nSubject: complaint {n}\r\n"
            f"Message-ID: <out-{n}@customer.example>\r\n\r\nMy bill is wrong.\r\n").encode()


def later(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def test_smtp_down_then_back_delivers_exactly_once(desk: Desk) -> None:
    sender = desk.complainant()
    desk.smtp.stop()
    desk.deliver(complaint(sender))
    desk.poll()
    first = desk.send()
    assert (first.sent, first.retried, first.failed) == (0, 1, 0)
    [queued] = desk.outbox()
    assert queued.status == "queued" and queued.attempts == 1 and queued.last_error
    assert desk.send().sent == 0  # not due yet: the backoff is respected
    desk.smtp.start()
    assert desk.send(clock=lambda: later(1)).sent == 1
    assert desk.send(clock=lambda: later(2)).sent == 0  # nothing left to send
    assert len(desk.inbox_of(sender)) == 1
    [sent] = desk.outbox()
    assert sent.status == "sent" and sent.message_id == queued.message_id
    # The acknowledgement belongs to its case (queued in the unit of work that opened it).
    case = desk.case_of(sender)
    assert sent.case_id == case.id and case.last_outbound_at is not None


def test_transient_4xx_is_retried_then_given_up(tmp_path: Path, sqlite_url: str,
                                                dovecot: DovecotServer,
                                                smtp_server: SmtpSink) -> None:
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_server)
    desk.deployment.sections["smtp"]["max_attempts"] = 2
    desk.deployment.write()
    smtp_server.fail_next(451, "try again later", times=5)
    desk.deliver(complaint("someone@customer.example"))
    desk.poll()
    desk.runtime.settings = desk.deployment.settings(desk.desk_account.password)
    assert desk.send().retried == 1
    assert desk.send(clock=lambda: later(1)).failed == 1
    [mail] = desk.outbox()
    assert mail.status == "failed" and mail.attempts == 2 and "451" in (mail.last_error or "")


def test_permanent_5xx_is_marked_failed_and_not_retried(desk: Desk) -> None:
    sender = desk.complainant()
    desk.smtp.fail_next(550, "no such user", times=1, at="rcpt")
    desk.deliver(complaint(sender))
    desk.poll()
    assert desk.send().failed == 1
    assert desk.send(clock=lambda: later(48)).sent == 0
    [mail] = desk.outbox()
    assert mail.status == "failed" and mail.attempts == 1
    assert desk.smtp.received == []
    # The address bounced permanently: no automatic mail to it for a while.
    desk.deliver(complaint(sender, 2))
    desk.poll()
    [skipped] = [data for kind, data in desk.events("C-000002") if kind == "ack-skipped"]
    assert any(str(r).startswith("bounce-suppressed") for r in skipped["reasons"])


def test_outbox_retry_command_requeues_failed_mail(desk: Desk) -> None:
    sender = desk.complainant()
    desk.smtp.fail_next(554, "rejected", times=1)
    desk.deliver(complaint(sender))
    desk.poll()
    assert desk.send().failed == 1
    dep = desk.deployment
    listing = dep.command(["outbox", "list", "--status", "failed"], desk.desk_account.password)
    assert "554" in listing.stdout and sender[:30] in listing.stdout
    dep.command(["outbox", "retry", "--all-failed"], desk.desk_account.password)
    sent = dep.command(["outbox", "send"], desk.desk_account.password)
    assert "sent 1" in sent.stdout
    assert len(desk.inbox_of(sender)) == 1


def test_killed_between_queueing_and_sending_delivers_once_after_restart(
        tmp_path: Path, sqlite_url: str, imap_account: ImapAccount, dovecot: DovecotServer,
        smtp_delivering: SmtpSink) -> None:
    dep = Deployment(tmp_path, sqlite_url,
                     {"complaints": (imap_account, ["complaints@example.com"])})
    dep.use_smtp(smtp_delivering.host, smtp_delivering.port)
    dep.upgrade()
    sender = f"{dovecot.new_user('cust')}@customer.example"
    imap_account.append("INBOX", [complaint(sender)])
    for point in ("after-commit:1", "outbox-claimed:1"):  # queued, then claimed, then killed
        env = dep.env(imap_account.password)
        env["COMPLAINTS_FAILPOINT"] = point
        command = ["poll", "--once"] if point.startswith("after") else ["outbox", "send"]
        killed = subprocess.run([sys.executable, "-m", "processor", *command], env=env,
                                capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        assert killed.returncode == -signal.SIGKILL
    assert smtp_delivering.received == []
    dep.command(["outbox", "send"], imap_account.password)
    dep.command(["poll", "--once"], imap_account.password)
    assert len(smtp_delivering.received) == 1
    assert len(dovecot.account(sender.split("@")[0]).fetch_all("INBOX")) == 1
    dep.close()


def test_a_worker_stalled_past_its_claims_sends_none_of_the_mail_taken_over(desk: Desk) -> None:
    """A worker claims a batch, then stalls (a frozen host, a starved machine) until its claims
    lapse and another worker takes the mail. When it wakes it must not send that mail again:
    it checks each claim before each send. Seen on a loaded machine before the check: three
    workers sent 118 mails twice."""
    engine, settings = desk.runtime.engine, desk.runtime.settings
    recipients = [desk.complainant() for _ in range(3)]
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        for n, recipient in enumerate(recipients):
            mail = EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = "complaints@example.com", recipient, "x"
            mail["Message-ID"] = f"<stalled-{n}@desk.example.com>"
            mail.set_content("Your case is being handled.\n")
            queue_mail(session, mail, kind="notice", recipients=[recipient], now=now)
    stalled = claim_due(engine, now, 100, "host:1:stalled")
    assert len(stalled) == 3
    # Its claims have lapsed by the time another worker drains the outbox.
    after = now + timedelta(seconds=CLAIM_SECONDS + 1)
    heir = asyncio.run(drain_outbox(engine, settings, lambda: after, worker="host:2:heir"))
    assert heir.sent == 3
    woken = DrainStats()
    finished = asyncio.run(send_claimed(engine, settings, smtp_settings(settings), stalled,
                                        "host:1:stalled", lambda: after, woken, lambda: False))
    assert finished and (woken.sent, woken.lost_claims) == (0, 3)
    assert [len(desk.inbox_of(recipient)) for recipient in recipients] == [1, 1, 1]
    # A stop gives back only the claims it still holds: none of the heir's.
    again = claim_due(engine, after, 100, "host:1:stalled")
    assert again == []
