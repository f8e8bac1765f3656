"""Pure builders for the mail we send: acknowledgements, staff notifications, their headers.

Nothing a complainant wrote reaches a header except through `clean_header_text` and the
email package's modern policy, and every message is re-parsed before it is returned to prove
that it carries exactly the headers and recipients we meant (see `_verify_headers`).
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import email.utils
import re
import secrets
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from typing import Any

from processor.errors import ComplaintsError
from processor.mail.model import Address, ParsedMessage
from processor.mail.subject import display_subject
from processor.render import RenderedBody

# 7bit keeps bodies base64/quoted-printable and headers RFC 2047-encoded, so any relay accepts it.
POLICY = email.policy.SMTP.clone(cte_type="7bit", max_line_length=78)
MAX_SUBJECT_CHARS = 180
MAX_REFERENCES = 20


class InvalidAddress(ComplaintsError):
    """An address we were asked to write into a header or an envelope is not a plain mailbox."""


class InvalidHeader(ComplaintsError):
    """A composed message does not re-parse to the headers we set (a bug, never sent)."""


# --- Message-IDs: unguessable, and recognisable as ours when a reply refers to them

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def make_message_id(domain: str, installation_id: str) -> str:
    """`<token.installation@domain>`; 144 random bits, so nobody can guess one to join a case."""
    if not _SLUG.match(installation_id):
        raise InvalidAddress(f"installation id {installation_id!r} must be lower-case letters, "
                             "digits and '-'")
    return f"<{secrets.token_urlsafe(18)}.{installation_id}@{_valid_domain(domain)}>"


def is_our_message_id(message_id: str, domain: str, installation_id: str) -> bool:
    match = re.fullmatch(r"<?([A-Za-z0-9_-]{24})\.([^@<>\s]+)@([^<>\s]+?)>?",
                         message_id.strip())
    if match is None:
        return False
    return match.group(2) == installation_id and match.group(3).lower() == domain.lower()


_MESSAGE_ID = re.compile(r"^<[!-;=?-~]+@[!-;=?-~]+>$")  # printable ASCII, no spaces or brackets


def _valid_message_id(value: str | None) -> str | None:
    return value.strip() if value and _MESSAGE_ID.match(value.strip()) else None


# --- addresses


_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


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
                max_subject_chars: int = MAX_SUBJECT_CHARS) -> EmailMessage:
    """The acknowledgement of a new case, threaded under the complainant's mail."""
    msg = _base(from_address, [to], ack_subject(format_tag(tag_format, case_ref),
                                                _their_subject(original), max_subject_chars),
                message_id, date)
    parent = _valid_message_id(original.message_id)
    if parent:
        msg["In-Reply-To"] = parent
    references = _references(original.references, parent)
    if references:
        msg["References"] = " ".join(references)
    msg["Auto-Submitted"] = "auto-replied"
    _finish(msg, loop_header_name, loop_header_value, body)
    return msg


def compose_staff_notification(*, case_ref: str, tag_format: str, original: ParsedMessage,
                               from_address: Address | str, to: Sequence[Address | str],
                               body: RenderedBody, message_id: str, loop_header_name: str,
                               loop_header_value: str, date: datetime,
                               max_subject_chars: int = MAX_SUBJECT_CHARS,
                               reply_to: str | None = None) -> EmailMessage:
    """A new-case notice to staff; automatic, so marked auto-generated like the ack is marked.

    `reply_to` is the case's signed reply address: a staff answer sent there can be verified."""
    if not to:
        raise InvalidAddress("a staff notification needs at least one recipient")
    msg = _base(from_address, list(to), ack_subject(format_tag(tag_format, case_ref),
                                                    _their_subject(original), max_subject_chars),
                message_id, date)
    if reply_to:
        msg["Reply-To"] = _mailbox(reply_to)
    msg["Auto-Submitted"] = "auto-generated"
    _finish(msg, loop_header_name, loop_header_value, body)
    return msg


def _their_subject(original: ParsedMessage) -> str:
    # Without their "Fwd:"/"回复：" run, so the tag comes first; the raw one if nothing is left.
    return display_subject(original.subject) or original.subject


def _base(from_address: Address | str, to: Sequence[Address | str], subject: str,
          message_id: str, date: datetime) -> EmailMessage:
    if not _valid_message_id(message_id):
        raise InvalidHeader(f"not a valid Message-ID: {message_id!r}")
    msg = EmailMessage(policy=POLICY)
    msg["From"] = _mailbox(from_address)
    msg["To"] = [_mailbox(who) for who in to]
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(date)
    msg["Message-ID"] = message_id
    return msg


_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext


def _finish(msg: EmailMessage, loop_header_name: str, loop_header_value: str,
            body: RenderedBody) -> None:
    if not _FIELD_NAME.match(loop_header_name) or loop_header_name.lower() in {
            k.lower() for k in msg.keys()}:
        raise InvalidHeader(f"not a usable loop header name: {loop_header_name!r}")
    # Tells Exchange and others not to send us out-of-office replies or read receipts.
    msg["X-Auto-Response-Suppress"] = "All"
    msg[loop_header_name] = clean_header_text(loop_header_value, 200)
    msg.set_content(body.text, subtype="plain", charset="utf-8")
    if body.html is not None:
        msg.add_alternative(body.html, subtype="html", charset="utf-8")
    _verify_headers(msg)


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
    """Serialise and re-read the header block: the same header names and recipients, or we
    refuse to send. Only the headers are re-read (with the fast compat32 parser): the body
    cannot add a header, and a full modern-policy parse per outgoing mail cost more than
    composing it."""
    wire = msg.as_bytes()
    reparsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(wire)
    intended = [k.lower() for k in msg.keys()]
    if [k.lower() for k in reparsed.keys()] != intended or any(
            "\r" in str(v) or "\n" in str(v) for v in msg.values()):
        raise InvalidHeader(f"composed headers changed on the wire: {reparsed.keys()}")
    for name in ("From", "To"):
        if _address_list(reparsed, name) != _address_list(msg, name):
            raise InvalidHeader(f"composed {name} header changed on the wire")


def _address_list(msg: EmailMessage, name: str) -> list[str]:
    return [a for _, a in email.utils.getaddresses([str(v) for v in msg.get_all(name, [])])]


def compose_case_mail(*, case_ref: str, tag_format: str, subject: str,
                      from_address: Address | str, to: Sequence[Address | str],
                      body: RenderedBody, message_id: str, loop_header_name: str,
                      loop_header_value: str, date: datetime, in_reply_to: str | None = None,
                      references: Sequence[str] = (), auto_submitted: str | None = None,
                      reply_to: str | None = None,
                      attachments: Sequence[tuple[str, str, bytes]] = (),
                      max_subject_chars: int = MAX_SUBJECT_CHARS) -> EmailMessage:
    """Any other mail about a case: a relayed staff answer, a resolution notice, a note to staff.

    `auto_submitted` is None for a person's words relayed (a staff answer), "auto-generated" or
    "auto-replied" for what the processor writes by itself. `attachments` are (filename,
    content type, bytes); their names are cleaned like any other header text.
    """
    msg = _base(from_address, list(to), ack_subject(format_tag(tag_format, case_ref),
                                                    display_subject(subject) or subject,
                                                    max_subject_chars), message_id, date)
    parent = _valid_message_id(in_reply_to)
    if parent:
        msg["In-Reply-To"] = parent
    refs = _references(references, parent)
    if refs:
        msg["References"] = " ".join(refs)
    if reply_to:
        msg["Reply-To"] = _mailbox(reply_to)
    if auto_submitted:
        msg["Auto-Submitted"] = auto_submitted
    _finish(msg, loop_header_name, loop_header_value, body)
    for filename, content_type, payload in attachments:
        maintype, _, subtype = content_type.partition("/")
        if not maintype or not subtype or not _FIELD_NAME.match(content_type):
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(payload, maintype=maintype, subtype=subtype,
                           filename=clean_header_text(filename, 120) or "attachment.bin")
    if attachments:
        _verify_headers(msg)
    return msg
