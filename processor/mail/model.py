"""The typed result of parsing one mail: what every later stage (classify, thread, store) reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox from an address header; `address` is lower-cased only in its domain part."""

    name: str
    address: str

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "address": self.address}


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment: its name, type, decoded size and SHA-256, and `payload`, the decoded bytes.

    The parser does not keep a large attachment's decoded bytes (unless asked: `decoded`):
    `source` is either the bytes or a function that decodes them again from the raw mail when
    `payload` is read. A batch of parsed mails then
    costs their raw bytes only, not a second, decoded copy of every attachment (base64
    decoding is cheap; holding a 200-mail batch's attachments twice is not). `chunks()` gives
    the same bytes in pieces, so a large attachment can be stored without a whole decoded copy.
    """

    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool
    content_id: str | None
    source: bytes | Callable[[], bytes] = field(default=b"", repr=False, compare=False)
    # For a lazy attachment: decodes it again in pieces (see `chunks`).
    pieces: Callable[[], Iterator[bytes]] | None = field(default=None, repr=False, compare=False)
    # A lazy attachment's decoded bytes, when the parser was asked to keep them for a caller
    # that stores them at once (processor.prepare's workers), so that storing them does not
    # decode them a second time. Dropped before a parsed mail goes to another process.
    decoded: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def payload(self) -> bytes:
        """The decoded bytes (decoded on each read when the attachment is lazy)."""
        if self.decoded is not None:
            return self.decoded
        return self.source() if callable(self.source) else self.source

    def chunks(self) -> Iterator[bytes]:
        """The decoded bytes in pieces (under a megabyte each for a large base64 attachment)."""
        if self.decoded is not None:
            yield self.decoded
        elif self.pieces is not None:
            yield from self.pieces()
        else:
            yield self.payload

    def as_json(self) -> dict[str, object]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "inline": self.inline,
            "content_id": self.content_id,
        }


_EMPTY_HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything the processor knows about one mail after parsing.

    `headers` maps lower-cased header names to their decoded values, in order of appearance.
    `date` is timezone-aware UTC or None. `language` is a short code such as "zh" or "en".
    `new_text` is what the sender wrote in this mail: quoted history and signature removed.
    `defects` lists, as short human-readable strings, what was wrong and repaired or skipped.
    `forwarded` holds the mails attached whole (message/rfc822), each parsed like this one;
    their raw bytes are also among `attachments`.
    """

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime | None
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    normalized_subject: str
    language: str
    text: str
    new_text: str
    html: str | None
    attachments: tuple[Attachment, ...]
    auto_submitted: bool
    auto_reasons: tuple[str, ...]
    defects: tuple[str, ...]
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _EMPTY_HEADERS)
    return_path: str | None = None
    size: int = 0
    # Mails attached as message/rfc822 (a forwarded complaint), parsed the same way.
    forwarded: tuple[ParsedMessage, ...] = ()

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled field by field, the read-only header mapping as a plain dict (between the
        processes of processor.prepare, see its `crosses_processes`)."""
        values = [getattr(self, f.name) for f in fields(self)]
        values[_HEADERS_FIELD] = dict(self.headers)
        return (_rebuild_message, (values,))

    def header(self, name: str) -> str | None:
        """The first value of a header by case-insensitive name, or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def recipients(self) -> tuple[Address, ...]:
        return self.to + self.cc

    @property
    def usable(self) -> bool:
        """Did parsing yield anything to work with? The poller quarantines a mail only if not."""
        return bool(self.from_ or self.subject or self.text.strip() or self.attachments
                    or self.forwarded)

    def all_attachments(self) -> tuple[Attachment, ...]:
        """This mail's attachments followed by those of the mails forwarded inside it."""
        found = list(self.attachments)
        for inner in self.forwarded:
            found.extend(inner.all_attachments())
        return tuple(found)

    def as_json(self) -> dict[str, object]:
        """The stable JSON shape printed by `complaints parse --json` (documented in README)."""
        return {
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "date": self.date.isoformat().replace("+00:00", "Z") if self.date else None,
            "from": self.from_.as_json() if self.from_ else None,
            "to": [a.as_json() for a in self.to],
            "cc": [a.as_json() for a in self.cc],
            "reply_to": [a.as_json() for a in self.reply_to],
            "subject": self.subject,
            "normalized_subject": self.normalized_subject,
            "language": self.language,
            "text": self.text,
            "new_text": self.new_text,
            "html": self.html,
            "attachments": [a.as_json() for a in self.attachments],
            "auto_submitted": self.auto_submitted,
            "auto_reasons": list(self.auto_reasons),
            "defects": list(self.defects),
            "forwarded": [inner.as_json() for inner in self.forwarded],
        }


_HEADERS_FIELD = [f.name for f in fields(ParsedMessage)].index("headers")


def _rebuild_message(values: list[object]) -> ParsedMessage:
    values[_HEADERS_FIELD] = MappingProxyType(values[_HEADERS_FIELD])  # type: ignore[arg-type]
    return ParsedMessage(*values)  # type: ignore[arg-type]
