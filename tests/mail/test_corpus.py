"""Every mail of the shared corpus parses, and matches the expected values recorded there.

The imap_tools expectations come from the stdlib email package, not from an independent
ground truth; where we read a mail better (or differently, by design) the mismatch is listed
in ACCEPTED with its reason.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from processor.mail import parse_message
from tests.mail.conftest import CORPUS

IMAP_TOOLS = CORPUS / "imap_tools"
CPYTHON = CORPUS / "cpython-test_email"

_NESTED = "expected text also holds the text of the attached message/rfc822, which we expose " \
          "as forwarded[0].text instead"
_REGENERATED = "imap_tools re-serialises a message/rfc822 attachment; we keep its exact bytes"
_STDLIB_HEADERS = "the stdlib stops reading headers at a malformed line; we skip the line " \
                  "and keep reading, so subject, sender and date are found"
_DROPPED_BYTES = "the stdlib drops undecodable bytes; we detect the charset and keep them"

ACCEPTED: dict[tuple[str, str], str] = {
    ("attachment_2_base64", "text"): "expected text is the base64 of an attached .eml that "
                                     "imap_tools mistook for text; ours is the HTML body",
    ("attachment_7bit", "attachments"): _REGENERATED,
    ("attachment_8bit", "text"): _NESTED,
    ("attachment_emails/attachment_message_rfc822", "text"): _NESTED,
    ("attachment_emails/attachment_message_rfc822", "attachments"): _REGENERATED,
    ("error_emails/content_transfer_encoding_7-bit", "text"):
        "expected is mojibake (UTF-8 read as latin-1); the part is UTF-8 despite its label",
    ("error_emails/content_transfer_encoding_plain", "text"): _DROPPED_BYTES,
    ("error_emails/invalid_subject_characters", "subject"): _DROPPED_BYTES,
    ("plain_emails/raw_email6", "text"): _DROPPED_BYTES,
    ("mime_emails/raw_email_with_mimepart_without_content_type", "text"): _NESTED,
    ("mime_emails/raw_email_with_mimepart_without_content_type", "attachments"): _REGENERATED,
    ("multipart_report_emails/multi_address_bounce1", "text"): _NESTED,
    ("multipart_report_emails/multi_address_bounce1", "attachments"): _REGENERATED,
    ("multipart_report_emails/multi_address_bounce2", "text"): _NESTED,
    ("multipart_report_emails/multi_address_bounce2", "attachments"): _REGENERATED,
    ("multipart_report_emails/multipart_report_multiple_status", "text"):
        "the human-readable report sits in a message/delivery-status part, which is never "
        "body; with no own text the forwarded mail's text is shown",
    ("multipart_report_emails/multipart_report_multiple_status", "attachments"):
        "imap_tools lists the parts inside the returned message as attachments of the "
        "report; ours are on forwarded[0], and the .eml bytes are not re-serialised",
    ("plain_emails/raw_email_incorrect_header", "subject"): _STDLIB_HEADERS,
    ("plain_emails/raw_email_incorrect_header", "from"): _STDLIB_HEADERS,
    ("plain_emails/raw_email_incorrect_header", "text"): _STDLIB_HEADERS,
    ("plain_emails/raw_email_incorrect_header", "date"): _STDLIB_HEADERS,
    ("plain_emails/raw_email_incorrect_header", "to"): _STDLIB_HEADERS,
    ("rfc2822/example13", "subject"): "RFC 5322 obsolete syntax (space before the colon) is "
                                      "read by us, not by the stdlib",
    ("rfc2822/example13", "from"): "obsolete syntax, as above",
    ("rfc2822/example13", "text"): "obsolete syntax, as above",
    ("rfc2822/example13", "date"): "obsolete syntax with comments inside the time, as above",
    ("rfc2822/example13", "to"): "obsolete syntax, as above",
    ("text_with_content_id", "attachments"): "imap_tools lists any part with a Content-ID as "
                                             "an attachment; this one is the text/plain body",
    ("error_emails/encoding_madness", "reply_to"): "an empty Reply-To gives no address, "
                                                   "not one empty address",
    ("error_emails/missing_body", "to"): "an empty group member is dropped, not kept as ''",
    ("mime_emails/raw_email11", "to"): "a bare local name is kept as the address",
}


def _messages() -> list[Path]:
    if not IMAP_TOOLS.is_dir():
        return []
    return sorted((IMAP_TOOLS / "messages").rglob("*.eml"))


def _squash(text: str) -> str:
    # Line endings, flowed lines and edge blanks differ by design; the words must not.
    return "".join(text.split())


def _expected_date(value: str) -> datetime | None:
    if value.startswith("1900-01-01"):
        return None
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _mismatches(eml: Path) -> dict[str, tuple[object, object]]:
    rel = eml.relative_to(IMAP_TOOLS / "messages").with_suffix("")
    expected = json.loads((IMAP_TOOLS / "expected" / rel).with_suffix(".json").read_text())
    message = parse_message(eml.read_bytes())
    found: dict[str, tuple[object, object]] = {}
    if " ".join(expected["subject"].split()) != message.subject:
        found["subject"] = (expected["subject"], message.subject)
    ours_from = message.from_.address.lower() if message.from_ else ""
    if (expected["from_"] or "").lower() != ours_from:
        found["from"] = (expected["from_"], ours_from)
    text = expected["text"]
    if text.strip() and _squash(text) != _squash(message.text):
        found["text"] = (text[:200], message.text[:200])
    if _expected_date(expected["date"]) != message.date:
        found["date"] = (expected["date"], message.date)
    for key, ours in (("to", message.to), ("cc", message.cc), ("reply_to", message.reply_to)):
        if [a.lower() for a in expected[key]] != [a.address.lower() for a in ours]:
            found[key] = (expected[key], [a.address for a in ours])
    hashes = {a.sha256 for a in message.all_attachments()}
    missing = [a["filename"] for a in expected["attachments"]
               if a["payload"]["sha256"] not in hashes]
    if missing:
        found["attachments"] = (missing, [a.filename for a in message.all_attachments()])
    return found


@pytest.mark.parametrize("eml", _messages(), ids=lambda p: p.stem)
def test_imap_tools_message_matches_expected(corpus: Path, eml: Path) -> None:
    rel = eml.relative_to(IMAP_TOOLS / "messages").with_suffix("").as_posix()
    unexpected = {field: values for field, values in _mismatches(eml).items()
                  if (rel, field) not in ACCEPTED}
    assert not unexpected, f"{rel}: {unexpected}"


def test_every_accepted_mismatch_still_happens(corpus: Path) -> None:
    """A stale entry in ACCEPTED would hide a future regression in the same field."""
    stale = []
    for rel, field in ACCEPTED:
        eml = IMAP_TOOLS / "messages" / f"{rel}.eml"
        if field not in _mismatches(eml):
            stale.append((rel, field))
    assert not stale


def test_whole_corpus_parses_without_error(corpus: Path) -> None:
    files = [p for p in corpus.rglob("*") if p.suffix in (".eml", ".txt") and p.is_file()
             and p.name != "README.md"]
    assert len(files) >= 140
    for path in files:
        message = parse_message(path.read_bytes())
        assert not any(d.startswith("parser:") for d in message.defects), (path, message.defects)


@pytest.mark.parametrize(("name", "subject", "sender", "text_start"), [
    ("msg_01.txt", "This is a test message", "bbb@ddd.com", "Hi,"),
    ("msg_35.txt", "here's something interesting", "aperson@dom.ain",
     "counter to RFC 2822, there's no separating newline here"),
    ("msg_44.txt", "a simple multipart", "barry@python.org", "a simple kind of mirror"),
    ("msg_42.txt", "", "xxx@example.com", "Stuff"),
])
def test_cpython_samples(corpus: Path, name: str, subject: str, sender: str,
                         text_start: str) -> None:
    message = parse_message((CPYTHON / name).read_bytes())
    assert message.subject == subject
    assert message.from_ is not None and message.from_.address == sender
    assert message.text.startswith(text_start)
