"""`complaints status --check`: what a monitoring system is told, from what the desk recorded.

Each state is the desk's own doing against Dovecot (a poll, a quarantined mail, an
acknowledgement the SMTP server refuses); only the passing of time is made by ageing the
recorded times in the database.
"""

from __future__ import annotations

from tests.deployment import Deployment
from tests.mailgen import make_mail, make_mails
from tests.servers import ImapAccount, SmtpSink, free_port

NO_SENDER = b"Subject: who am I\r\nTo: complaints@example.com\r\n\r\nno From header\r\n"


def check(deployment: Deployment, account: ImapAccount, *args: str) -> tuple[int, str]:
    result = deployment.command(["status", "--check", *args], account.password, check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def test_the_check_names_what_needs_a_person_and_exits_as_monitoring_expects(
    deployment: Deployment, imap_account: ImapAccount
) -> None:
    code, out = check(deployment, imap_account)
    assert (code, out.strip()) == (2, "CRITICAL complaints: never polled")

    imap_account.append("INBOX", make_mails(2, seed=81))
    deployment.command(["poll", "--once"], imap_account.password)
    code, out = check(deployment, imap_account)
    assert code == 0 and out.startswith("OK: 1 mailbox(es) polled without error"), out

    imap_account.append("INBOX", [NO_SENDER])
    deployment.command(["poll", "--once"], imap_account.password)
    code, out = check(deployment, imap_account)
    assert (code, out.strip()) == (
        1, "WARNING quarantine: 1 mails held (complaints quarantine list)"), out

    # Two hours without a poll: the service died, or cron stopped.
    deployment.execute("UPDATE poll_runs SET started_at = started_at - INTERVAL '2 hours'"
                       if deployment.db_url.startswith("postgresql") else
                       "UPDATE poll_runs SET started_at = datetime(started_at, '-2 hours')")
    code, out = check(deployment, imap_account)
    assert code == 2 and out.startswith("CRITICAL complaints: not polled since"), out
    assert "WARNING quarantine" in out  # the critical first, the warning still there
    code, out = check(deployment, imap_account, "--max-age", "180")
    assert code == 1 and "CRITICAL" not in out, out


def test_a_failing_mailbox_and_a_refused_acknowledgement_are_reported(
    deployment: Deployment, imap_account: ImapAccount
) -> None:
    closed_port = free_port()  # nothing listens: every attempt to send fails
    deployment.use_smtp("127.0.0.1", closed_port).write()
    imap_account.append("INBOX", make_mails(1, seed=82))
    deployment.command(["poll", "--once"], imap_account.password)
    code, out = check(deployment, imap_account)
    assert code == 0, out  # a failed attempt an hour has not yet made a problem of

    deployment.execute("UPDATE outbox SET created_at = created_at - INTERVAL '2 hours'"
                       if deployment.db_url.startswith("postgresql") else
                       "UPDATE outbox SET created_at = datetime(created_at, '-2 hours')")
    code, out = check(deployment, imap_account)
    assert code == 1 and out.startswith("WARNING outbox: 1 mails queued since"), out
    assert "last error:" in out and str(closed_port) in out, out

    # The password changed on the server: the poll is refused, and recorded.
    deployment.command(["poll", "--once"], "not-the-password", check=False)
    code, out = check(deployment, imap_account)
    assert code == 2, out
    assert out.startswith("CRITICAL complaints: the last poll") and "failed:" in out, out
    assert "WARNING outbox" in out


def test_an_acknowledgement_to_an_address_that_does_not_exist_is_no_alarm(
    deployment: Deployment, imap_account: ImapAccount, smtp_server: SmtpSink
) -> None:
    """Complainants mistype their addresses: such a bounce is their affair (the address is
    suppressed), while a mail the server refuses for its own reasons is the desk's."""
    deployment.use_smtp(smtp_server.host, smtp_server.port)
    smtp_server.fail_next(550, "5.1.1 <nobody@example.org>: no such user", at="rcpt")
    imap_account.append("INBOX", make_mails(1, seed=83))
    deployment.command(["poll", "--once"], imap_account.password)
    assert deployment.scalar("SELECT status FROM outbox") == "failed"
    code, out = check(deployment, imap_account)
    assert code == 0, out

    smtp_server.fail_next(554, "5.7.1 relaying denied", at="rcpt")
    imap_account.append("INBOX", [make_mail(1, seed=84)])  # another complainant
    deployment.command(["poll", "--once"], imap_account.password)
    assert deployment.scalar("SELECT count(*) FROM outbox WHERE status = 'failed'") == 2
    code, out = check(deployment, imap_account)
    assert (code, out.strip()) == (
        1, "WARNING outbox: 1 mails failed for good in the last day (complaints outbox list)")
