"""MIME structure: a tree of parts located by offsets into the raw bytes, and transfer decoding.

Parts never copy the message: each keeps (start, end) offsets into the one raw buffer, so a
30 MB attachment costs only its decoded bytes, and only if someone asks for them; and
`transfer_decode_pieces` hands those over a megabyte at a time, to hash or store them without
holding them whole.
"""

from __future__ import annotations

import binascii
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from processor.mail.headers import parse_params, split_header_block
from processor.mail.limits import ParseLimits

_BLANK_LINE = re.compile(rb"\n\r?\n")
_SAFE_HEADER_BLOCK = 1024 * 1024  # headers beyond a megabyte are an attack, not a mail
_DECODE_PIECE = 1024 * 1024  # encoded bytes per piece of transfer_decode_pieces
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(_BASE64_ALPHABET)))


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity: its raw headers, parsed content type, and where its body lies."""

    fields: tuple[tuple[str, str], ...]
    content_type: str
    params: dict[str, str]
    body_start: int
    body_end: int
    depth: int
    children: tuple[Part, ...] = ()
    # For message/rfc822: the enclosed message as a part of its own.
    enclosed: Part | None = None
    defaulted_type: bool = field(default=False)

    def get(self, name: str) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")


class _Budget:
    """Counts parts across the whole tree (nested messages included) against the limit."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.reported = False


def parse_structure(raw: bytes, limits: ParseLimits, defects: list[str], depth: int = 0) -> Part:
    """The part tree of a whole message; never raises on malformed structure."""
    return _entity(raw, 0, len(raw), depth, "text/plain", limits, _Budget(limits.max_parts),
                   defects)


def _entity(raw: bytes, start: int, end: int, depth: int, default_type: str,
            limits: ParseLimits, budget: _Budget, defects: list[str]) -> Part:
    budget.left -= 1
    fields, body_start = _headers(raw, start, end, limits, defects)
    content_type_value = next((v for k, v in fields if k == "content-type"), None)
    defaulted = content_type_value is None
    content_type, params = default_type, dict[str, str]()
    if content_type_value is not None:
        main, params = parse_params(content_type_value, defects)
        if re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", main):
            content_type = main
        else:
            defects.append(f"mime: invalid content type {main[:40]!r}, read as {default_type}")
            defaulted = True
    part = Part(tuple(fields), content_type, params, body_start, end, depth,
                defaulted_type=defaulted)
    if content_type.startswith("multipart/"):
        return _multipart(raw, part, limits, budget, defects)
    if content_type in ("message/rfc822", "message/global") and _plain_cte(part):
        if depth + 1 > limits.max_depth:
            defects.append(f"mime: nesting deeper than {limits.max_depth}, inner message kept raw")
            return part
        if budget.left <= 0:
            return part
        inner = _entity(raw, body_start, end, depth + 1, "text/plain", limits, budget, defects)
        return _replace(part, enclosed=inner)
    return part


def _plain_cte(part: Part) -> bool:
    cte = (part.get("content-transfer-encoding") or "").strip().lower()
    return cte in ("", "7bit", "8bit", "binary")


def _replace(part: Part, **changes: object) -> Part:
    return dataclasses.replace(part, **changes)  # type: ignore[arg-type]


def _headers(raw: bytes, start: int, end: int, limits: ParseLimits,
             defects: list[str]) -> tuple[list[tuple[str, str]], int]:
    if raw.startswith(b"\n", start) or raw.startswith(b"\r\n", start):
        return [], start + (1 if raw[start:start + 1] == b"\n" else 2)
    match = _BLANK_LINE.search(raw, start, end)
    block_end = match.start() + 1 if match else end
    body_start = match.end() if match else end
    if block_end - start > _SAFE_HEADER_BLOCK:
        defects.append("header: header block larger than 1 MiB cut")
        block_end = start + _SAFE_HEADER_BLOCK
    block = raw[start:block_end].decode("latin-1")
    fields, body_at = split_header_block(block, limits.max_headers, limits.max_header_length,
                                         defects)
    return fields, (start + body_at if body_at is not None else body_start)


def _multipart(raw: bytes, part: Part, limits: ParseLimits, budget: _Budget,
               defects: list[str]) -> Part:
    boundary = part.params.get("boundary", "").strip()
    if not boundary:
        defects.append(f"mime: {part.content_type} without boundary, read as text")
        return _replace(part, content_type="text/plain", params={})
    if part.depth + 1 > limits.max_depth:
        defects.append(f"mime: nesting deeper than {limits.max_depth}, inner parts skipped")
        return part
    spans, closed = _split(raw, boundary.encode("latin-1", "replace"), part.body_start,
                           part.body_end)
    if not spans and closed:
        defects.append("mime: multipart without any part")
        return part
    if not spans:
        defects.append("mime: multipart boundary never found, body read as text")
        return _replace(part, content_type="text/plain", params={})
    if not closed:
        defects.append("mime: multipart without closing boundary")
    default = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
    children = []
    for child_start, child_end in spans:
        if budget.left <= 0:
            if not budget.reported:
                defects.append(f"mime: more than {limits.max_parts} parts, the rest skipped")
                budget.reported = True
            break
        children.append(_entity(raw, child_start, child_end, part.depth + 1, default, limits,
                                budget, defects))
    return _replace(part, children=tuple(children))


def _split(raw: bytes, boundary: bytes, start: int, end: int) -> tuple[list[tuple[int, int]], bool]:
    """Body spans between `--boundary` lines; the line break before a delimiter belongs to it."""
    marker = b"--" + boundary
    spans: list[tuple[int, int]] = []
    current: int | None = None
    position = start
    while True:
        found = raw.find(marker, position, end)
        if found < 0:
            break
        position = found + len(marker)
        if found != start and raw[found - 1] != 0x0A:
            continue
        line_end = raw.find(b"\n", position, end)
        line_end = end if line_end < 0 else line_end
        tail = raw[position:min(line_end, position + 200)]
        closing = tail.startswith(b"--")
        rest = tail[2:] if closing else tail
        if rest.strip() and not closing:
            continue  # a longer boundary that merely starts with ours
        if current is not None:
            stop = found - 1
            if stop > current and raw[stop - 1] == 0x0D:
                stop -= 1
            spans.append((current, max(current, stop)))
        if closing:
            return spans, True
        current = min(line_end + 1, end)
        position = current
    if current is not None:
        spans.append((current, end))
    return spans, False


def transfer_decode(raw: bytes, part: Part, defects: list[str], where: str) -> bytes:
    """The body bytes with Content-Transfer-Encoding undone; broken encodings repaired."""
    view = memoryview(raw)[part.body_start:part.body_end]
    cte = (part.get("content-transfer-encoding") or "").strip().lower()
    if cte in ("", "7bit", "8bit", "binary"):
        return bytes(view)
    token = cte.split(";")[0].strip().strip('"')
    if "base64" in token:
        _note_base64_variant(cte, token, defects, where)
        return _base64(view, defects, where)
    if "quoted" in token:
        if token != "quoted-printable":
            defects.append(f"{where}: transfer encoding {cte[:30]!r} read as quoted-printable")
        data = bytes(view)
        if re.search(rb"=(?![0-9A-Fa-f]{2}|[ \t]*\r?\n|[ \t]*\Z)", data):
            defects.append(f"{where}: invalid quoted-printable escape kept literally")
        return binascii.a2b_qp(data)
    if "uu" in token:
        return _uudecode(bytes(view), defects, where)
    defects.append(f"{where}: unknown transfer encoding {cte[:30]!r}, body kept as is")
    return bytes(view)


def transfer_decode_pieces(raw: bytes, part: Part, defects: list[str], where: str,
                           piece: int = _DECODE_PIECE) -> Iterator[bytes]:
    """The bytes of `transfer_decode`, the same defects included, in pieces of about `piece`
    encoded bytes.

    Only a base64 body larger than a piece is cut (large attachments are base64 in practice);
    anything else comes as one piece. A piece ends with a line after which the base64
    characters so far make whole groups of four, and no '=' may come before the last piece:
    then each piece decodes on its own to exactly its share of what the whole would give
    (binascii skips other characters, and only '=' can end the decoding early). When that
    cannot be had, the body is decoded whole.
    """
    cte = (part.get("content-transfer-encoding") or "").strip().lower()
    token = cte.split(";")[0].strip().strip('"')
    spans = (_base64_spans(raw, part.body_start, part.body_end, piece)
             if "base64" in token else None)
    if spans is None:
        yield transfer_decode(raw, part, defects, where)
        return
    _note_base64_variant(cte, token, defects, where)
    view = memoryview(raw)
    for start, end in spans[:-1]:
        yield binascii.a2b_base64(view[start:end])
    start, end = spans[-1]
    yield _base64(view[start:end], defects, where)


def _base64_spans(raw: bytes, start: int, end: int,
                  piece: int) -> list[tuple[int, int]] | None:
    """Where to cut base64 text for `transfer_decode_pieces`; None to decode it whole."""
    spans: list[tuple[int, int]] = []
    while end - start > piece:
        cut = raw.find(b"\n", start + piece, end) + 1
        if cut == 0:
            break
        characters = len(raw[start:cut].translate(None, _NOT_BASE64))
        while characters % 4:  # lines that end inside a group of four: take the next one in
            following = raw.find(b"\n", cut, end) + 1
            if following == 0:
                return None
            characters += len(raw[cut:following].translate(None, _NOT_BASE64))
            cut = following
        spans.append((start, cut))
        start = cut
    if not spans or raw.find(b"=", spans[0][0], start) >= 0:
        return None
    spans.append((start, end))
    return spans


def _note_base64_variant(cte: str, token: str, defects: list[str], where: str) -> None:
    if token != "base64":
        defects.append(f"{where}: transfer encoding {cte[:30]!r} read as base64")


def _base64(view: memoryview, defects: list[str], where: str) -> bytes:
    try:
        return binascii.a2b_base64(view)
    except binascii.Error:
        pass
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", view)
    if len(data) % 4 == 1:
        data = data[:-1]
    defects.append(f"{where}: broken base64 repaired")
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


def _uudecode(data: bytes, defects: list[str], where: str) -> bytes:
    out = bytearray()
    started = False
    for line in data.splitlines():
        if not started:
            started = line.startswith(b"begin ")
            continue
        if line.strip() in (b"end", b"`", b""):
            if line.strip() == b"end":
                break
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            try:
                # Some encoders drop trailing spaces; the length byte tells how many to restore.
                count = (((line[0] - 32) & 63) * 4 + 5) // 3
                out += binascii.a2b_uu(line[:count])
            except (binascii.Error, IndexError):
                defects.append(f"{where}: broken uuencoded line skipped")
    return bytes(out)
