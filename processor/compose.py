"""Pure builders for the mail we send: acknowledgements, staff notifications, their headers.

Nothing a complainant wrote reaches a header except through `clean_header_text` and
`processor.wire`, which writes each header itself (plain words or RFC 2047 encoded-words,
folded) and refuses control characters; and every message's header block is re-read from
its bytes before it is returned, to prove that it carries exactly the headers and recipients
we meant (see `_verify_headers`).
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import email.utils
import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage, MIMEPart
from typing import Any

from processor import wire
from processor.errors import ComplaintsError
from processor.mail.model import Address, ParsedMessage
from processor.mail.subject import display_subject
from processor.random_tokens import token_urlsafe
from processor.render import RenderedBody
from processor.wire import POLICY as POLICY  # re-exported: the policy of what we compose
from processor.wire import AddressWireHeader, ComposedMessage, InvalidHeader, WireHeader

MAX_SUBJECT_CHARS = 180
MAX_REFERENCES = 20


class InvalidAddress(ComplaintsError):
    """An address we were asked to write into a header or an envelope is not a plain mailbox."""


# --- Message-IDs: unguessable, and recognisable as ours when a reply refers to them

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def make_message_id(domain: str, installation_id: str) -> str:
    """`<token.installation@domain>`; 144 random bits, so nobody can guess one to join a case."""
    if not _SLUG.match(installation_id):
        raise InvalidAddress(f"installation id {installation_id!r} must be lower-case letters, "
                             "digits and '-'")
    return f"<{token_urlsafe(18)}.{installation_id}@{_valid_domain(domain)}>"


def is_our_message_id(message_id: str, domain: str, installation_id: str) -> bool:
    match = re.fullmatch(r"<?([A-Za-z0-9_-]{24})\.([^@<>\s]+)@([^<>\s]+?)>?",
                         message_id.strip())
    if match is None:
        return False
    return match.group(2) == installation_id and match.group(3).lower() == domain.lower()


_MESSAGE_ID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")  # printable ASCII, no spaces or brackets
# A Message-ID is never folded: this keeps its line under RFC 5322's 998 octets.
MAX_MESSAGE_ID = 900


def _valid_message_id(value: str | None) -> str | None:
    value = value.strip() if value else None
    return value if value and len(value) <= MAX_MESSAGE_ID and _MESSAGE_ID.match(value) else None


# --- addresses


_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@functools.lru_cache(maxsize=4096)  # every Message-ID and recipient asks: the same few domains
def _valid_domain(domain: str) -> str:
    try:
        ascii_domain = domain.strip().encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidAddress(f"not a valid domain: {domain!r}") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or not all(_LABEL.match(label) for label in labels) or (
            len(labels) < 2 and ascii_domain.lower() != "localhost"):
        raise InvalidAddress(f"not a valid domain: {domain!r}")
    return ascii_domain


def validate_address(address: str) -> str:
    """The address as we will use it (IDN domain in ASCII), or InvalidAddress saying why.

    Only plain dot-atom local parts: quoted local parts and "=?" sequences are legal in corner
    cases but are exactly what header and SMTP-command injection attempts are made of.
    """
    local, at, domain = address.rpartition("@")
    if not at or not local or len(local) > 64 or "=?" in address:
        raise InvalidAddress(f"not a plain mail address: {address!r}")
    if not _LOCAL_PART.match(local):
        raise InvalidAddress(f"not a plain mail address: {address!r}")
    result = f"{local}@{_valid_domain(domain)}"
    if len(result) > 254:
        raise InvalidAddress(f"address too long: {address[:40]!r}...")
    return result


def _mailbox(who: Address | str) -> HeaderAddress:
    """A valid address (IDN domain in ASCII) with its display name made one line of text."""
    if isinstance(who, str):
        who = Address("", who)
    local, _, domain = validate_address(who.address).rpartition("@")
    return HeaderAddress(display_name=clean_header_text(who.name, 78), username=local,
                         domain=domain)


# --- text that goes into headers


# Bidirectional overrides and other invisible format characters make subjects lie about
# themselves; the joiners are kept because emoji need them.
_KEEP_FORMAT = {"\u200c", "\u200d"}


def clean_header_text(text: str, max_chars: int = MAX_SUBJECT_CHARS) -> str:
    """One line of visible text: controls and line separators become spaces, runs collapse.

    "=?" becomes "= ?": the email package decodes anything shaped like an RFC 2047 encoded-word
    when a header is set, so a subject containing the *text* "=?utf-8?q?=0D=0ABcc:...?=" would
    otherwise turn into a real line break on the wire.
    """
    if text.isprintable():  # no controls, format characters or separators but the space
        return truncate_text(" ".join(text.split()).replace("=?", "= ?"), max_chars)
    chars = []
    for char in text:
        category = unicodedata.category(char)
        if category in ("Cc", "Zl", "Zp") or char.isspace():
            chars.append(" ")
        elif category == "Cf" and char not in _KEEP_FORMAT:
            continue
        else:
            chars.append(char)
    cleaned = " ".join("".join(chars).split()).replace("=?", "= ?")
    return truncate_text(cleaned, max_chars)


def truncate_text(text: str, max_chars: int) -> str:
    """At most `max_chars` characters, cut between whole characters and preferably between words."""
    if len(text) <= max_chars:
        return text
    cut = max(max_chars - 1, 0)  # room for the ellipsis
    # Never separate a base character from its combining marks or an emoji from its joiner.
    while cut > 0 and (unicodedata.combining(text[cut]) or text[cut] in "\u200d\ufe0f\ufe0e"
                       or text[cut - 1] == "\u200d"):
        cut -= 1
    space = text.rfind(" ", 0, cut + 1)
    if space > cut - 15 and space > 0:  # only Latin-like text has spaces; CJK is cut anywhere
        cut = space
    return text[:cut].rstrip() + "…"


# --- the case tag in subjects


def format_tag(tag_format: str, case_ref: str) -> str:
    if tag_format.count("{ref}") != 1:
        raise ComplaintsError(f"subject tag format {tag_format!r} must contain {{ref}} once")
    return tag_format.replace("{ref}", case_ref)


_FOLD = str.maketrans({"【": "[", "】": "]", "〔": "[", "〕": "]", "〖": "[", "〗": "]",
                       "「": "[", "」": "]", "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-",
                       "−": "-"})


def _fold(text: str) -> str:
    # NFKC turns full-width "［Ｃ－０００１２３］" into "[C-000123]"; the table does the brackets
    # and dashes that NFKC keeps, as Chinese mail clients and IMEs produce them.
    return unicodedata.normalize("NFKC", text).translate(_FOLD)


def subject_tag_pattern(tag_format: str = "[{ref}]", prefix: str = "C-",
                        width: int = 6) -> re.Pattern[str]:
    """A pattern that finds our tag again wherever a mail client put it, after `_fold`."""
    format_tag(tag_format, "")  # validates
    before, after = (_literal(part) for part in _fold(tag_format).split("{ref}"))
    ref = rf"(?<![A-Za-z0-9])(?P<ref>{re.escape(_fold(prefix))}\d{{{width},}})(?!\d)"
    return re.compile(rf"{before}\s*{ref}\s*{after}")


def _literal(part: str) -> str:
    return "".join(r"\s*" if c.isspace() else re.escape(c) for c in part.strip())


def find_case_ref(subject: str, pattern: re.Pattern[str]) -> str | None:
    match = pattern.search(_fold(subject))
    return match.group("ref") if match else None


def ack_subject(tag: str, subject: str, max_chars: int = MAX_SUBJECT_CHARS) -> str:
    """`[C-000123] their subject`, cut to `max_chars` in all, never tagged twice."""
    cleaned = clean_header_text(subject, 10 * max_chars)
    if _fold(tag) in _fold(cleaned):
        return clean_header_text(cleaned, max_chars)
    return clean_header_text(f"{tag} {cleaned}".strip(), max_chars)


# --- which details the team asks for, per category (the templates word the questions)

def ack_context(*, case_ref: str, subject: str, category_label: str,
                first_answer_by: datetime | str, sla_hours: int, missing: Sequence[str],
                reply_hint: str = "") -> dict[str, Any]:
    """The variables the ack-* templates use (documented in README); nothing else of the mail."""
    return {"case_ref": case_ref, "subject": clean_header_text(subject),
            "category_label": category_label, "first_answer_by": first_answer_by,
            "sla_hours": sla_hours, "missing": list(missing), "reply_hint": reply_hint}


# --- the messages


def compose_ack(*, case_ref: str, tag_format: str, original: ParsedMessage,
                from_address: Address | str, to: Address, body: RenderedBody, message_id: str,
                loop_header_name: str, loop_header_value: str, date: datetime,
                max_subject_chars: int = MAX_SUBJECT_CHARS) -> ComposedMessage:
    """The acknowledgement of a new case, threaded under the complainant's mail."""
    headers = _base(from_address, [to], ack_subject(format_tag(tag_format, case_ref),
                                                    _their_subject(original), max_subject_chars),
                    message_id, date)
    parent = _valid_message_id(original.message_id)
    headers += _threading(parent, _references(original.references, parent))
    headers.append(wire.unstructured("Auto-Submitted", "auto-replied"))
    return _finish(headers, loop_header_name, loop_header_value, body)


def compose_staff_notification(*, case_ref: str, tag_format: str, original: ParsedMessage,
                               from_address: Address | str, to: Sequence[Address | str],
                               body: RenderedBody, message_id: str, loop_header_name: str,
                               loop_header_value: str, date: datetime,
                               max_subject_chars: int = MAX_SUBJECT_CHARS,
                               reply_to: str | None = None) -> ComposedMessage:
    """A new-case notice to staff; automatic, so marked auto-generated like the ack is marked.

    `reply_to` is the case's signed reply address: a staff answer sent there can be verified."""
    if not to:
        raise InvalidAddress("a staff notification needs at least one recipient")
    headers = _base(from_address, list(to), ack_subject(format_tag(tag_format, case_ref),
                                                        _their_subject(original),
                                                        max_subject_chars), message_id, date)
    if reply_to:
        headers.append(wire.addresses("Reply-To", [_mailbox(reply_to)]))
    headers.append(wire.unstructured("Auto-Submitted", "auto-generated"))
    return _finish(headers, loop_header_name, loop_header_value, body)


def _their_subject(original: ParsedMessage) -> str:
    # Without their "Fwd:"/"回复：" run, so the tag comes first; the raw one if nothing is left.
    return display_subject(original.subject) or original.subject


def _base(from_address: Address | str, to: Sequence[Address | str], subject: str,
          message_id: str, date: datetime) -> list[WireHeader]:
    if not _valid_message_id(message_id):
        raise InvalidHeader(f"not a valid Message-ID: {message_id!r}")
    return [wire.addresses("From", [_mailbox(from_address)]),
            wire.addresses("To", [_mailbox(who) for who in to]),
            wire.unstructured("Subject", subject),
            wire.unstructured("Date", email.utils.format_datetime(date)),
            wire.tokens("Message-ID", [message_id.strip()])]


def _threading(parent: str | None, references: list[str]) -> list[WireHeader]:
    return ([wire.tokens("In-Reply-To", [parent])] if parent else []) + (
        [wire.tokens("References", references)] if references else [])


_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext
_TOKEN = re.compile(r"^[A-Za-z0-9-]+$")


def _finish(headers: list[WireHeader], loop_header_name: str, loop_header_value: str,
            body: RenderedBody, attachments: Sequence[MIMEPart] = ()) -> ComposedMessage:
    if not _FIELD_NAME.match(loop_header_name) or loop_header_name.lower() in {
            h.name.lower() for h in headers} | {"mime-version", "content-type",
                                                "content-transfer-encoding"}:
        raise InvalidHeader(f"not a usable loop header name: {loop_header_name!r}")
    # Tells Exchange and others not to send us out-of-office replies or read receipts.
    headers.append(wire.unstructured("X-Auto-Response-Suppress", "All"))
    headers.append(wire.unstructured(loop_header_name, clean_header_text(loop_header_value, 200)))
    msg = wire.message(headers, body.text, body.html, attachments)
    _verify_headers(msg)
    return msg


def _references(theirs: Sequence[str], parent: str | None) -> list[str]:
    ids = []
    for value in [*theirs, parent]:
        valid = _valid_message_id(value)
        if valid and valid not in ids:
            ids.append(valid)
    # Keep the thread's root and the most recent ones, as RFC 5322 suggests for long threads.
    if len(ids) > MAX_REFERENCES:
        ids = [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return ids


def _verify_headers(msg: EmailMessage) -> None:
    """Read the header block back from the bytes we will send: the same header names and
    recipients, nothing but 7-bit text and no line over 998 octets, or we refuse to send.
    Only the header block is re-read (with the fast compat32 parser): the body cannot add a
    header. For a ComposedMessage `as_bytes` is the bytes already written, not a second
    serialisation."""
    raw = msg.as_bytes()
    end = raw.find(b"\r\n\r\n")
    block = raw[:end + 4] if end >= 0 else raw
    reparsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)
    intended = [k.lower() for k in msg.keys()]
    if [k.lower() for k in reparsed.keys()] != intended or any(
            "\r" in str(v) or "\n" in str(v) for v in msg.values()):
        raise InvalidHeader(f"composed headers changed on the wire: {reparsed.keys()}")
    if not block.isascii() or any(len(line) > 998 for line in block.split(b"\r\n")):
        raise InvalidHeader("composed header block is not 7-bit text in lines of 998 octets")
    for name in ("From", "To", "Reply-To"):
        if _address_list(reparsed, name) != _address_list(msg, name):
            raise InvalidHeader(f"composed {name} header changed on the wire")


def _address_list(msg: email.message.Message, name: str) -> tuple[str, ...]:
    values = msg.get_all(name, [])
    ours = [v for v in values if isinstance(v, AddressWireHeader)]
    if len(ours) == len(values):  # what we meant, known without parsing
        return tuple(a.addr_spec for v in ours for a in v.addresses)
    return _parsed_addresses(tuple(str(v) for v in values))


@functools.lru_cache(maxsize=1024)  # the desk's From is the same in every acknowledgement
def _parsed_addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(address for _, address in email.utils.getaddresses(list(values)))


@dataclass(frozen=True, slots=True)
class OutgoingCopy:
    """What the case's record of an outgoing mail holds of it (casework.record_outgoing)."""

    message_id: str
    in_reply_to: str | None
    references: list[str]
    subject: str
    from_address: str
    to_addresses: list[dict[str, str]]
    text: str


def outgoing_copy(outgoing: EmailMessage) -> OutgoingCopy:
    text = outgoing.plain_text() if isinstance(outgoing, ComposedMessage) else None
    if text is None:
        body = outgoing.get_body(("plain",))
        text = body.get_content() if body is not None else ""
    return OutgoingCopy(
        message_id=str(outgoing["Message-ID"]),
        in_reply_to=str(outgoing["In-Reply-To"]) if outgoing["In-Reply-To"] else None,
        references=str(outgoing["References"] or "").split(), subject=str(outgoing["Subject"]),
        from_address=outgoing["From"].addresses[0].addr_spec.lower(),
        to_addresses=[{"name": a.display_name, "address": a.addr_spec}
                      for a in outgoing["To"].addresses],
        text=text)


def compose_case_mail(*, case_ref: str, tag_format: str, subject: str,
                      from_address: Address | str, to: Sequence[Address | str],
                      body: RenderedBody, message_id: str, loop_header_name: str,
                      loop_header_value: str, date: datetime, in_reply_to: str | None = None,
                      references: Sequence[str] = (), auto_submitted: str | None = None,
                      reply_to: str | None = None,
                      attachments: Sequence[tuple[str, str, bytes]] = (),
                      max_subject_chars: int = MAX_SUBJECT_CHARS) -> ComposedMessage:
    """Any other mail about a case: a relayed staff answer, a resolution notice, a note to staff.

    `auto_submitted` is None for a person's words relayed (a staff answer), "auto-generated" or
    "auto-replied" for what the processor writes by itself. `attachments` are (filename,
    content type, bytes); their names are cleaned like any other header text.
    """
    headers = _base(from_address, list(to), ack_subject(format_tag(tag_format, case_ref),
                                                        display_subject(subject) or subject,
                                                        max_subject_chars), message_id, date)
    parent = _valid_message_id(in_reply_to)
    headers += _threading(parent, _references(references, parent))
    if reply_to:
        headers.append(wire.addresses("Reply-To", [_mailbox(reply_to)]))
    if auto_submitted:
        if not _TOKEN.match(auto_submitted):
            raise InvalidHeader(f"not an Auto-Submitted keyword: {auto_submitted!r}")
        headers.append(wire.unstructured("Auto-Submitted", auto_submitted))
    return _finish(headers, loop_header_name, loop_header_value, body,
                   [_attachment(*attachment) for attachment in attachments])


def _attachment(filename: str, content_type: str, payload: bytes) -> MIMEPart:
    """An attachment part, base64, written by the email package: its RFC 2231 filename
    parameter is the one header we leave to it (relayed attachments are rare)."""
    maintype, _, subtype = content_type.partition("/")
    if not maintype or not subtype or not _FIELD_NAME.match(content_type):
        maintype, subtype = "application", "octet-stream"
    part = MIMEPart(policy=POLICY)
    part.set_content(payload, maintype=maintype, subtype=subtype, disposition="attachment",
                     filename=clean_header_text(filename, 120) or "attachment.bin")
    return part
