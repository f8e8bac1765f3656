"""The bytes of the mail we send, written directly, and a message object that is those bytes.

`compose` decides what a mail says; this module writes it as 7-bit RFC 5322/MIME: header values
as plain words where that is safe and RFC 2047 encoded-words otherwise, folded at spaces to at
most 78 characters a line (a line holding one long token, such as someone else's Message-ID,
may be longer, never over 998 octets); text bodies as 7bit, quoted-printable or base64,
whichever is shortest. It does what the email package's modern policy does for these mails
(EmailMessage, header registry, set_content), at a fraction of the cost, because every new
case sends one.

The result is a `ComposedMessage`: an ordinary EmailMessage whose headers are `WireHeader`s
(the decoded value as a str, as the email package's own header objects are, plus the exact
folded line we wrote), so reading it (`msg["To"].addresses`, `get_body().get_content()`)
parses nothing, and `as_bytes()` returns the bytes written once, for as long as nobody
changes the message.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from email.headerregistry import Address, Group
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, Policy
from typing import Any, Self

from processor.errors import ComplaintsError
from processor.random_tokens import token_hex

# 7bit keeps bodies base64/quoted-printable and headers RFC 2047-encoded, so any relay accepts it.
POLICY = SMTP.clone(cte_type="7bit", max_line_length=78)
MAX_LINE = 78  # RFC 5322 "should"; the hard limit is 998
MAX_ENCODED_WORD = 75  # RFC 2047
_EW_OVERHEAD = len("=?utf-8?b??=")


class WireHeader(str):
    """A header value as written: the str is the decoded value; `fold` gives the wire lines.

    The email package's policies store and return any value with a `name` attribute as is and
    ask it to `fold` itself (EmailPolicy.header_store_parse, header_fetch_parse), exactly as
    they treat their own header objects; so a WireHeader is never parsed again.
    """

    name: str
    folded: str  # "Name: value\r\n", folded, ASCII
    defects: tuple[Any, ...] = ()

    def __new__(cls, name: str, decoded: str, folded: str) -> Self:
        self = super().__new__(cls, decoded)
        self.name, self.folded = name, folded
        return self

    def __getnewargs__(self) -> tuple[str, str, str]:  # type: ignore[override]  # copy, pickle
        return self.name, str(self), self.folded

    def fold(self, *, policy: Policy) -> str:
        return self.folded if policy.linesep == "\r\n" else \
            self.folded.replace("\r\n", policy.linesep)


class AddressWireHeader(WireHeader):
    """An address list header; `addresses` and `groups` as AddressHeader has them."""

    addresses: tuple[Address, ...]
    groups: tuple[Group, ...]

    def __new__(cls, name: str, addresses: Sequence[Address], folded: str) -> Self:
        self = super().__new__(cls, name, ", ".join(str(a) for a in addresses), folded)
        self.addresses = tuple(addresses)
        self.groups = tuple(Group(None, [a]) for a in addresses)
        return self

    def __getnewargs__(self) -> tuple[str, tuple[Address, ...], str]:  # type: ignore[override]
        return self.name, self.addresses, self.folded


class ComposedMessage(EmailMessage):
    """A message built by `message()`: `as_bytes()` is the bytes written then (any policy with
    CRLF line ends) while the message is unchanged, and the email package's output otherwise."""

    _wire: bytes | None = None
    _wire_state: object = None
    _plain_text: str | None = None

    def plain_text(self) -> str | None:
        """The text part as a reader decodes it (`get_body(("plain",)).get_content()`, CRLF
        line ends), kept from when it was written; None once the message has been changed.
        Decoding it again was a tenth of the cost of an acknowledgement."""
        return self._plain_text if _state(self) == self._wire_state else None

    @property
    def raw(self) -> bytes:
        """The bytes to send: CRLF line ends, 7-bit, serialised once."""
        return self.as_bytes()

    def as_bytes(self, unixfrom: bool = False, policy: Policy | None = None) -> bytes:
        if (self._wire is not None and not unixfrom
                and (policy or self.policy).linesep == "\r\n"
                and _state(self) == self._wire_state):
            return self._wire
        return super().as_bytes(unixfrom=unixfrom, policy=policy)


def _state(part: EmailMessage) -> object:
    """Everything the generator writes, as values compared by identity first: cheap to take."""
    payload = part._payload  # type: ignore[attr-defined]
    if isinstance(payload, list):
        payload = tuple(_state(p) for p in payload)
    return (tuple(part._headers), payload, part.preamble,  # type: ignore[attr-defined]
            part.epilogue)


# --- header values


class InvalidHeader(ComplaintsError):
    """A header value we were asked to write cannot be written safely, or a composed message
    does not re-parse to the headers we set (a bug, never sent)."""


_PLAIN_WORD = re.compile(r"[!-~]{1,76}")  # printable ASCII, no space, fits a folded line
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,76}")  # RFC 5322 atext
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # controls, line separators
# Q-encoding keeps these literal; it is the set RFC 2047 allows in a phrase too.
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_TABLE = [chr(b) if b in _Q_LITERAL else "_" if b == 0x20 else f"={b:02X}" for b in range(256)]
_Q_ONE_CHAR = bytes(_Q_LITERAL) + b" "


def _check(value: str) -> None:
    if _CONTROL.search(value):
        raise InvalidHeader(f"control character in a header value: {value[:60]!r}")


class _Folder:
    """Writes one header: items separated by single spaces, folded before a space."""

    def __init__(self, name: str) -> None:
        self.lines: list[str] = []
        self.line = name + ":"
        self.blank = True

    def atom(self, atom: str) -> None:
        if not self.blank and len(self.line) + 1 + len(atom) > MAX_LINE:
            self.lines.append(self.line)
            self.line = ""
        self.line += " " + atom
        self.blank = False

    def encoded(self, text: str) -> None:
        """`text` as encoded-words, each filling what is left of its line; the decoder joins
        adjacent encoded-words without the space between them, so any split is exact."""
        data = text.encode("utf-8")
        q_cost = len(data) + 2 * len(data.translate(None, _Q_ONE_CHAR))  # escapes are "=XX"
        use_b = (len(data) + 2) // 3 * 4 < q_cost
        pos = 0
        while pos < len(data):
            room = min(MAX_ENCODED_WORD, MAX_LINE - len(self.line) - 1) - _EW_OVERHEAD
            end = _chunk_end(data, pos, room, use_b)
            if end == pos:  # not one character fits on this line
                self.lines.append(self.line)
                self.line = ""
                continue
            chunk = data[pos:end]
            word = (f"=?utf-8?b?{binascii.b2a_base64(chunk, newline=False).decode()}?=" if use_b
                    else f"=?utf-8?q?{''.join(_Q_TABLE[b] for b in chunk)}?=")
            self.line += " " + word
            self.blank = False
            pos = end

    def text(self, value: str, plain: re.Pattern[str]) -> None:
        """Words that match `plain` (and hold no "=?") as they are, runs of others encoded."""
        words = value.split(" ")
        if "" in words:  # leading, trailing or repeated spaces: keep them inside one encoding
            self.encoded(value)
            return
        run: list[str] = []
        for word in words:
            if plain.fullmatch(word) and "=?" not in word:
                if run:
                    self.encoded(" ".join(run))
                    run = []
                self.atom(word)
            else:
                run.append(word)
        if run:
            self.encoded(" ".join(run))

    def done(self) -> str:
        return "\r\n".join([*self.lines, self.line]) + "\r\n"


def _chunk_end(data: bytes, pos: int, room: int, use_b: bool) -> int:
    """Where the encoded-word starting at `pos` ends to fit `room` characters of payload,
    between whole UTF-8 characters."""
    if use_b:
        end = min(len(data), pos + max(room, 0) // 4 * 3)
    else:
        end, cost = pos, 0
        while end < len(data) and cost + len(_Q_TABLE[data[end]]) <= room:
            cost += len(_Q_TABLE[data[end]])
            end += 1
    while pos < end < len(data) and data[end] & 0xC0 == 0x80:
        end -= 1
    return end


def unstructured(name: str, value: str) -> WireHeader:
    """A text header (Subject, our loop header): decodes to exactly `value`."""
    _check(value)
    folder = _Folder(name)
    folder.text(value, _PLAIN_WORD)
    return WireHeader(name, value, folder.done())


def tokens(name: str, words: Sequence[str]) -> WireHeader:
    """A header of ASCII tokens that must stay whole (Message-IDs, a date, MIME values)."""
    folder = _Folder(name)
    for word in words:
        _check(word)
        if not word or not word.isascii() or " " in word:
            raise InvalidHeader(f"not a token: {word[:60]!r}")
        folder.atom(word)
    return WireHeader(name, " ".join(words), folder.done())


def addresses(name: str, mailboxes: Sequence[Address]) -> AddressWireHeader:
    """An address list. Addresses must already be valid plain ASCII mailboxes (compose
    checks them); display names become atoms, a quoted string or encoded-words."""
    folder = _Folder(name)
    for index, mailbox in enumerate(mailboxes):
        _check(mailbox.display_name)
        spec = mailbox.addr_spec
        if not spec.isascii() or _CONTROL.search(spec) or " " in spec:
            raise InvalidHeader(f"not a plain address: {spec[:60]!r}")
        comma = "," if index < len(mailboxes) - 1 else ""
        if mailbox.display_name:
            _phrase(folder, mailbox.display_name)
            folder.atom(f"<{spec}>{comma}")
        else:
            folder.atom(spec + comma)
    return AddressWireHeader(name, mailboxes, folder.done())


def _phrase(folder: _Folder, name: str) -> None:
    words = name.split(" ")
    if "" not in words and all(_ATOM.fullmatch(w) and "=?" not in w for w in words):
        for word in words:
            folder.atom(word)
        return
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if name.isascii() and "=?" not in name and len(quoted) <= MAX_LINE - 2:
        folder.atom(quoted)
    else:
        folder.text(name, _ATOM)


# --- bodies


def _encode_text(text: str) -> tuple[str, str]:
    """(Content-Transfer-Encoding, payload with CRLF line ends): 7bit for short-lined ASCII,
    else the shorter of quoted-printable and base64, as the email package chooses."""
    lines = _lines(text)
    if all(len(line) <= MAX_LINE for line in lines):
        joined = b"\r\n".join(lines) + b"\r\n"
        if joined.isascii():
            return "7bit", joined.decode("ascii")
    qp = binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True)  # lines of at most 76
    b64 = binascii.b2a_base64(b"\r\n".join(lines) + b"\r\n", newline=False).decode("ascii")
    if len(qp) <= len(b64) * 77 // 76:
        return "quoted-printable", qp.decode("ascii").replace("\n", "\r\n")
    return "base64", "".join(f"{b64[i:i + 76]}\r\n" for i in range(0, len(b64), 76))


def _lines(text: str) -> list[bytes]:
    return text.encode("utf-8").splitlines()


def _as_decoded(text: str) -> str:
    """The text as a reader of the part `_encode_text` writes decodes it."""
    return (b"\r\n".join(_lines(text)) + b"\r\n").decode("utf-8")


_Part = tuple[MIMEPart, bytes]  # a part and its bytes (headers, blank line, body)


def _part(cls: type[EmailMessage], headers: Sequence[WireHeader],
          payload: Any) -> EmailMessage:
    part = cls(policy=POLICY)
    for header in headers:
        # Stored as the parser stores what it reads. (`part[name] = header` would store it as
        # is too, but first builds a header class per call to look up a limit we never reach.)
        part.set_raw(header.name, header)
    part.set_payload(payload)
    return part


def _text_part(text: str, subtype: str) -> tuple[list[WireHeader], str]:
    cte, payload = _encode_text(text)
    return [tokens("Content-Type", [f"text/{subtype};", 'charset="utf-8"']),
            tokens("Content-Transfer-Encoding", [cte])], payload


def _leaf(headers: Sequence[WireHeader], payload: str) -> _Part:
    wire = "".join(h.folded for h in headers) + "\r\n" + payload
    return _part(EmailMessage, headers, payload), wire.encode("ascii")


def _multipart_headers(subtype: str, children: Sequence[_Part]) -> tuple[WireHeader, str]:
    while True:  # a boundary found in no part (the text parts could, in theory, contain one)
        boundary = "=_" + token_hex(12)
        if not any(f"--{boundary}".encode() in wire for _, wire in children):
            break
    return tokens("Content-Type", [f"multipart/{subtype};", f'boundary="{boundary}"']), boundary


def _multipart_body(boundary: str, children: Sequence[_Part]) -> bytes:
    delimiter = f"--{boundary}\r\n".encode()
    return (delimiter + (b"\r\n" + delimiter).join(wire for _, wire in children)
            + f"\r\n--{boundary}--\r\n".encode())


def message(headers: Sequence[WireHeader], text: str, html: str | None = None,
            attachments: Sequence[MIMEPart] = ()) -> ComposedMessage:
    """The whole mail: `headers` in order, then MIME-Version and the content headers; the
    text (and the HTML with it as multipart/alternative), then the attachments (parts built
    by the caller) as multipart/mixed. The structure and header order are those that
    EmailMessage.set_content, add_alternative and add_attachment give."""
    body_headers, payload = _text_part(text, "plain")
    mime_version = tokens("MIME-Version", ["1.0"])
    if html is None and not attachments:
        all_headers = [*headers, *body_headers, mime_version]
        wire = "".join(h.folded for h in all_headers) + "\r\n" + payload
        return _finish(_part(ComposedMessage, all_headers, payload), wire.encode("ascii"), text)
    body = _leaf(body_headers, payload)
    if html is not None:
        alternative = [body, _leaf(*_text_part(html, "html"))]
        if not attachments:
            return _finish(*_assemble(ComposedMessage, [*headers, mime_version], "alternative",
                                      alternative), text)
        body = _assemble(EmailMessage, [], "alternative", alternative)
    parts = [body, *((part, part.as_bytes(policy=POLICY)) for part in attachments)]
    return _finish(*_assemble(ComposedMessage, [*headers, mime_version], "mixed", parts), text)


def _assemble(cls: type[EmailMessage], headers: Sequence[WireHeader], subtype: str,
              children: Sequence[_Part]) -> _Part:
    content_type, boundary = _multipart_headers(subtype, children)
    all_headers = [*headers, content_type]
    part = _part(cls, all_headers, [child for child, _ in children])
    head = "".join(h.folded for h in all_headers).encode("ascii") + b"\r\n"
    return part, head + _multipart_body(boundary, children)


def _finish(top: MIMEPart, wire: bytes, text: str) -> ComposedMessage:
    assert isinstance(top, ComposedMessage)
    top._wire, top._wire_state, top._plain_text = wire, _state(top), _as_decoded(text)
    return top
