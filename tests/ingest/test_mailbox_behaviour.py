"""How ingest treats the mailbox: two monitored addresses, \\Seen and flags, UIDVALIDITY,
oversized and broken mail."""

from __future__ import annotations

import json
from pathlib import Path

from tests.deployment import Deployment
from tests.mailgen import make_mail, make_mails
from tests.servers import DovecotServer, ImapAccount, free_port

TO_AND_CC_OURS = (
    b"From: Li Wei <liwei@qq.com>\r\nTo: complaints@example.com\r\n"
    b"Cc: service@brand2.example\r\nSubject: both of you\r\n"
    b"Message-ID: <both-1@qq.com>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0800\r\n"
    b"\r\nSame complaint to both addresses.\r\n"
)


def test_same_mail_in_two_monitored_mailboxes_is_one_message_on_one_case(
    tmp_path: Path, sqlite_url: str, dovecot: DovecotServer
) -> None:
    first, second = dovecot.account(), dovecot.account()
    dep = Deployment(
        tmp_path,
        sqlite_url,
        {
            "complaints": (first, ["complaints@example.com"]),
            "brand2": (second, ["service@brand2.example"]),
        },
    ).write()
    dep.upgrade()
    # Each server copy gets its own trace header, as a real MTA would add.
    first.append("INBOX", [b"Delivered-To: complaints@example.com\r\n" + TO_AND_CC_OURS])
    second.append("INBOX", [b"Delivered-To: service@brand2.example\r\n" + TO_AND_CC_OURS])
    result = dep.command(["poll", "--once"], first.password)
    assert "complaints: fetched 1, stored 1" in result.stdout
    assert "brand2: fetched 1, stored 0, duplicates 1" in result.stdout
    assert dep.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == 1
    assert dep.scalar("SELECT count(*) FROM cases") == 1
    assert json.loads(
        str(dep.scalar("SELECT received_by FROM messages WHERE direction = 'in'"))
    ) == ["complaints@example.com", "service@brand2.example"]
    assert dep.scalar("SELECT count(*) FROM message_copies") == 2
    assert first.count("INBOX") == second.count("INBOX") == 0
    dep.close()


def test_seen_and_flags_set_by_people_change_nothing(
    deployment: Deployment, imap_account: ImapAccount
) -> None:
    deployment.processing["after_processing"] = "flag"
    deployment.write()
    imap_account.append("INBOX", make_mails(2, seed=3), flags=[b"\\Seen"])
    imap_account.append("INBOX", [make_mail(5, seed=3)], flags=[b"\\Flagged"])
    imap_account.append("INBOX", [make_mail(6, seed=3)])
    deployment.command(["poll", "--once"], imap_account.password)
    assert deployment.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == 4
    with imap_account.connect() as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    assert len(flags) == 4  # flag mode: the mails stay where they are
    assert all(b"$Processed" in f for f in flags.values())
    unseen = [uid for uid, f in flags.items() if b"\\Seen" not in f]
    assert len(unseen) == 2  # fetched with BODY.PEEK[]: nobody's unread mail became read
    again = deployment.command(["poll", "--once"], imap_account.password)
    assert "fetched 0" in again.stdout


def test_uidvalidity_change_rescans_without_doubling(
    deployment: Deployment, imap_account: ImapAccount
) -> None:
    folder = "Complaints"
    deployment.processing["after_processing"] = "flag"
    deployment.write()
    text = deployment.config_path.read_text()
    deployment.config_path.write_text(text + f'folder = "{folder}"\n')
    mails = make_mails(5, seed=5)
    imap_account.append(folder, mails)
    deployment.command(["poll", "--once"], imap_account.password)
    assert deployment.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == 5
    old_validity = deployment.scalar("SELECT uidvalidity FROM mailbox_states")
    with imap_account.connect() as client:  # the folder is recreated: a new UIDVALIDITY
        client.delete_folder(folder)
    imap_account.append(folder, [*mails, make_mail(99, seed=5)])
    result = deployment.command(["poll", "--once"], imap_account.password)
    assert deployment.scalar("SELECT uidvalidity FROM mailbox_states") != old_validity
    assert "fetched 6, stored 1, duplicates 5" in result.stdout
    assert deployment.scalar("SELECT count(*) FROM messages WHERE direction = 'in'") == 6
    assert deployment.scalar("SELECT count(*) FROM cases") == 6


def test_oversized_and_unusable_mail_is_quarantined_and_the_poll_goes_on(
    deployment: Deployment, imap_account: ImapAccount
) -> None:
    deployment.processing["max_message_bytes"] = 20_000
    deployment.write()
    big = (
        b"From: a@example.org\r\nTo: complaints@example.com\r\nSubject: big\r\n\r\n"
        + b"x" * 30_000
        + b"\r\n"
    )
    no_sender = b"Subject: who am I\r\nTo: complaints@example.com\r\n\r\nno From header\r\n"
    imap_account.append("INBOX", [make_mail(1), big, no_sender, make_mail(2)])
    result = deployment.command(["poll", "--once"], imap_account.password)
    assert "stored 2" in result.stdout and "quarantined 2" in result.stdout
    assert imap_account.count("Quarantine") == 2
    assert imap_account.count("Processed") == 2
    assert imap_account.count("INBOX") == 0
    listing = deployment.command(["quarantine", "list"], imap_account.password).stdout
    assert "size-limit" in listing and "no sender address" in listing
    # The raw bytes are kept exactly: `show --raw` gives back what the server held.
    raw_back = [
        deployment.command_bytes(["quarantine", "show", str(i), "--raw"], imap_account.password)
        for i in (1, 2)
    ]
    assert sorted(raw_back) == sorted([big, no_sender])
    shown = [
        deployment.command(["quarantine", "show", str(i)], imap_account.password).stdout
        for i in (1, 2)
    ]
    assert sorted("over the limit" in text for text in shown) == [False, True]
    sender_less = 1 if "no sender" in shown[0] else 2
    status = deployment.command(["status"], imap_account.password).stdout
    assert "quarantine   2 held" in status and "quarantined 2" in status
    # Retrying the sender-less mail still fails: it stays held and the command says so.
    retry = deployment.command(
        ["quarantine", "retry", str(sender_less)], imap_account.password, check=False
    )
    assert retry.returncode == 1 and "still failing" in retry.stdout


def test_the_desk_names_itself_with_id_before_it_selects(
    deployment: Deployment, imap_account: ImapAccount, dovecot: DovecotServer
) -> None:
    """NetEase's servers (163.com, 126.com) refuse SELECT to a client that sent no ID."""
    imap_account.append("INBOX", make_mails(1))
    result = deployment.command(["poll", "--once"], imap_account.password)
    assert "stored 1" in result.stdout, result.stdout + result.stderr
    sessions = [line for line in dovecot.log_path.read_text(errors="replace").splitlines()
                if f"imap({imap_account.user})" in line]
    assert sessions, "Dovecot logged nothing of the desk's session"
    assert any("ID sent: name=complaint-processor" in line for line in sessions), sessions[-5:]


def test_a_mailbox_that_cannot_be_reached_does_not_stop_the_others(
    tmp_path: Path, sqlite_url: str, dovecot: DovecotServer
) -> None:
    healthy, refused, wrong_password = dovecot.account(), dovecot.account(), dovecot.account()
    (tmp_path / "wrong-password").write_text("not-the-password\n")
    dep = Deployment(
        tmp_path, sqlite_url,
        {"refused": (refused, ["a@example.com"]),
         "wrong_password": (wrong_password, ["b@example.com"]),
         "complaints": (healthy, ["complaints@example.com"])},
        mailbox_settings={"refused": {"port": free_port()},  # nothing listens there
                          "wrong_password": {"password_env": "",
                                             "password_file": str(tmp_path / "wrong-password")}},
    ).write()
    dep.upgrade()
    healthy.append("INBOX", make_mails(2))
    wrong_password.append("INBOX", make_mails(1, seed=9))

    result = dep.command(["poll", "--once"], healthy.password, check=False)
    assert result.returncode == 1
    assert "complaints: fetched 2, stored 2" in result.stdout, result.stdout + result.stderr
    assert "refused: not polled: connecting to" in result.stdout
    assert "wrong_password: not polled: connecting to" in result.stdout
    assert "2 mailbox(es) could not be polled: refused, wrong_password" in result.stderr
    assert "Traceback" not in result.stderr
    assert wrong_password.count("INBOX") == 1  # untouched

    status = dep.command(["status"], healthy.password).stdout
    assert "connection lost" in _status_of(status, "refused")["last error"], status
    assert "server said" in _status_of(status, "wrong_password")["last error"], status
    assert "last error" not in _status_of(status, "complaints"), status


def _status_of(status: str, mailbox: str) -> dict[str, str]:
    """The lines `complaints status` prints under one mailbox, by their label."""
    lines = status.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{mailbox} ("))
    block = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return {line[:12].strip(): line[12:].strip() for line in block}


def test_processed_folder_under_the_servers_inbox_prefix(
    tmp_path: Path, sqlite_url: str, dovecot_inbox_prefix: DovecotServer
) -> None:
    """cPanel, Courier and Cyrus keep every folder under "INBOX.": "Processed" is made there,
    and a monitored folder configured as "Complaints" is found there."""
    account = dovecot_inbox_prefix.account()
    with account.connect() as client:  # a folder the team's mail rules fill
        client.create_folder("INBOX.Complaints")
    dep = Deployment(tmp_path, sqlite_url, {"complaints": (account, ["complaints@example.com"])},
                     mailbox_settings={"complaints": {"folder": "Complaints"}}).write()
    dep.upgrade()
    mails = make_mails(4, seed=31)
    account.append("INBOX.Complaints", mails)
    result = dep.command(["poll", "--once"], account.password)
    assert "fetched 4, stored 4" in result.stdout, result.stdout + result.stderr
    assert sorted(account.fetch_all("INBOX.Processed")) == sorted(mails)
    assert account.count("INBOX.Complaints") == 0
    with account.connect() as client:
        assert {name for _, _, name in client.list_folders()} == {
            "INBOX", "INBOX.Complaints", "INBOX.Processed", "INBOX.Quarantine"}
    again = dep.command(["poll", "--once"], account.password)
    assert "fetched 0, stored 0" in again.stdout, again.stdout + again.stderr
