"""Acknowledgements of a large batch are composed in the preparing processes while it is filed
(processor.composing): the complainants get the same mails, and the cases the same history,
as when they are composed in the filing process."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from processor import blobstore, casework
from processor.db import session_scope
from processor.db.models import Case, Event, Message
from processor.imap import MailboxConnection
from processor.poller import Poller
from processor.prepare import MIN_PARALLEL_MAILS
from tests.acknowledge.conftest import Desk, make_desk
from tests.mailgen import make_mails
from tests.servers import DovecotServer, SmtpSink

BATCH = MIN_PARALLEL_MAILS + 6  # large enough to be prepared in a worker process
NOW = datetime(2026, 11, 29, 9, 43, 59, tzinfo=UTC)


def _desk(tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp: SmtpSink,
          processes: int, **processing: object) -> Desk:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return make_desk(tmp_path, sqlite_url, dovecot, smtp,
                     processing={"batch_size": BATCH, "parse_processes": processes,
                                 **processing})


def _history(desk: Desk) -> list[tuple[str, list[str], str, str]]:
    """Per case, in order: complainant, event kinds, the ack's subject and its text."""
    with session_scope(desk.runtime.engine) as session:
        found = []
        for case in session.scalars(select(Case).order_by(Case.id)):
            kinds = list(session.scalars(select(Event.kind).where(Event.case_id == case.id)
                                         .order_by(Event.id)))
            out = session.scalars(select(Message).where(
                Message.case_id == case.id, Message.direction == "out")).all()
            assert len(out) <= 1
            found.append((case.complainant_address, kinds, out[0].subject if out else "",
                          out[0].text if out else ""))
        return found


def _poll_at(desk: Desk, now: datetime) -> None:
    """Poll the desk's mailbox with its clock at `now` (the acks name a time from it)."""
    mailbox = desk.runtime.settings.mailboxes[0]
    with MailboxConnection(mailbox) as connection:
        Poller(desk.runtime, mailbox, clock=lambda: now).poll(connection)


def _close(desk: Desk) -> None:
    desk.runtime.preparer.close()
    desk.runtime.engine.dispose()
    desk.deployment.close()


def test_composed_by_the_workers_as_it_would_be_here(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
        smtp_delivering: SmtpSink) -> None:
    mails = make_mails(BATCH * 2)
    here = _desk(tmp_path / "here", f"sqlite:///{tmp_path / 'here.sqlite3'}", dovecot,
                 smtp_delivering, 0)
    there = _desk(tmp_path / "there", sqlite_url, dovecot, smtp_delivering, 1)
    try:
        for desk in (here, there):
            desk.deliver(*mails)
            _poll_at(desk, NOW)  # one clock: the acks' "answer by" minute is the same
        expected = _history(here)
        assert sum("ack-queued" in kinds for _, kinds, _, _ in expected) == len(expected) > 0
        # Message-IDs and dates differ; what each complainant reads and each history says
        # do not.
        assert _history(there) == expected
        outbox = there.outbox()
        assert len(outbox) == len(expected)
        store = there.runtime.store
        assert not list(store.root.rglob(".tmp-*"))
        with session_scope(there.runtime.engine) as session:
            for row in outbox:
                copy = session.scalars(select(Message).where(
                    Message.message_id == row.message_id)).one()
                assert store.get(copy.raw_sha256) == row.raw  # the copy the case keeps
                sent = message_from_bytes(row.raw, policy=policy.default)
                assert sent["Auto-Submitted"] == "auto-replied"
                assert copy.case.reference in str(sent["Subject"])
        stats = there.send()
        assert stats.sent == len(outbox)
    finally:
        _close(here)
        _close(there)


def test_an_acknowledgement_the_worker_cannot_compose_is_skipped_and_said(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
        smtp_delivering: SmtpSink) -> None:
    broken = tmp_path / "templates"
    broken.mkdir()
    for language in ("en", "zh"):
        (broken / f"ack-default.{language}.txt.j2").write_text("{{ no_such_variable }}\n")
    desk = _desk(tmp_path / "desk", sqlite_url, dovecot, smtp_delivering, 1,
                 templates_dir=str(broken))
    try:
        desk.deliver(*make_mails(BATCH))
        desk.poll()
        history = _history(desk)
        assert len(history) == BATCH
        for _, kinds, subject, _ in history:
            assert "ack-queued" not in kinds and not subject
        first = desk.events(desk.case_of(history[0][0]).reference)
        skipped = [data for kind, data in first if kind == "ack-skipped"]
        assert skipped == [{"reasons": ["cannot-compose:TemplateError"]}]
        # In the place the acknowledgement had in the history, right after the case opened.
        assert [kind for kind, _ in first].index("ack-skipped") == \
            [kind for kind, _ in first].index("case-opened") + 1 + sum(
                kind == "classified" for kind, _ in first)
        assert not desk.outbox()
        assert not list(desk.runtime.store.root.rglob(".tmp-*"))
    finally:
        _close(desk)


def test_a_batch_that_fails_leaves_no_composed_files_and_no_double_mail(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer, smtp_delivering: SmtpSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure is injected (a mock): recording the first composed acknowledgement raises
    once, as a full disk or a refused row could at that exact step."""
    desk = _desk(tmp_path / "desk", sqlite_url, dovecot, smtp_delivering, 1)
    real_record = casework.defer_outgoing
    calls: list[int] = []

    def record(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise OSError("injected failure while recording an acknowledgement")
        return real_record(*args, **kwargs)

    monkeypatch.setattr(casework, "defer_outgoing", record)
    try:
        desk.deliver(*make_mails(BATCH))
        desk.poll()
        assert calls, "the fault was not reached"
        history = _history(desk)
        assert len(history) == BATCH  # filed again, mail by mail, composed here
        assert [kinds.count("ack-queued") for _, kinds, _, _ in history] == [1] * BATCH
        assert len(desk.outbox()) == BATCH
        desk.runtime.preparer.close()  # the workers have finished writing
        assert not list(desk.runtime.store.root.rglob(".tmp-*"))
    finally:
        _close(desk)


def test_acknowledgements_queued_at_the_end_of_a_batch_count_for_a_progress_reply_in_it(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
        smtp_delivering: SmtpSink) -> None:
    """The global ceiling of automatic mail per minute counts the batch's acknowledgements,
    although they are queued only when the batch's rows are written."""
    ceiling = 5
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_delivering,
                     processing={"batch_size": BATCH, "parse_processes": 1},
                     global_per_minute=ceiling)
    try:
        asker = "asker@customer.example"
        desk.deliver(_mail(asker, "Line keeps dropping", "<q1@customer.example>"))
        desk.poll()
        [ack] = desk.outbox()
        desk.deliver(*make_mails(BATCH - 1), _mail(
            asker, f"Re: {ack.subject}", "<q2@customer.example>", ack.message_id,
            "Any progress on my complaint? What is the status?"))
        desk.poll()
        assert len(desk.outbox()) == ceiling  # the first ack, and four in the second batch
        events = desk.events(desk.case_of(asker).reference)
        skipped = [data for kind, data in events if kind == "progress-reply-skipped"]
        assert skipped == [{"reasons": [f"global-rate-limit:{ceiling}-per-minute"]}]
    finally:
        _close(desk)


def _mail(sender: str, subject: str, message_id: str, in_reply_to: str = "",
          body: str = "The line drops every evening.") -> bytes:
    threading = f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" \
        if in_reply_to else ""
    return (f"From: {sender}\r\nTo: complaints@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\n{threading}Date: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            ).encode()


def test_a_batch_filed_fast_syncs_its_files_data_while_its_rows_are_written(
        tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
        smtp_delivering: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    synced_on: list[str] = []
    real_syncfs = blobstore._syncfs

    def syncfs(root: Path) -> bool:
        synced_on.append(threading.current_thread().name)
        return real_syncfs(root)

    monkeypatch.setattr(blobstore, "_syncfs", syncfs)
    desk = _desk(tmp_path, sqlite_url, dovecot, smtp_delivering, 1)
    try:
        desk.deliver(*make_mails(BATCH))
        _poll_at(desk, NOW)
        # The data in the background, then the renames from the filing thread: one each.
        assert synced_on == ["blob-syncfs", threading.current_thread().name]
        assert not list(desk.runtime.store.root.rglob(".tmp-*"))
        with session_scope(desk.runtime.engine) as session:
            stored = session.scalars(select(Message.raw_sha256)).all()
        assert len(stored) == 2 * BATCH  # each mail and its acknowledgement
        assert all(desk.runtime.store.path_for(sha).is_file() for sha in stored)
    finally:
        _close(desk)
