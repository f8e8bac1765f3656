"""Header fields: raw block splitting, RFC 2047 words, RFC 2231 parameters, addresses, dates.

Headers are read as latin-1 (a lossless byte-to-character map) so structure can be parsed
before anything is known about the charset; 8-bit values are then re-decoded once.
"""

from __future__ import annotations

import binascii
import re
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone
from email.utils import getaddresses, parsedate_tz

from processor.mail.charset import codec_for, decode_8bit_header
from processor.mail.model import Address

_FIELD = re.compile(r"([!-9;-~]+)[ \t]*:")
# Lenient on purpose: clients put encoded words inside quotes, glue them to text, and use
# lower-case or unknown charsets; an RFC 2231 language suffix (`utf-8*zh`) is dropped.
_ENCODED_WORD = re.compile(r"=\?([^?\s]+?)(?:\*[^?\s]*)?\?([bBqQ])\?([^?\r\n]*?)\?=")
_WSP_ONLY = re.compile(r"[ \t\r\n]*")
# `Name <a@b>`, `"Name" <a@b>`, `<a@b>` or `a@b`; anything else goes to the stdlib parser.
_ADDR_SPEC = r"[^<>\s\"(),;:@\[\]]+@[^<>\s\"(),;:@\[\]]+"
_SIMPLE_ADDRESS = re.compile(
    rf'\s*(?:"(?P<quoted>[^"\\]*)"|(?P<name>[^"\\<>,;:()@]*?))\s*<(?P<spec>{_ADDR_SPEC})>\s*'
    rf"|\s*(?P<bare>{_ADDR_SPEC})\s*"
)
_COMMENT = re.compile(r"\([^()]*\)")
_DATE_SPACES = re.compile(r"\s*:\s*")
_MSG_ID = re.compile(r"<([^<>\s]+)>")


def split_header_block(block: str, max_headers: int, max_length: int,
                       defects: list[str]) -> tuple[list[tuple[str, str]], int | None]:
    """(lower-cased name, unfolded raw value) pairs from a header block, in order.

    The second value is where the body really starts when the blank line after the headers
    is missing (a line that is no header and is not followed by one), else None.
    """
    fields: list[tuple[str, str]] = []
    name = ""
    parts: list[str] = []
    truncated = False
    body_at: int | None = None
    lines = block.split("\n")
    offset = 0
    for index, line in enumerate(lines):
        line_start = offset
        offset += len(line) + 1
        if line.endswith("\r"):
            line = line[:-1]
        if line[:1] in (" ", "\t"):
            if name:
                parts.append(line)
            elif line.strip():
                defects.append("header: continuation line before the first field skipped")
            continue
        match = _FIELD.match(line)
        if match is None:
            if line.startswith("From ") and index == 0:
                continue  # an mbox envelope line, not a header
            if not line.strip():
                continue
            following = next((n for n in lines[index + 1:index + 4] if n.strip()), "")
            if fields or name:
                if not _FIELD.match(following) and following[:1] not in (" ", "\t"):
                    defects.append("header: no blank line between headers and body")
                    body_at = line_start
                    break
            defects.append(f"header: malformed line skipped: {line[:60]!r}")
            continue
        if name:
            fields.append((name, _join(parts, max_length, defects)))
        if len(fields) >= max_headers:
            truncated = True
            name = ""
            break
        name = match.group(1).lower()
        parts = [line[match.end():]]
    if name:
        fields.append((name, _join(parts, max_length, defects)))
    if truncated:
        defects.append(f"header: more than {max_headers} fields, the rest skipped")
    return fields, body_at


def _join(parts: list[str], max_length: int, defects: list[str]) -> str:
    value = "".join(parts).strip()
    if len(value) > max_length:
        defects.append(f"header: a value longer than {max_length} characters was cut")
        value = value[:max_length]
    return value


def decode_words(value: str, defects: list[str], hint: str | None = None) -> str:
    """Decode RFC 2047 encoded words anywhere in a value (and raw 8-bit text).

    Adjacent words in one charset are joined as bytes before decoding, so a multibyte
    character split across two words (as Outlook and Foxmail do) comes out whole.
    """
    if not value.isascii():
        value = decode_8bit_header(value, hint, defects)
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: bytearray = bytearray()
    pending_charset = ""
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[position:match.start()]
        if gap and not (pending and _WSP_ONLY.fullmatch(gap)):
            out.append(_flush(pending, pending_charset, defects))
            pending = bytearray()
            out.append(gap)
        charset, encoding, payload = match.groups()
        if pending and charset.lower() != pending_charset:
            out.append(_flush(pending, pending_charset, defects))
            pending = bytearray()
        pending_charset = charset.lower()
        pending += _word_bytes(encoding, payload, defects)
        position = match.end()
    out.append(_flush(pending, pending_charset, defects))
    out.append(value[position:])
    return "".join(out)


def _word_bytes(encoding: str, payload: str, defects: list[str]) -> bytes:
    data = payload.encode("latin-1", errors="replace")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    if len(data) % 4 == 1:
        data = data[:-1]
        defects.append("header: encoded word with a truncated base64 character")
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except binascii.Error:
        defects.append("header: undecodable base64 encoded word dropped")
        return b""


def _flush(data: bytearray, charset: str, defects: list[str]) -> str:
    if not data:
        return ""
    raw = bytes(data)
    codec = codec_for(charset)
    if codec is None:
        defects.append(f"header: unknown charset {charset[:40]!r} in encoded word")
        for candidate in ("utf-8", "gb18030"):
            try:
                return raw.decode(candidate)
            except UnicodeDecodeError:
                continue
        codec = "cp1252"
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode(codec, errors="replace")
        defects.append(
            f"header: {text.count(chr(0xFFFD))} undecodable bytes replaced in a {charset} word")
    else:
        defects.append(f"header: encoded word labelled {charset} was utf-8")
    return text


def fold_whitespace(text: str) -> str:
    return " ".join(text.split())


def parse_params(value: str, defects: list[str], hint: str | None = None
                 ) -> tuple[str, dict[str, str]]:
    """Split `type/sub; a=1; b*0*=utf-8''%E4; b*1=x` into the main value and decoded params."""
    pieces = _split_semicolons(value)
    main = pieces[0].strip().lower() if pieces else ""
    plain: dict[str, str] = {}
    extended: dict[str, dict[int, tuple[bool, str]]] = {}
    for piece in pieces[1:]:
        key, sep, raw = piece.partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        elif raw.startswith('"'):
            raw = raw[1:]
        if "*" in key:
            base, _, rest = key.partition("*")
            encoded = rest.endswith("*") or rest == ""
            number = rest.rstrip("*")
            index = int(number) if number.isdigit() else 0
            extended.setdefault(base, {})[index] = (encoded, raw)
        elif key not in plain:
            plain[key] = raw
    params = {key: decode_words(raw, defects, hint) for key, raw in plain.items()}
    for base, segments in extended.items():
        params[base] = _join_2231(segments, defects, hint)
    return main, params


def _split_semicolons(value: str) -> list[str]:
    if '"' not in value:
        return value.split(";")
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return pieces


def _join_2231(segments: dict[int, tuple[bool, str]], defects: list[str],
               hint: str | None) -> str:
    charset = ""
    data = bytearray()
    for position, index in enumerate(sorted(segments)):
        encoded, raw = segments[index]
        if encoded:
            if position == 0 and raw.count("'") >= 2:
                charset, _, raw = raw.split("'", 2)
            data += urllib.parse.unquote_to_bytes(raw)
        else:
            data += raw.encode("latin-1", errors="replace")
    raw_bytes = bytes(data)
    codec = codec_for(charset) or "utf-8"
    try:
        text = raw_bytes.decode(codec)
    except UnicodeDecodeError:
        text = decode_8bit_header(raw_bytes.decode("latin-1"), hint, defects)
    return decode_words(text, defects, hint) if "=?" in text else text


def parse_addresses(values: list[str], defects: list[str], hint: str | None = None
                    ) -> tuple[Address, ...]:
    """Mailboxes from address headers; display names decoded, groups flattened, junk skipped."""
    if not values:
        return ()
    cleaned = [decode_8bit_header(v, hint, defects) if not v.isascii() else v for v in values]
    cleaned = [_quote_encoded_words(v) if "=?" in v else v for v in cleaned]
    try:
        pairs = _simple_addresses(cleaned)
        if pairs is None:
            pairs = getaddresses(cleaned)
    except Exception:  # noqa: BLE001 - the stdlib address parser has raised on odd input
        defects.append("header: unparseable address list")
        return ()
    result = []
    for name, address in pairs:
        address = address.strip()
        if not address or "@" not in address and not name:
            if address:
                defects.append(f"header: address without domain: {address[:60]!r}")
            continue
        local, at, domain = address.rpartition("@")
        if at:
            address = f"{local}@{domain.lower()}"
        display = fold_whitespace(decode_words(name, defects, hint)) if name else ""
        if display.startswith('"') and display.endswith('"') and len(display) >= 2:
            display = display[1:-1]
        result.append(Address(display, address))
    return tuple(result)


_ENCODED_WORD_TOKEN = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def _quote_encoded_words(value: str) -> str:
    """Put encoded words outside quotes into quotes before the address list is split.

    An encoded word's text may hold ':', '@' or ',' once encoded ("=?utf-8?q?a=0D=0ABcc:_x@y?=");
    unquoted, the address parser would read them as syntax and invent an address.
    """
    out, inside, last = [], False, 0
    for index, char in enumerate(value):
        if char == '"' and (index == 0 or value[index - 1] != "\\"):
            if not inside:
                out.append(_ENCODED_WORD_TOKEN.sub(lambda m: f'"{m.group()}"', value[last:index]))
                last = index
            inside = not inside
    tail = value[last:]
    out.append(tail if inside else _ENCODED_WORD_TOKEN.sub(lambda m: f'"{m.group()}"', tail))
    return "".join(out)


def _simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """The common one-mailbox forms without the stdlib's general (and slow) address parser."""
    pairs = []
    for value in values:
        match = _SIMPLE_ADDRESS.fullmatch(value)
        if match is None:
            return None
        name = match.group("quoted") or match.group("name") or ""
        pairs.append((name.strip(), match.group("spec") or match.group("bare")))
    return pairs


def parse_date(value: str | None, defects: list[str]) -> datetime | None:
    """A Date header as an aware UTC datetime; a missing zone is taken as UTC."""
    if not value:
        return None
    try:
        parts = parsedate_tz(value)
        if parts is None:
            # RFC 5322 obsolete syntax: comments and spaces around the time's colons.
            parts = parsedate_tz(_DATE_SPACES.sub(":", _COMMENT.sub("", value)))
        if parts is None:
            raise ValueError
        year, month, day, hour, minute, second = parts[:6]
        offset = parts[9]
        naive = datetime(year, month, day, hour, minute, second)
        zone = timezone(timedelta(seconds=offset)) if offset is not None else UTC
        return naive.replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError, TypeError, IndexError):
        defects.append(f"header: unparseable date {value[:60]!r}")
        return None


def first_message_id(value: str | None) -> str | None:
    """The first `<id>` in a header, or its first token when the brackets are missing."""
    if not value:
        return None
    match = _MSG_ID.search(value)
    if match:
        return f"<{match.group(1)}>"
    token = value.split()
    return token[0] if token else None


def message_ids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    found = _MSG_ID.findall(value)
    if found:
        return tuple(f"<{ident}>" for ident in found)
    return tuple(value.split())
