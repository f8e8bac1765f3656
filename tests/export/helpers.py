"""Builders for the dossier tests: cases written straight into a migrated database, raw mails
made with the standard library, and a look inside an exported ZIP."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from processor.blobstore import BlobStore
from processor.db import open_database, session_scope
from processor.db.models import Attachment, Case, Message, OutboxMail
from tests.deployment import Deployment

T0 = datetime(2026, 11, 14, 9, 30, tzinfo=UTC)


def make_mail(subject: str, body: str, *, sender: str = "wang@example.cn",
              message_id: str, attachments: Sequence[tuple[str, str, bytes]] = (),
              charset: str = "utf-8") -> bytes:
    mail = EmailMessage()
    mail["From"] = f"王喆 <{sender}>"
    mail["To"] = "complaints@example.com"
    mail["Subject"] = subject
    mail["Message-ID"] = message_id
    mail["Date"] = "Sat, 14 Nov 2026 17:30:00 +0800"
    mail.set_content(body, charset=charset)
    for filename, content_type, payload in attachments:
        maintype, subtype = content_type.split("/")
        mail.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes(policy=SMTP)


class CaseBuilder:
    """Writes cases, messages, attachments and outbox rows directly (no mail server)."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.engine = open_database(dep.db_url)
        self.store = BlobStore(dep.root / "data" / "blobs")
        self.count = 0

    def close(self) -> None:
        self.engine.dispose()

    def case(self, reference: str, *, subject: str = "宽带断网投诉", parent: str | None = None,
             link_kind: str | None = None) -> int:
        with session_scope(self.engine) as session:
            parent_id = None
            if parent:
                parent_id = session.query(Case.id).filter(Case.reference == parent).scalar()
            case = Case(reference=reference, status="open", mailbox="complaints",
                        complainant_address="wang@example.cn", complainant_name="王喆",
                        subject=subject, language="zh", category="network", priority="high",
                        tags=["broadband"], details={"details": {"account": ["88012345"]},
                                                     "missing": []},
                        opened_at=T0, updated_at=T0, parent_case_id=parent_id,
                        link_kind=link_kind)
            session.add(case)
            session.flush()
            return case.id

    def message(self, case_id: int, raw: bytes, *, direction: str = "in",
                attachments: Sequence[tuple[str, str, bytes]] = (),
                at: datetime | None = None, message_id: str | None = None) -> None:
        self.count += 1
        at = at or T0 + timedelta(minutes=self.count)
        with session_scope(self.engine) as session:
            row = Message(case_id=case_id, dedup_key=f"k{self.count}-{case_id}",
                          direction=direction,
                          author_role="complainant" if direction == "in" else "staff",
                          message_id=message_id, subject="投诉", from_address="wang@example.cn",
                          from_name="王喆", received_at=at, size=len(raw),
                          raw_sha256=self.store.put(raw), new_text="网络一直断。")
            for filename, content_type, payload in attachments:
                sha = self.store.put(payload)
                row.attachments.append(Attachment(filename=filename, stored_name=sha,
                                                  content_type=content_type, size=len(payload),
                                                  sha256=sha))
            session.add(row)
            self.store.sync()  # staged files go into place before the commit, as ingest does

    def outbox(self, case_id: int, raw: bytes, message_id: str, *,
               at: datetime | None = None) -> None:
        at = at or T0 + timedelta(hours=1)
        with session_scope(self.engine) as session:
            session.add(OutboxMail(case_id=case_id, kind="ack", message_id=message_id,
                                   recipient="wang@example.cn", recipients=["wang@example.cn"],
                                   subject="已收到", raw=raw, status="queued",
                                   next_attempt_at=at, created_at=at))


def sqlite_deployment(tmp_path: Path) -> Deployment:
    dep = Deployment(tmp_path, f"sqlite:///{tmp_path / 'complaints.sqlite3'}", {}).write()
    dep.upgrade()
    return dep


def export(dep: Deployment, reference: str, out: Path, *extra: str) -> Path:
    dep.command(["case", "export", reference, "--out", str(out), "--by", "tester", *extra], "")
    return out


def verify(dep: Deployment, bundle: Path) -> tuple[int, str]:
    result = dep.command(["case", "verify", str(bundle)], "", check=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


def manifest(bundle: Path) -> dict[str, Any]:
    with zipfile.ZipFile(bundle) as zf:
        return json.loads(zf.read("manifest.json"))  # type: ignore[no-any-return]


def files_by_kind(bundle: Path, kind: str) -> dict[str, dict[str, Any]]:
    entries = manifest(bundle)["files"]
    assert isinstance(entries, list)
    return {e["path"]: e for e in entries if e["kind"] == kind}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PageReader(HTMLParser):
    """What a reader of timeline.html sees: message articles, text, and anything active."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.messages: list[dict[str, str | None]] = []
        self.events: list[str] = []
        self.tags: set[str] = set()
        self.remote: list[str] = []
        self.text: list[str] = []
        self.charset: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = dict(attrs)
        if tag == "meta" and values.get("charset"):
            self.charset = values["charset"]
        if tag == "article" and "message" in (values.get("class") or "").split():
            self.messages.append(values)
        if tag == "article" and "event" in (values.get("class") or "").split():
            self.events.append(values.get("data-kind") or "")
        for name in ("src", "href", "action", "srcset"):
            value = values.get(name) or ""
            if "//" in value or value.startswith(("http:", "https:", "data:", "javascript:")):
                self.remote.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read_page(data: bytes) -> PageReader:
    reader = PageReader()
    reader.feed(data.decode("utf-8"))
    reader.close()
    return reader
