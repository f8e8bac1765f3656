"""The test servers themselves work: each fixture of tests/servers.py against its real server."""

from __future__ import annotations

import asyncio
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from processor.config import MailboxSettings
from processor.imap import MailboxConnection
from tests.servers import REPO_ROOT, DovecotServer, ImapAccount, PymapServer, SmtpSink


def make_mail(n: int, subject: str = "Complaint") -> bytes:
    return (f"From: customer{n}@example.net\r\nTo: complaints@example.com\r\n"
            f"Subject: {subject} {n}\r\nMessage-ID: <test-{n}@example.net>\r\n\r\n"
            f"Body of mail {n}.\r\n").encode()


@pytest.fixture(params=["dovecot", "pymap"])
def any_imap(request: pytest.FixtureRequest) -> ImapAccount:
    """The same checks against both IMAP implementations."""
    if request.param == "dovecot":
        return request.getfixturevalue("imap_account")
    server: PymapServer = request.getfixturevalue("pymap_server")
    server.reset()
    return server


# -- IMAP, both servers ----------------------------------------------------------------------


def test_append_count_fetch_round_trip(any_imap: ImapAccount) -> None:
    raws = [make_mail(n) for n in range(3)]
    assert any_imap.count("INBOX") == 0
    assert any_imap.append("INBOX", raws) == 3
    assert any_imap.count("INBOX") == 3
    assert any_imap.fetch_all("INBOX") == raws
    assert len(any_imap.uids("INBOX")) == 3


def test_append_creates_folder_and_sets_flags(any_imap: ImapAccount) -> None:
    assert any_imap.count("Processed") == 0  # missing folder counts as empty
    any_imap.append("Processed", [make_mail(1)], flags=[r"\Seen"])
    assert "Processed" in any_imap.folders()
    with any_imap.connect() as client:
        client.select_folder("Processed", readonly=True)
        (uid,) = client.search("ALL")
        assert b"\\Seen" in client.get_flags([uid])[uid]
    any_imap.create("Processed")  # idempotent
    any_imap.create("Quarantine")
    assert any_imap.count("Quarantine") == 0


def test_fetch_all_does_not_mark_seen(any_imap: ImapAccount) -> None:
    any_imap.append("INBOX", [make_mail(1)])
    any_imap.fetch_all("INBOX")
    with any_imap.connect() as client:
        client.select_folder("INBOX", readonly=True)
        assert client.search("UNSEEN") == client.search("ALL")


def test_backlog_of_600_appends_quickly(any_imap: ImapAccount) -> None:
    started = time.monotonic()
    any_imap.append("INBOX", (make_mail(n) for n in range(600)))
    assert any_imap.count("INBOX") == 600
    assert time.monotonic() - started < 30


def test_capabilities_move_uidplus_idle(any_imap: ImapAccount) -> None:
    any_imap.append("INBOX", [make_mail(1), make_mail(2)])
    any_imap.create("Processed")
    with any_imap.connect() as client:
        for capability in ("IDLE", "MOVE", "UIDPLUS", "MULTIAPPEND"):
            assert client.has_capability(capability), capability
        client.select_folder("INBOX")
        first, second = sorted(client.search("ALL"))
        # UID FETCH BODY.PEEK[] of a single UID
        assert client.fetch([second], [b"BODY.PEEK[]"])[second][b"BODY[]"] == make_mail(2)
        client.move([first], "Processed")
        # COPY + \Deleted + UID EXPUNGE, the fallback path when MOVE is missing
        client.copy([second], "Processed")
        client.delete_messages([second])
        client.uid_expunge([second])
    assert any_imap.count("INBOX") == 0
    assert any_imap.fetch_all("Processed") == [make_mail(1), make_mail(2)]


def test_idle_reports_new_mail(any_imap: ImapAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the desk's own IDLE wait: imapclient's idle_check fails now and then on pymap,
    which may write a response line in two pieces (tests/ingest/test_idle.py)."""
    monkeypatch.setenv("COMPLAINTS_TEST_SERVERS_PASSWORD", any_imap.password)
    settings = MailboxSettings(name="complaints", host=any_imap.host, port=any_imap.port,
                               tls="none", user=any_imap.user,
                               password_env="COMPLAINTS_TEST_SERVERS_PASSWORD",
                               addresses=("complaints@example.com",))
    with MailboxConnection(settings).connect() as connection:
        connection.select("INBOX")
        for n in range(3):
            appended = threading.Timer(0.2, any_imap.append, ("INBOX", [make_mail(n)]))
            appended.start()
            try:
                assert connection.wait_for_change(timeout=10, stop_check_seconds=0.5) is True
            finally:
                appended.join()
    assert any_imap.count("INBOX") == 3


# -- Dovecot only ----------------------------------------------------------------------------


def test_dovecot_users_are_isolated(dovecot: DovecotServer) -> None:
    alice, bob = dovecot.account(), dovecot.account()
    assert alice.user != bob.user
    alice.append("INBOX", [make_mail(1)])
    assert bob.count("INBOX") == 0
    assert dovecot.new_user("agent").startswith("agent")


def test_dovecot_restart_keeps_mail(private_dovecot: DovecotServer) -> None:
    dovecot, imap_account = private_dovecot, private_dovecot.account()
    imap_account.append("Processed", [make_mail(1), make_mail(2)])
    uids_before = imap_account.uids("Processed")
    try:
        dovecot.stop()
        assert not dovecot.is_running()
    finally:
        dovecot.start()
    assert dovecot.is_running()
    assert imap_account.uids("Processed") == uids_before
    assert imap_account.fetch_all("Processed") == [make_mail(1), make_mail(2)]
    dovecot.restart()
    assert imap_account.count("Processed") == 2
    assert dovecot.log_path.exists()


# -- SMTP ------------------------------------------------------------------------------------


def send(sink: SmtpSink, to: str, subject: str = "Re: your complaint") -> None:
    message = EmailMessage()
    message["From"] = "complaints@example.com"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("We received your complaint; reference C-000001.")
    asyncio.run(aiosmtplib.send(message, hostname=sink.host, port=sink.port, timeout=10))


def test_smtp_server_records_envelopes(smtp_server: SmtpSink) -> None:
    send(smtp_server, "customer@example.net")
    send(smtp_server, "other@example.net", subject="Second")
    first, second = smtp_server.wait_for(2, timeout=10)
    assert first.mail_from == "complaints@example.com"
    assert first.rcpt_tos == ("customer@example.net",)
    assert b"Subject: Re: your complaint" in first.content
    assert b"Subject: Second" in second.content
    assert len(smtp_server.received) == 2


def test_wait_for_times_out_with_a_clear_message(smtp_server: SmtpSink) -> None:
    with pytest.raises(AssertionError, match="got 0 mail"):
        smtp_server.wait_for(1, timeout=0.2)


def test_smtp_delivers_into_the_recipients_dovecot_mailbox(
        smtp_delivering: SmtpSink, dovecot: DovecotServer) -> None:
    customer = dovecot.account()
    send(smtp_delivering, f"{customer.user}@example.net")
    smtp_delivering.wait_for(1)
    (delivered,) = customer.fetch_all("INBOX")
    assert delivered.startswith(b"Return-Path: <complaints@example.com>\r\n")
    assert b"reference C-000001" in delivered


@pytest.mark.parametrize(("code", "at", "error"), [
    (451, "data", aiosmtplib.SMTPDataError),
    (550, "rcpt", aiosmtplib.SMTPRecipientsRefused),
    (421, "mail", aiosmtplib.SMTPSenderRefused),
])
def test_fail_next_answers_the_error_then_recovers(smtp_server: SmtpSink, code: int, at: str,
                                                   error: type[Exception]) -> None:
    smtp_server.fail_next(code, "injected failure", times=2, at=at)
    for _ in range(2):
        with pytest.raises(error) as raised:
            send(smtp_server, "customer@example.net")
        if isinstance(raised.value, aiosmtplib.SMTPRecipientsRefused):
            assert raised.value.recipients[0].code == code
        else:
            assert raised.value.code == code  # type: ignore[attr-defined]
    assert smtp_server.received == []
    send(smtp_server, "customer@example.net")
    assert len(smtp_server.wait_for(1)) == 1


def test_smtp_stop_and_start_on_the_same_port(smtp_server: SmtpSink) -> None:
    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        send(smtp_server, "customer@example.net")
    smtp_server.start()
    assert smtp_server.port == port
    send(smtp_server, "customer@example.net")
    smtp_server.wait_for(1)


# -- PostgreSQL ------------------------------------------------------------------------------


def test_postgres_url_connects(postgres_url: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("select 1")).scalar() == 1
    finally:
        engine.dispose()


# -- the demo's servers (product code) -------------------------------------------------------


def test_demo_servers_load_examples_and_sink_mail(tmp_path: Path) -> None:
    from imapclient import IMAPClient

    from processor.demo_servers import demo_servers, load_examples

    examples = sorted((REPO_ROOT / "examples").glob("*.eml"))
    assert len(examples) >= 5
    with demo_servers(tmp_path) as servers:
        assert load_examples(servers, "INBOX", examples) == len(examples)
        account = ImapAccount(servers.imap_host, servers.imap_port, servers.imap_user,
                              servers.imap_password)
        assert account.fetch_all("INBOX") == [path.read_bytes() for path in examples]
        load_examples(servers, "Samples", examples[:1])
        assert account.count("Samples") == 1

        message = EmailMessage()
        message["From"] = "complaints@example.com"
        message["To"] = "customer@example.net"
        message["Subject"] = "Your complaint C-000001"
        message.set_content("Received.")
        asyncio.run(aiosmtplib.send(message, hostname=servers.smtp_host,
                                    port=servers.smtp_port, timeout=10))
        (sent,) = servers.received
        assert sent.rcpt_tos == ("customer@example.net",)
        assert sent.path == tmp_path / "outbox-sink" / "001.eml"
        assert sent.path.read_bytes() == sent.content
        imap_port = servers.imap_port
    with pytest.raises(OSError):  # pymap is gone once the block ends
        IMAPClient(servers.imap_host, imap_port, ssl=False, timeout=2)


def test_demo_servers_explain_a_missing_extra(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from processor.demo_servers import demo_servers
    from processor.errors import ComplaintsError

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # fault injection: pymap not installed
                        lambda name, *a: None if name == "pymap" else real_find_spec(name, *a))
    with pytest.raises(ComplaintsError, match="pymap") as raised:
        with demo_servers(tmp_path):
            pass
    assert raised.value.hint is not None and "[demo]" in raised.value.hint
