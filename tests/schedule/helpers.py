"""A desk with staff, a team lead and a controllable clock for the scheduler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import update

from processor.db import session_scope
from processor.db.models import Case
from processor.scheduler import TickResult, tick
from tests.acknowledge.conftest import Desk


@dataclass
class Scene:
    desk: Desk
    complainant: str
    team: str
    agent: str
    lead: str
    latest_tick: datetime | None = None

    def send(self) -> None:
        """Send what is queued, on the clock of the latest tick (its mail is due then)."""
        latest = self.latest_tick
        if latest is None:
            self.desk.send()
        else:
            self.desk.send(lambda: latest)

    def mail(self, subject: str, body: str, *, msgid: str, in_reply_to: str | None = None,
             sender: str | None = None) -> bytes:
        head = (f"From: {sender or self.complainant}\r\nTo: complaints@example.com\r\n"
                f"Subject: {subject}\r\nMessage-ID: {msgid}\r\nMIME-Version: 1.0\r\n")
        if in_reply_to:
            head += f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n"
        return (head + "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + body.encode()

    def round(self, *raws: bytes) -> None:
        self.desk.deliver(*raws)
        self.desk.poll()
        self.desk.send()

    def tick(self, now: datetime) -> TickResult:
        runtime = self.desk.runtime
        self.latest_tick = max(now, self.latest_tick or now)
        return tick(runtime.engine, runtime.settings, now, renderer=runtime.renderer,
                    store=runtime.store)

    def set_case(self, reference: str, **values: object) -> None:
        with session_scope(self.desk.runtime.engine) as session:
            session.execute(update(Case).where(Case.reference == reference).values(**values))

    def texts_to(self, address: str) -> list[tuple[EmailMessage, str]]:
        return [(m, m.get_body(("plain",)).get_content())  # type: ignore[union-attr]
                for m in self.desk.inbox_of(address)]

    def kinds(self, reference: str) -> list[str]:
        return [k for k, _ in self.desk.events(reference)]
