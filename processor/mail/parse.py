"""Interim parser (to be replaced by the full one): stdlib email with the default policy."""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
from dataclasses import dataclass
from datetime import UTC

from processor.mail.model import Address, Attachment, ParsedMessage


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_depth: int = 20
    max_parts: int = 500
    max_headers: int = 1000
    max_header_length: int = 64 * 1024
    max_attachments: int = 200
    max_attachment_bytes: int = 50 * 1024 * 1024


def _addresses(values: list[str]) -> tuple[Address, ...]:
    return tuple(
        Address(name, addr) for name, addr in email.utils.getaddresses(values) if addr
    )


def parse_message(raw: bytes, limits: ParseLimits | None = None) -> ParsedMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers: dict[str, tuple[str, ...]] = {}
    for name, value in msg.items():
        headers.setdefault(name.lower(), ())
        headers[name.lower()] += (str(value),)
    date = None
    try:
        parsed_date = email.utils.parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
        if parsed_date is not None and parsed_date.tzinfo is not None:
            date = parsed_date.astimezone(UTC)
    except (TypeError, ValueError):
        date = None
    body = msg.get_body(preferencelist=("plain", "html"))
    text = ""
    if body is not None:
        try:
            text = body.get_content()
        except (LookupError, ValueError):
            text = ""
    attachments = []
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        attachments.append(
            Attachment(
                filename=part.get_filename() or f"attachment-{len(attachments) + 1}.bin",
                content_type=part.get_content_type(),
                size=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
                inline=part.get_content_disposition() == "inline",
                content_id=part.get("Content-ID"),
                payload=payload,
            )
        )
    froms = _addresses(msg.get_all("From", []))
    subject = " ".join(str(msg.get("Subject", "")).split())
    refs = tuple(str(msg.get("References", "")).split())
    return ParsedMessage(
        message_id=str(msg["Message-ID"]).strip() if msg["Message-ID"] else None,
        in_reply_to=str(msg["In-Reply-To"]).strip() if msg["In-Reply-To"] else None,
        references=refs,
        date=date,
        from_=froms[0] if froms else None,
        to=_addresses(msg.get_all("To", [])),
        cc=_addresses(msg.get_all("Cc", [])),
        reply_to=_addresses(msg.get_all("Reply-To", [])),
        subject=subject,
        normalized_subject=subject,
        language="en",
        text=text,
        new_text=text,
        html=None,
        attachments=tuple(attachments),
        auto_submitted=False,
        auto_reasons=(),
        defects=(),
        headers=headers,
        return_path=str(msg["Return-Path"]) if msg["Return-Path"] else None,
        size=len(raw),
    )
