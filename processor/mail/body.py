"""Choosing the readable body of a part tree, and collecting attachments and forwarded mails.

Rules: multipart/alternative prefers text/plain unless it is empty or a stub pointing at the
HTML; related, signed and report parts contribute their first (root) part as the body and
everything else as attachments; anything that is not text/plain or text/html is never body.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from processor.mail.charset import decode_text
from processor.mail.headers import parse_params
from processor.mail.html import html_to_text
from processor.mail.limits import ParseLimits
from processor.mail.mime import Part, transfer_decode, transfer_decode_pieces
from processor.mail.model import Attachment

# Attachments above this size are not kept decoded after parsing (see model.Attachment).
_KEEP_DECODED = 64 * 1024
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_STUB = re.compile(
    r"html|超文本|不支持|does not support|cannot display|can't display|view (?:this|it) in",
    re.IGNORECASE,
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f]")
_EXTENSIONS = {
    "message/rfc822": ".eml", "message/global": ".eml", "text/plain": ".txt",
    "text/html": ".html", "text/calendar": ".ics", "text/rfc822-headers": ".txt",
    "message/delivery-status": ".txt", "message/disposition-notification": ".txt",
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
    "application/pdf": ".pdf", "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s", "application/ms-tnef": ".dat",
    "application/zip": ".zip", "audio/amr": ".amr", "video/mp4": ".mp4",
}


@dataclass(frozen=True, slots=True)
class Enclosed:
    """A message/rfc822 part: the buffer it lives in and its part tree when already parsed."""

    raw: bytes
    part: Part | None
    depth: int


@dataclass(slots=True)
class _Collected:
    """The mutable tally of one walk; it never leaves this module."""

    pieces: list[tuple[str, str]] = field(default_factory=list)  # ("plain"|"html", text)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    enclosed: list[Enclosed] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Body:
    """The body of one message: readable text, the HTML if any, attachments, forwarded mails."""

    text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    enclosed: tuple[Enclosed, ...]


def collect_body(raw: bytes, root: Part, limits: ParseLimits, defects: list[str],
                 keep_decoded: bool = False) -> Body:
    """The readable text, attachments and enclosed mails of a parsed structure. With
    `keep_decoded`, a large attachment keeps the bytes decoded to hash it (Attachment.decoded)."""
    walker = _Walker(raw, limits, defects, keep_decoded)
    found = _Collected()
    walker.visit(root, found, in_body=True)
    texts = [walker.readable(kind, text) for kind, text in found.pieces]
    text = "\n".join(piece.strip("\n") for piece in texts if piece.strip())
    if len(text) > limits.max_text_chars:
        defects.append(f"body: text longer than {limits.max_text_chars} characters cut")
        text = text[:limits.max_text_chars]
    return Body(text, found.html[0] if found.html else None, tuple(found.attachments),
                tuple(found.enclosed))


class _Walker:
    def __init__(self, raw: bytes, limits: ParseLimits, defects: list[str],
                 keep_decoded: bool = False) -> None:
        self.raw = raw
        self.limits = limits
        self.defects = defects
        self.keep_decoded = keep_decoded
        self.attachment_count = 0

    def visit(self, part: Part, found: _Collected, in_body: bool) -> None:
        content_type = part.content_type
        if part.is_multipart:
            children = part.children
            if not children:
                return
            if content_type == "multipart/alternative":
                self._alternative(children, found, in_body)
                return
            root = 0
            if content_type == "multipart/related":
                start = part.params.get("start", "").strip("<> ")
                root = next((i for i, c in enumerate(children)
                             if start and (c.get("content-id") or "").strip("<> ") == start), 0)
            elif content_type not in ("multipart/signed", "multipart/encrypted",
                                      "multipart/report"):
                for child in children:
                    self.visit(child, found, in_body)
                return
            for index, child in enumerate(children):
                self.visit(child, found, in_body and index == root)
            return
        disposition, disposition_params = self._disposition(part)
        filename = disposition_params.get("filename") or part.params.get("name")
        if (in_body and content_type in ("text/plain", "text/html")
                and disposition != "attachment"
                # A named text part without disposition is the body when it comes first.
                and (not filename or disposition == "inline"
                     or (not disposition and not found.pieces))):
            text = self._decode_text(part)
            found.pieces.append(("html" if content_type == "text/html" else "plain", text))
            if content_type == "text/html":
                found.html.append(text)
            return
        self._attachment(part, disposition, filename, found)

    def _alternative(self, children: tuple[Part, ...], found: _Collected, in_body: bool) -> None:
        options = []
        for child in children:
            option = _Collected()
            self.visit(child, option, in_body)
            options.append(option)
            found.html.extend(option.html)
            found.attachments.extend(option.attachments)
            found.enclosed.extend(option.enclosed)
        if not in_body:
            return
        plain = next((o for o in options if o.pieces and all(k == "plain" for k, _ in o.pieces)
                      and not _is_stub("".join(t for _, t in o.pieces))), None)
        rich = next((o for o in options if any(k == "html" for k, _ in o.pieces)), None)
        chosen = plain or rich or next((o for o in options if o.pieces), None)
        if chosen is not None:
            found.pieces.extend(chosen.pieces)

    def _disposition(self, part: Part) -> tuple[str, dict[str, str]]:
        value = part.get("content-disposition")
        if not value:
            return "", {}
        main, params = parse_params(value, self.defects, part.params.get("charset"))
        return main, params

    def _decode_text(self, part: Part) -> str:
        where = part.content_type
        data = transfer_decode(self.raw, part, self.defects, where)
        if len(data) > self.limits.max_text_chars * 4:
            self.defects.append(f"{where}: body larger than the text limit cut")
            data = data[:self.limits.max_text_chars * 4]
        charset = part.params.get("charset")
        if not charset and part.content_type == "text/html":
            meta = _META_CHARSET.search(data, 0, 4096)
            charset = meta.group(1).decode("ascii") if meta else None
        text = decode_text(data, charset, self.defects,
                           sample_limit=self.limits.max_detect_bytes, where=where)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if part.params.get("format", "").lower() == "flowed":
            text = _unflow(text, part.params.get("delsp", "").lower() == "yes")
        return text

    def readable(self, kind: str, text: str) -> str:
        if kind == "plain":
            return text
        if len(text) > self.limits.max_html_bytes:
            self.defects.append(f"text/html: only the first {self.limits.max_html_bytes} "
                                "characters converted to text")
            text = text[:self.limits.max_html_bytes]
        return html_to_text(text)

    def _attachment(self, part: Part, disposition: str, filename: str | None,
                    found: _Collected) -> None:
        if self.attachment_count >= self.limits.max_attachments:
            if self.attachment_count == self.limits.max_attachments:
                self.defects.append(
                    f"attachment: more than {self.limits.max_attachments}, the rest skipped")
            self.attachment_count += 1
            return
        self.attachment_count += 1
        encoded_size = part.body_end - part.body_start
        cte = (part.get("content-transfer-encoding") or "").lower()
        estimate = encoded_size * 3 // 4 if "base64" in cte else encoded_size
        limit = self.limits.max_attachment_bytes
        if estimate > limit * 1.05 + 1024:
            self.defects.append(f"attachment: {_safe_name(filename or '')!r} larger than "
                                f"{limit} bytes skipped")
            return
        size, sha256, payload = self._decoded(part)
        if size > limit:
            self.defects.append(f"attachment: {_safe_name(filename or '')!r} larger than "
                                f"{limit} bytes skipped")
            return
        name = _safe_name(filename or "")
        if not name:
            name = f"attachment-{self.attachment_count}" + _EXTENSIONS.get(part.content_type,
                                                                           ".bin")
        content_id = (part.get("content-id") or "").strip().strip("<>").strip() or None
        lazy = size > _KEEP_DECODED
        if payload is None and not lazy:
            payload = transfer_decode(self.raw, part, [], "attachment")
        found.attachments.append(Attachment(
            filename=name,
            content_type=part.content_type,
            size=size,
            sha256=sha256,
            inline=disposition == "inline" or (not disposition and content_id is not None),
            content_id=content_id,
            source=_lazy_payload(self.raw, part) if lazy else payload or b"",
            pieces=_lazy_pieces(self.raw, part) if lazy else None,
            decoded=payload if lazy and self.keep_decoded else None,
        ))
        if part.content_type in _MESSAGE_TYPES:
            if part.enclosed is not None:
                found.enclosed.append(Enclosed(self.raw, part.enclosed, part.depth + 1))
            elif part.depth + 1 <= self.limits.max_depth and payload is not None:
                found.enclosed.append(Enclosed(payload, None, part.depth + 1))

    def _decoded(self, part: Part) -> tuple[int, str, bytes | None]:
        """Size and SHA-256 of the decoded body, and the decoded bytes unless it is large.

        A large body is hashed a piece at a time: its whole decoded copy would be the biggest
        thing in memory while the mail is parsed (30 MB for a 30 MB recording). A forwarded
        mail is always decoded whole, since it is parsed in turn, and so is every body when
        the caller keeps the decoded bytes (`keep_decoded`).
        """
        if (self.keep_decoded or part.body_end - part.body_start <= _KEEP_DECODED
                or part.content_type in _MESSAGE_TYPES):
            payload = transfer_decode(self.raw, part, self.defects, "attachment")
            return len(payload), hashlib.sha256(payload).hexdigest(), payload
        digest, size = hashlib.sha256(), 0
        for piece in transfer_decode_pieces(self.raw, part, self.defects, "attachment"):
            digest.update(piece)
            size += len(piece)
        return size, digest.hexdigest(), None


def _lazy_payload(raw: bytes, part: Part) -> Callable[[], bytes]:
    """Decode the part again when asked; the defects were recorded by the first decoding.
    (A partial, not a lambda: a parsed mail can be sent between processes.)"""
    return functools.partial(transfer_decode, raw, part, [], "attachment")


def _lazy_pieces(raw: bytes, part: Part) -> Callable[[], Iterator[bytes]]:
    return functools.partial(transfer_decode_pieces, raw, part, [], "attachment")


def _is_stub(text: str) -> bool:
    stripped = text.strip()
    return not stripped or (len(stripped) < 300 and bool(_STUB.search(stripped)))


def _safe_name(filename: str) -> str:
    """A filename that cannot climb directories or hide control characters."""
    name = _UNSAFE_FILENAME.sub("", filename).replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = name.lstrip(".") if set(name) == {"."} else name
    return name[:255]


def _unflow(text: str, delsp: bool) -> str:
    """Join RFC 3676 soft line breaks (a line ending in a space continues on the next).

    Quoted lines are left alone: they are history, and quote removal drops them anyway.
    """
    out: list[str] = []
    current: str | None = None
    for line in text.split("\n"):
        if line.startswith(">") or line == "-- ":
            if current is not None:
                out.append(current)
                current = None
            out.append(line)
            continue
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        current = line if current is None else current + line
        if current.endswith(" "):
            if delsp:
                current = current[:-1]
            continue
        out.append(current)
        current = None
    if current is not None:
        out.append(current)
    return "\n".join(out)
