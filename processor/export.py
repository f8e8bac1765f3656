"""Case dossier: one case as a ZIP of its original mails, attachments, timeline and a manifest.

The bundle is evidence for a regulator or a consumer body, so every mail goes in as the exact
bytes we received or sent (from the blob store, or from the outbox for mail not yet recorded as
a message), and `manifest.json` lists every file with its size and SHA-256; `manifest.sha256`
holds the hash of the manifest itself, which is also recorded on the case as an "exported"
event so a recipient can check it against a value sent separately.

Blobs are streamed into the ZIP in 1 MiB chunks and hashed while written, so a case with
hundreds of megabytes of attachments exports with flat memory. Only ASCII names go into the
ZIP (attachment names are derived from their hash); the original file names live in the
manifest and in timeline.html. `processor/dossier_verify.py` checks a bundle.

    <REF>.zip
    ├── mails/NNN-<in|out>-<YYYYMMDDTHHMMSSZ>.eml
    ├── attachments/NNN-<sha256[:12]>.<ext>       NNN = the mail it came with
    ├── timeline.json, timeline.html
    ├── linked/<REF>/...                         the same for each linked case (--include-linked)
    ├── manifest.json
    └── manifest.sha256                          "<hex>  manifest.json"
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Engine, Row, func, select
from sqlalchemy.orm import Session, selectinload

from processor import __version__
from processor.blobstore import BlobStore
from processor.db import session_scope
from processor.db.models import Case, Message, OutboxMail
from processor.db.store import add_event, case_by_reference
from processor.errors import ComplaintsError, NotFound
from processor.mail import parse_message
from processor.timeline import load_timeline

FORMAT = "complaints-dossier/1"
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"
CHUNK = 1 << 20
MAX_LINKED = 200  # a safety bound on walking parent/child links
_ZipTime = tuple[int, int, int, int, int, int]  # a ZIP entry's date_time
_EXTENSION = re.compile(r"[A-Za-z0-9]{1,8}")
# Already-compressed content gains nothing from deflate; store it and save the CPU.
_COMPRESSED_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp", "image/heic",
                     "application/zip", "application/gzip", "application/x-gzip",
                     "application/x-7z-compressed", "application/x-rar-compressed",
                     "application/vnd.rar", "application/pdf", "audio/mpeg", "audio/mp4",
                     "audio/aac", "audio/ogg", "video/")
_COMPRESSED_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".zip", ".gz",
                          ".7z", ".rar", ".pdf", ".mp3", ".m4a", ".aac", ".ogg", ".mp4", ".mov",
                          ".docx", ".xlsx", ".pptx"}


@dataclass(frozen=True, slots=True)
class AttachmentSource:
    path: str  # inside the bundle
    message_index: int
    filename: str
    content_type: str
    size: int
    sha256: str
    stored_name: str
    inline: bool


@dataclass(frozen=True, slots=True)
class MailSource:
    path: str
    index: int
    direction: str  # "in" or "out"
    at: datetime
    origin: str  # "message" (raw bytes in the blob store) or "outbox" (raw bytes in the row)
    message_id: str | None
    status: str
    size: int
    raw_sha256: str | None  # known for blobs; outbox rows are hashed as they are written
    outbox_id: int | None
    attachments: tuple[AttachmentSource, ...]


@dataclass(frozen=True, slots=True)
class CaseDossier:
    reference: str
    prefix: str  # "" for the exported case, "linked/<REF>/" for a linked one
    timeline: dict[str, object]  # exactly `case show --json`
    pending_outbox: tuple[dict[str, object], ...]  # outgoing mail with no message row yet
    mails: tuple[MailSource, ...]


@dataclass(frozen=True, slots=True)
class DossierPlan:
    reference: str
    cases: tuple[CaseDossier, ...]
    linked: tuple[dict[str, object], ...]


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    manifest_sha256: str
    files: int
    bytes_written: int
    mails: int
    attachments: int
    linked: tuple[str, ...]  # references of the linked cases included


@dataclass(slots=True)
class _Written:
    entries: list[dict[str, object]] = field(default_factory=list)


def export_case(engine: Engine, store: BlobStore, reference: str, out: Path, *,
                exported_by: str, now: datetime, include_linked: bool = False) -> ExportResult:
    """Write the dossier of `reference` to `out` (never overwritten) and record the export."""
    with session_scope(engine) as session:
        plan = plan_dossier(session, reference, include_linked=include_linked)

    def read_outbox(outbox_id: int) -> bytes:
        with session_scope(engine) as session:
            return bytes(session.scalars(
                select(OutboxMail.raw).where(OutboxMail.id == outbox_id)).one())

    result = write_dossier(plan, out, store=store, read_outbox=read_outbox,
                           exported_by=exported_by, now=now)
    try:
        with session_scope(engine) as session:
            case = case_by_reference(session, plan.reference)
            if case is None:
                raise NotFound(f"case {plan.reference} disappeared during the export")
            add_event(session, case, "exported", at=now, actor=exported_by,
                      manifest_sha256=result.manifest_sha256, file=out.name,
                      linked=list(result.linked))
    except BaseException:
        # An export that is not on the record must not exist.
        out.unlink(missing_ok=True)
        raise
    return result


# --- what goes in -------------------------------------------------------------------------

def plan_dossier(session: Session, reference: str, *, include_linked: bool) -> DossierPlan:
    case = case_by_reference(session, reference)
    if case is None:
        raise NotFound(f"no case {reference}", hint="list cases with `complaints cases`")
    linked = _linked_cases(session, case)
    cases = [_case_dossier(session, case, "")]
    if include_linked:
        cases += [_case_dossier(session, other, f"linked/{_safe_part(other.reference)}/")
                  for other in linked]
    by_id = {c.id: c.reference for c in [case, *linked]}
    listed: tuple[dict[str, object], ...] = tuple({
        "reference": other.reference, "link_kind": other.link_kind,
        "parent": by_id.get(other.parent_case_id) if other.parent_case_id else None,
        "status": other.status, "subject": other.subject, "included": include_linked,
        "path": f"linked/{_safe_part(other.reference)}/" if include_linked else None,
    } for other in linked)
    return DossierPlan(case.reference, tuple(cases), listed)


def _linked_cases(session: Session, case: Case) -> list[Case]:
    """Every case reachable through parent/child links (appeals, follow-ups), by reference."""
    seen = {case.id: case}
    frontier = [case]
    while frontier and len(seen) <= MAX_LINKED:
        ids = [c.id for c in frontier]
        parents = [c.parent_case_id for c in frontier if c.parent_case_id]
        found = list(session.scalars(select(Case).where(Case.parent_case_id.in_(ids))))
        if parents:
            found += list(session.scalars(select(Case).where(Case.id.in_(parents))))
        frontier = [c for c in found if c.id not in seen]
        seen.update((c.id, c) for c in frontier)
    return sorted((c for c in seen.values() if c.id != case.id), key=lambda c: c.reference)


def _case_dossier(session: Session, case: Case, prefix: str) -> CaseDossier:
    timeline = load_timeline(session, case.reference).as_json()
    messages = list(session.scalars(
        select(Message).where(Message.case_id == case.id)
        .options(selectinload(Message.attachments)).order_by(Message.received_at, Message.id)))
    recorded = {m.message_id for m in messages if m.message_id}
    pending = [row for row in session.execute(
        select(OutboxMail.id, OutboxMail.message_id, OutboxMail.kind, OutboxMail.status,
               OutboxMail.subject, OutboxMail.recipients, OutboxMail.created_at,
               OutboxMail.sent_at, func.length(OutboxMail.raw).label("raw_size"))
        .where(OutboxMail.case_id == case.id).order_by(OutboxMail.created_at, OutboxMail.id))
        if row.message_id not in recorded]

    # One numbering for all mails of the case, in time order; at the same instant a recorded
    # message sorts before an outbox row.
    ordered: list[tuple[datetime, int, Message | Row[Any]]] = [
        (m.received_at, 0, m) for m in messages]
    ordered += [(row.sent_at or row.created_at, 1, row) for row in pending]
    ordered.sort(key=lambda item: (item[0], item[1]))

    mails: list[MailSource] = []
    pending_json: list[dict[str, object]] = []
    used: set[str] = set()
    for index, (at, _, source) in enumerate(ordered, start=1):
        if isinstance(source, Message):
            mails.append(_message_source(source, index, at, prefix, used))
        else:
            mail = MailSource(f"{prefix}mails/{index:03d}-out-{_stamp(at)}.eml", index, "out",
                              at, "outbox", source.message_id, source.status,
                              int(source.raw_size or 0), None, source.id, ())
            mails.append(mail)
            pending_json.append(_pending_entry(session, source, mail))
    return CaseDossier(case.reference, prefix, timeline, tuple(pending_json), tuple(mails))


def _message_source(message: Message, index: int, at: datetime, prefix: str,
                    used: set[str]) -> MailSource:
    attachments = tuple(
        AttachmentSource(_attachment_path(prefix, index, a.sha256, a.filename, used), index,
                         a.filename, a.content_type, a.size, a.sha256, a.stored_name, a.inline)
        for a in message.attachments)
    status = "received" if message.direction == "in" else "sent"
    return MailSource(f"{prefix}mails/{index:03d}-{message.direction}-{_stamp(at)}.eml", index,
                      message.direction, at, "message", message.message_id, status, message.size,
                      message.raw_sha256, None, attachments)


def _pending_entry(session: Session, row: Row[Any], mail: MailSource) -> dict[str, object]:
    """An outgoing mail not (yet) recorded as a message, with its text for the timeline."""
    raw = session.scalars(select(OutboxMail.raw).where(OutboxMail.id == row.id)).one()
    parsed = parse_message(bytes(raw))
    return {
        "at": _iso(mail.at), "kind": "outbox", "direction": "out", "index": mail.index,
        "file": mail.path, "message_id": row.message_id, "status": row.status,
        "outbox_kind": row.kind, "subject": row.subject, "recipients": list(row.recipients or []),
        "created_at": _iso(row.created_at), "sent_at": _iso(row.sent_at),
        "new_text": parsed.new_text,
    }


def _attachment_path(prefix: str, index: int, sha256: str, filename: str, used: set[str]) -> str:
    stem = f"{prefix}attachments/{index:03d}-{sha256[:12]}"
    ext = filename.rsplit(".", 1)[1] if "." in filename else ""
    suffix = f".{ext.lower()}" if _EXTENSION.fullmatch(ext) else ""
    path, n = f"{stem}{suffix}", 1
    while path in used:  # the same content attached twice to one mail
        n += 1
        path = f"{stem}-{n}{suffix}"
    used.add(path)
    return path


def _safe_part(reference: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", reference) or "_"


def safe_file_stem(reference: str) -> str:
    """A reference as a file name part (references are normally already safe)."""
    return _safe_part(reference)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y%m%dT%H%M%SZ")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# --- writing ------------------------------------------------------------------------------

def write_dossier(plan: DossierPlan, out: Path, *, store: BlobStore,
                  read_outbox: Callable[[int], bytes], exported_by: str,
                  now: datetime) -> ExportResult:
    """Stream the bundle into `out`, which must not exist; on any failure nothing is left."""
    try:
        handle = open(out, "xb")  # noqa: SIM115 - closed below; "x" never overwrites
    except FileExistsError:
        raise ComplaintsError(f"{out} exists; an export never overwrites a file",
                              hint="choose another name with --out") from None
    except OSError as exc:
        raise ComplaintsError(f"cannot create {out}: {exc.strerror}") from None
    try:
        with handle:
            result = _write_zip(plan, out, handle, store, read_outbox, exported_by, now)
            handle.flush()
            os.fsync(handle.fileno())
        return result
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _write_zip(plan: DossierPlan, out: Path, handle: BinaryIO, store: BlobStore,
               read_outbox: Callable[[int], bytes], exported_by: str,
               now: datetime) -> ExportResult:
    written = _Written()
    when = (now.year, now.month, now.day, now.hour, now.minute, now.second)
    mails = attachments = 0
    with zipfile.ZipFile(handle, "w", allowZip64=True) as bundle:
        for dossier in plan.cases:
            for mail in dossier.mails:
                with _open_mail(store, read_outbox, mail) as source:
                    size, digest = _stream(bundle, mail.path, source, mail.size,
                                           zipfile.ZIP_DEFLATED, when)
                if mail.raw_sha256 and digest != mail.raw_sha256:
                    raise ComplaintsError(
                        f"the stored mail {mail.raw_sha256} of {dossier.reference} is damaged "
                        f"(its bytes hash to {digest})", hint="restore the blob store from backup")
                written.entries.append({
                    "path": mail.path, "size": size, "sha256": digest, "kind": "mail",
                    "case": dossier.reference, "index": mail.index, "direction": mail.direction,
                    "at": _iso(mail.at), "message_id": mail.message_id, "source": mail.origin,
                    "status": mail.status})
                mails += 1
                for att in mail.attachments:
                    _write_attachment(bundle, store, dossier.reference, att, when, written)
                    attachments += 1
            _write_timeline(bundle, plan, dossier, exported_by, now, when, written)
        manifest = _manifest(plan, exported_by, now, written.entries)
        manifest_sha = hashlib.sha256(manifest).hexdigest()
        _put_bytes(bundle, MANIFEST, manifest, when)
        _put_bytes(bundle, MANIFEST_HASH, f"{manifest_sha}  {MANIFEST}\n".encode(), when)
    included = tuple(c.reference for c in plan.cases[1:])
    return ExportResult(out, manifest_sha, len(written.entries) + 2, handle.tell(), mails,
                        attachments, included)


def _open_mail(store: BlobStore, read_outbox: Callable[[int], bytes],
               mail: MailSource) -> BinaryIO:
    if mail.origin == "outbox":
        assert mail.outbox_id is not None
        return io.BytesIO(read_outbox(mail.outbox_id))
    assert mail.raw_sha256 is not None
    return _open_blob(store, mail.raw_sha256, f"mail {mail.index}")


def _open_blob(store: BlobStore, sha256: str, what: str) -> BinaryIO:
    try:
        return open(store.path_for(sha256), "rb")
    except FileNotFoundError:
        raise ComplaintsError(f"{what}: blob {sha256} is missing from {store.root}",
                              hint="restore the blob store from backup") from None


def _write_attachment(bundle: zipfile.ZipFile, store: BlobStore, reference: str,
                      att: AttachmentSource, when: _ZipTime, written: _Written) -> None:
    compress = zipfile.ZIP_STORED if _is_compressed(att) else zipfile.ZIP_DEFLATED
    with _open_blob(store, att.stored_name, f"attachment {att.filename!r}") as source:
        size, digest = _stream(bundle, att.path, source, att.size, compress, when)
    if digest != att.sha256:
        raise ComplaintsError(f"the stored attachment {att.filename!r} of {reference} is damaged "
                              f"(expected {att.sha256}, got {digest})",
                              hint="restore the blob store from backup")
    written.entries.append({
        "path": att.path, "size": size, "sha256": digest, "kind": "attachment",
        "case": reference, "message_index": att.message_index, "filename": att.filename,
        "content_type": att.content_type, "inline": att.inline})


def _is_compressed(att: AttachmentSource) -> bool:
    content_type = att.content_type.lower()
    return (any(content_type.startswith(t) for t in _COMPRESSED_TYPES)
            or Path(att.filename.lower()).suffix in _COMPRESSED_EXTENSIONS)


def _stream(bundle: zipfile.ZipFile, name: str, source: BinaryIO, size_hint: int,
            compress: int, when: _ZipTime) -> tuple[int, str]:
    """Copy `source` into the bundle in chunks, hashing on the way; returns (size, sha256)."""
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    info.file_size = size_hint  # lets zipfile choose ZIP64 up front for very large files
    digest = hashlib.sha256()
    size = 0
    with bundle.open(info, "w", force_zip64=size_hint > zipfile.ZIP64_LIMIT // 2) as sink:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _put_bytes(bundle: zipfile.ZipFile, name: str, data: bytes, when: _ZipTime,
               written: _Written | None = None, **about: object) -> None:
    size, digest = _stream(bundle, name, io.BytesIO(data), len(data), zipfile.ZIP_DEFLATED, when)
    if written is not None:
        written.entries.append({"path": name, "size": size, "sha256": digest, **about})


def _write_timeline(bundle: zipfile.ZipFile, plan: DossierPlan, dossier: CaseDossier,
                    exported_by: str, now: datetime, when: _ZipTime,
                    written: _Written) -> None:
    data = {**dossier.timeline, "outbox": list(dossier.pending_outbox)}
    as_json = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    _put_bytes(bundle, f"{dossier.prefix}timeline.json", as_json.encode(), when, written,
               kind="timeline", case=dossier.reference)
    page = render_timeline_html(dossier, plan, exported_by, now)
    _put_bytes(bundle, f"{dossier.prefix}timeline.html", page.encode(), when, written,
               kind="timeline-html", case=dossier.reference)


def _manifest(plan: DossierPlan, exported_by: str, now: datetime,
              entries: list[dict[str, object]]) -> bytes:
    manifest = {
        "format": FORMAT, "case": plan.reference, "exported_at": _iso(now),
        "exported_by": exported_by,
        "software": {"name": "complaint-processor", "version": __version__},
        "cases": [{"reference": c.reference, "path": c.prefix or "./"} for c in plan.cases],
        "linked": list(plan.linked), "files": entries,
    }
    return (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode()


# --- timeline.html ------------------------------------------------------------------------

_CSS = """
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Noto Sans SC",
       "Source Han Sans SC", "Helvetica Neue", Arial, sans-serif;
       font-size: 11pt; line-height: 1.45; color: #111; max-width: 60em; margin: 2em auto;
       padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 1.6em;
     border-bottom: 1px solid #999; }
table.facts { border-collapse: collapse; } table.facts th, table.facts td { text-align: left;
     vertical-align: top; padding: .1em .8em .1em 0; } table.facts th { color: #444;
     font-weight: normal; white-space: nowrap; }
article { border-left: 3px solid #bbb; padding: .3em 0 .3em .8em; margin: 1em 0; }
article.in { border-color: #2a6fb0; } article.out { border-color: #2e8b57; }
article.event { border-color: #ddd; color: #333; font-size: .95em; }
.when { color: #555; font-variant-numeric: tabular-nums; } .label { font-weight: bold; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: inherit; margin: .4em 0;
        background: #f6f6f6; padding: .5em; }
.hash { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: .8em; color: #555;
        overflow-wrap: anywhere; }
ul.files { margin: .3em 0; padding-left: 1.2em; }
@page { size: A4; margin: 15mm; }
@media print { body { margin: 0; max-width: none; } a { color: inherit; text-decoration: none; }
  .meta, h2 { break-after: avoid; } article.event { break-inside: avoid; } }
"""


def render_timeline_html(dossier: CaseDossier, plan: DossierPlan, exported_by: str,
                         now: datetime) -> str:
    """A self-contained page of the timeline: inline CSS, no scripts, every value escaped."""
    case = dossier.timeline["case"]
    assert isinstance(case, dict)
    title = f"Case {case['reference']}: {case.get('subject') or ''}"
    language = str(case.get("language") or "")
    lang = language if re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})?", language) else "und"
    parts = ["<!DOCTYPE html>", f'<html lang="{lang}">', "<head>", '<meta charset="utf-8">',
             f"<title>{_e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
             f"<h1>Case {_e(case['reference'])}</h1>",
             f'<p class="meta">{_e(case.get("subject") or "")}</p>',
             f'<p class="meta when">Exported {_e(_human(_iso(now)))} by {_e(exported_by)} '
             f"with complaint-processor {_e(__version__)}. Times are UTC. The files named here "
             "are in this bundle; their SHA-256 hashes are in manifest.json.</p>",
             "<h2>Case</h2>", _case_facts(case), _details(case)]
    linked = plan.linked if dossier.prefix == "" else ()
    if linked:
        parts.append("<h2>Linked cases</h2>")
        parts.append(_table([(str(c["reference"]), f"{c.get('link_kind') or 'linked'} of "
                              f"{c.get('parent') or '-'}; {c.get('status')}; "
                              f"{c.get('subject') or ''}"
                              + ("; included in this bundle" if c.get("included") else ""))
                             for c in linked]))
    parts.append("<h2>Timeline</h2>")
    parts += _timeline_entries(dossier)
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _timeline_entries(dossier: CaseDossier) -> list[str]:
    by_sha: dict[str, list[MailSource]] = {}
    for source in dossier.mails:
        if source.raw_sha256:
            by_sha.setdefault(source.raw_sha256, []).append(source)
    entries: list[tuple[str, int, str]] = []
    timeline = dossier.timeline["timeline"]
    assert isinstance(timeline, list)
    for order, entry in enumerate(timeline):
        if entry["kind"] == "message":
            candidates = by_sha.get(str(entry.get("raw_sha256")), [])
            mail = candidates.pop(0) if candidates else None
            entries.append((entry["at"] or "", order, _message_html(entry, mail, dossier.prefix)))
        else:
            entries.append((entry["at"] or "", order, _event_html(entry)))
    for pending in dossier.pending_outbox:
        entries.append((str(pending["at"]), len(entries), _outbox_html(pending, dossier.prefix)))
    entries.sort(key=lambda item: (_sort_time(item[0]), item[1]))
    return [html_part for _, _, html_part in entries]


def _sort_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _message_html(entry: dict[str, Any], mail: MailSource | None, prefix: str) -> str:
    direction = "in" if entry.get("direction") == "in" else "out"
    index = mail.index if mail is not None else 0
    arrow = "Received from" if direction == "in" else "Sent by"
    sender = entry.get("from") or ""
    name = entry.get("from_name") or ""
    who = f"{name} <{sender}>" if name else str(sender)
    lines = [f'<article class="message {direction}" id="mail-{index:03d}" '
             f'data-index="{index}" data-direction="{direction}">',
             f'<div><span class="label">#{index:03d} {arrow}</span> {_e(who)} '
             f'<span class="when">{_e(_human(entry.get("at")))}</span></div>',
             _table([("Subject", entry.get("subject") or ""),
                     ("Role", entry.get("author_role") or ""),
                     ("Message-ID", entry.get("message_id") or ""),
                     ("Date header", _human(entry.get("sent_at"))),
                     ("To our address", ", ".join(map(str, entry.get("received_by") or []))),
                     ("Automatic", "yes" if entry.get("auto_submitted") else "no")])]
    if mail:
        lines.append(f'<div class="hash">original: <a href="{_e(mail.path[len(prefix):])}">'
                     f"{_e(mail.path[len(prefix):])}</a> ({mail.size} bytes, SHA-256 "
                     f"{_e(str(entry.get('raw_sha256')))})</div>")
    lines.append(f'<div class="text">{_e(str(entry.get("new_text") or ""))}</div>')
    atts = entry.get("attachments") or []
    assert isinstance(atts, list)
    if atts:
        files = {a.sha256: a for a in (mail.attachments if mail else ())}
        lines.append('<ul class="files">')
        for att in atts:
            found = files.get(att["sha256"])
            where = (f' &rarr; <a href="{_e(found.path[len(prefix):])}">'
                     f"{_e(found.path[len(prefix):])}</a>") if found else ""
            lines.append(f'<li class="attachment">{_e(att["filename"])} '
                         f'({_e(att["content_type"])}, {att["size"]} bytes){where}'
                         f' <span class="hash">SHA-256 {_e(att["sha256"])}</span></li>')
        lines.append("</ul>")
    lines.append("</article>")
    return "\n".join(lines)


def _outbox_html(pending: dict[str, Any], prefix: str) -> str:
    index = int(pending["index"])
    path = str(pending["file"])[len(prefix):]
    recipients = ", ".join(map(str, pending.get("recipients") or []))
    return "\n".join([
        f'<article class="message out" id="mail-{index:03d}" data-index="{index}" '
        f'data-direction="out">',
        f'<div><span class="label">#{index:03d} Outgoing ({_e(pending["outbox_kind"])}, '
        f'{_e(pending["status"])})</span> to {_e(recipients)} '
        f'<span class="when">{_e(_human(pending["at"]))}</span></div>',
        _table([("Subject", pending.get("subject") or ""),
                ("Message-ID", pending.get("message_id") or ""),
                ("Queued", _human(pending.get("created_at"))),
                ("Sent", _human(pending.get("sent_at")))]),
        f'<div class="hash">original: <a href="{_e(path)}">{_e(path)}</a></div>',
        f'<div class="text">{_e(str(pending.get("new_text") or ""))}</div>',
        "</article>"])


def _event_html(entry: dict[str, Any]) -> str:
    extra = [(k, _plain(v)) for k, v in entry.items() if k not in ("at", "kind", "actor")]
    return "\n".join([
        f'<article class="event" data-kind="{_e(entry["kind"])}">',
        f'<div><span class="label">{_e(entry["kind"])}</span> by {_e(entry.get("actor"))} '
        f'<span class="when">{_e(_human(entry.get("at")))}</span></div>',
        _table(extra) if extra else "", "</article>"])


def _case_facts(case: dict[str, Any]) -> str:
    complainant = case.get("complainant") or {}
    assert isinstance(complainant, dict)
    who = complainant.get("name") or ""
    address = complainant.get("address") or ""
    return _table([
        ("Reference", case.get("reference")), ("Status", case.get("status")),
        ("Complainant", f"{who} <{address}>" if who else address),
        ("Mailbox", case.get("mailbox")), ("Subject", case.get("subject")),
        ("Language", case.get("language")), ("Category", case.get("category") or "-"),
        ("Priority", case.get("priority")), ("SLA hours", case.get("sla_hours") or "-"),
        ("Tags", ", ".join(map(str, case.get("tags") or [])) or "-"),
        ("Team", case.get("team") or "-"), ("Assignee", case.get("assignee") or "-"),
        ("Opened", _human(case.get("opened_at"))), ("Updated", _human(case.get("updated_at")))])


def _details(case: dict[str, Any]) -> str:
    details = case.get("details") or {}
    if not isinstance(details, dict):
        return ""
    found = details.get("details") or {}
    rows = [(k, _plain(v)) for k, v in found.items() if v] if isinstance(found, dict) else []
    missing = details.get("missing") or []
    if missing:
        rows.append(("Missing", _plain(missing)))
    return ("<h2>Details found in the mail</h2>" + _table(rows)) if rows else ""


def _table(rows: Iterable[tuple[object, object]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _plain(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def _human(value: object) -> str:
    """An ISO time from the timeline as "2026-11-14 09:30:00 UTC"."""
    if not value:
        return "-"
    try:
        return _sort_time(str(value)).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return str(value)


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)
