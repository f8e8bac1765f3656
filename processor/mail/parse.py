"""One raw mail in, one ParsedMessage out: the stages of parsing in order, and nothing raised."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeVar

from processor.mail.auto import auto_reasons
from processor.mail.body import Body, Enclosed, collect_body
from processor.mail.headers import (
    decode_words,
    first_message_id,
    fold_whitespace,
    message_ids,
    parse_addresses,
    parse_date,
)
from processor.mail.language import detect_language
from processor.mail.limits import ParseLimits
from processor.mail.mime import Part, parse_structure
from processor.mail.model import Address, ParsedMessage
from processor.mail.quoting import extract_new_text
from processor.mail.subject import normalize_subject

__all__ = ["ParseLimits", "parse_message"]

_DEFAULT_LIMITS = ParseLimits()
_NO_HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType({})
_NO_BODY = Body("", None, (), ())
_NO_MESSAGES: tuple[ParsedMessage, ...] = ()
T = TypeVar("T")


def parse_message(raw: bytes, limits: ParseLimits | None = None, *,
                  keep_decoded: bool = False) -> ParsedMessage:
    """Parse a whole mail. Never raises: what went wrong is listed in `defects`.

    With `keep_decoded`, its large attachments keep the bytes decoded to hash them
    (Attachment.decoded), for a caller that stores them at once and then lets them go."""
    limits = limits or _DEFAULT_LIMITS
    defects: list[str] = []
    try:
        raw = bytes(raw)
        root = parse_structure(raw, limits, defects)
        return _message(raw, root, limits, defects, len(raw), keep_decoded)
    except Exception as exc:  # noqa: BLE001 - the contract is that no exception escapes
        defects.append(f"parser: gave up ({type(exc).__name__}: {str(exc)[:120]})")
        return _unreadable(len(raw) if isinstance(raw, bytes | bytearray) else 0, defects)


def _message(raw: bytes, root: Part, limits: ParseLimits, defects: list[str],
             size: int, keep_decoded: bool = False) -> ParsedMessage:
    # Raw 8-bit headers are most likely in the charset the sender's client used for the body.
    hint = _first_charset(root)
    grouped = _raw_grouped(root.fields)
    headers = _guard(defects, "headers", lambda: _decoded_headers(root.fields, defects, hint),
                     _NO_HEADERS)
    subject = fold_whitespace(headers["subject"][0]) if "subject" in headers else ""
    no_addresses: tuple[Address, ...] = ()
    from_ = _guard(defects, "from", lambda: parse_addresses(grouped.get("from", [])[:1],
                                                            defects, hint), no_addresses)
    # Each stage is guarded on its own so a failure in one still leaves the others' results.
    body = _guard(defects, "body", lambda: collect_body(raw, root, limits, defects, keep_decoded),
                  _NO_BODY)
    forwarded = _guard(defects, "forwarded messages", lambda: tuple(
        _enclosed(inner, limits, defects) for inner in body.enclosed), _NO_MESSAGES)
    text = body.text
    new_text = _guard(defects, "quoting", lambda: extract_new_text(text), text) if text else ""
    if not text.strip() and forwarded:
        # A mail that only forwards another: its readable body is the forwarded one.
        text = "\n\n".join(inner.text for inner in forwarded if inner.text)
    sender = from_[0].address if from_ else ""
    reasons = auto_reasons(headers, sender, subject)
    return_path = grouped.get("return-path", [None])[0]
    return ParsedMessage(
        message_id=first_message_id(_first(grouped, "message-id")),
        in_reply_to=first_message_id(_first(grouped, "in-reply-to")),
        references=message_ids(" ".join(grouped.get("references", []))),
        date=parse_date(_first(grouped, "date"), defects),
        from_=from_[0] if from_ else None,
        to=_guard(defects, "to", lambda: parse_addresses(grouped.get("to", []), defects, hint),
                  ()),
        cc=_guard(defects, "cc", lambda: parse_addresses(grouped.get("cc", []), defects, hint),
                  ()),
        reply_to=_guard(defects, "reply-to", lambda: parse_addresses(
            grouped.get("reply-to", []), defects, hint), ()),
        subject=subject,
        normalized_subject=normalize_subject(subject),
        language=detect_language(subject, text),
        text=text,
        new_text=new_text,
        html=body.html,
        attachments=body.attachments,
        auto_submitted=bool(reasons),
        auto_reasons=reasons,
        defects=tuple(dict.fromkeys(defects)),
        headers=headers,
        return_path=return_path.strip() if return_path is not None else None,
        size=size,
        forwarded=forwarded,
    )


def _guard(defects: list[str], stage: str, compute: Callable[[], T], fallback: T) -> T:
    try:
        return compute()
    except Exception as exc:  # noqa: BLE001 - one broken stage must not cost the whole mail
        defects.append(f"parser: {stage} skipped ({type(exc).__name__}: {str(exc)[:120]})")
        return fallback


def _first_charset(part: Part) -> str | None:
    stack = [part]
    while stack:
        current = stack.pop()
        if current.params.get("charset"):
            return current.params["charset"]
        stack.extend(reversed(current.children))
    return None


def _enclosed(inner: Enclosed, limits: ParseLimits, defects: list[str]) -> ParsedMessage:
    own: list[str] = []
    part = inner.part or parse_structure(inner.raw, limits, own, depth=inner.depth)
    size = part.body_end - part.body_start if inner.part is not None else len(inner.raw)
    message = _message(inner.raw, part, limits, own, size)
    # Defects of a forwarded mail are reported on it, and summarised on the outer one.
    if message.defects:
        defects.append(f"forwarded message: {len(message.defects)} defects")
    return message


def _decoded_headers(fields: tuple[tuple[str, str], ...], defects: list[str],
                     hint: str | None) -> Mapping[str, tuple[str, ...]]:
    decoded: dict[str, list[str]] = {}
    for name, value in fields:
        decoded.setdefault(name, []).append(decode_words(value, defects, hint))
    return MappingProxyType({name: tuple(values) for name, values in decoded.items()})


def _raw_grouped(fields: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in fields:
        grouped.setdefault(name, []).append(value)
    return grouped


def _first(grouped: dict[str, list[str]], name: str) -> str | None:
    values = grouped.get(name)
    return values[0] if values else None


def _unreadable(size: int, defects: list[str]) -> ParsedMessage:
    return ParsedMessage(
        message_id=None, in_reply_to=None, references=(), date=None, from_=None, to=(), cc=(),
        reply_to=(), subject="", normalized_subject="", language="en", text="", new_text="",
        html=None, attachments=(), auto_submitted=False, auto_reasons=(),
        defects=tuple(defects), size=size,
    )
