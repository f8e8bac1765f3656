"""An in-process desk wired to Dovecot and an SMTP server that delivers into Dovecot."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from processor.db import session_scope
from processor.db.models import Case, Event, OutboxMail
from processor.outbox import DrainStats, drain_once
from processor.runner import poll_all_once
from processor.runtime import Runtime, open_runtime
from tests.deployment import Deployment
from tests.servers import DovecotServer, ImapAccount, SmtpSink


@dataclass
class Desk:
    deployment: Deployment
    desk_account: ImapAccount
    dovecot: DovecotServer
    smtp: SmtpSink
    runtime: Runtime

    def complainant(self) -> str:
        """A fresh complainant address whose mailbox is a Dovecot user on the test server."""
        return f"{self.dovecot.new_user('cust')}@customer.example"

    def deliver(self, *raws: bytes) -> None:
        self.desk_account.append("INBOX", raws)

    def poll(self) -> None:
        poll_all_once(self.runtime)

    def send(self, clock: Callable | None = None) -> DrainStats:  # type: ignore[type-arg]
        if clock is None:
            return drain_once(self.runtime.engine, self.runtime.settings)
        import asyncio

        from processor.outbox import drain_outbox

        return asyncio.run(drain_outbox(self.runtime.engine, self.runtime.settings, clock))

    def inbox_of(self, address: str) -> list[EmailMessage]:
        user = address.split("@")[0]
        return [message_from_bytes(raw, policy=policy.default)  # type: ignore[misc]
                for raw in self.dovecot.account(user).fetch_all("INBOX")]

    def case(self, reference: str) -> Case:
        with session_scope(self.runtime.engine) as session:
            case = session.scalars(select(Case).where(Case.reference == reference)).one()
            session.expunge(case)
            return case

    def case_of(self, sender: str) -> Case:
        with session_scope(self.runtime.engine) as session:
            case = session.scalars(select(Case).where(Case.complainant_address == sender)).one()
            session.expunge(case)
            return case

    def events(self, reference: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
        with session_scope(self.runtime.engine) as session:
            case = session.scalars(select(Case).where(Case.reference == reference)).one()
            return [(e.kind, dict(e.data)) for e in session.scalars(
                select(Event).where(Event.case_id == case.id).order_by(Event.id))]

    def outbox(self) -> list[OutboxMail]:
        with session_scope(self.runtime.engine) as session:
            rows = list(session.scalars(select(OutboxMail).order_by(OutboxMail.id)))
            session.expunge_all()
            return rows


def make_desk(tmp_path: Path, db_url: str, dovecot: DovecotServer, smtp: SmtpSink,
              staff: dict[str, object] | None = None, lifecycle: dict[str, object] | None = None,
              processing: dict[str, object] | None = None, **ack: object) -> Desk:
    account = dovecot.account(dovecot.new_user("desk"))
    dep = Deployment(tmp_path, db_url, {"complaints": (account, ["complaints@example.com"])},
                     processing=dict(processing or {}))
    if staff is not None:
        dep.sections["staff"] = {"secret_env": "COMPLAINTS_TEST_REPLY_SECRET", **staff}
        os.environ["COMPLAINTS_TEST_REPLY_SECRET"] = "test-secret-for-reply-addresses"
    if lifecycle is not None:
        dep.sections["lifecycle"] = lifecycle
    dep.use_smtp(smtp.host, smtp.port, **ack)
    dep.upgrade()
    runtime = open_runtime(dep.settings(account.password), with_rules=True)
    return Desk(dep, account, dovecot, smtp, runtime)


@contextlib.contextmanager
def opened_desk(tmp_path: Path, db_url: str, dovecot: DovecotServer, smtp: SmtpSink,
                **options: Any) -> Iterator[Desk]:
    """make_desk's desk, closed again at the end (for a fixture to yield)."""
    made = make_desk(tmp_path, db_url, dovecot, smtp, **options)
    try:
        yield made
    finally:
        made.runtime.engine.dispose()
        made.deployment.close()


@pytest.fixture
def desk(tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
         smtp_delivering: SmtpSink) -> Iterator[Desk]:
    with opened_desk(tmp_path, sqlite_url, dovecot, smtp_delivering) as made:
        yield made
