"""The dedup key is stored with every mail: the same mail must get the same key from every
release, or a mail fetched again after an upgrade would be filed twice. These tests pin the
key to its definition (SHA-256 of the identity, a NUL, and the body after the first empty
line with CRLF read as LF), whatever the code does to compute it faster."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor import dedup
from processor.dedup import body_offset, dedup_key
from processor.mail import parse_message
from processor.mail.limits import ParseLimits


def _defined_offset(raw: bytes) -> int:
    found = [i + len(blank) for blank in (b"\r\n\r\n", b"\n\n")
             for i in (raw.find(blank),) if i >= 0]
    return min(found) if found else len(raw)


def _defined_key(raw: bytes) -> str:
    message = parse_message(raw, ParseLimits())
    identity = "\0".join((
        message.message_id or "",
        message.from_.address.lower() if message.from_ else "",
        message.date.isoformat() if message.date else "",
        message.subject,
    ))
    body = raw[_defined_offset(raw):].replace(b"\r\n", b"\n")
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass") + b"\0" + body).hexdigest()


# Line ends and blank lines of every kind, where they are easy to get wrong.
_PIECES = st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n\n", b"\r\r\n", b"a", b"Z",
                           b"\xe4\xb8\xad", b" "])
_RAWS = st.lists(_PIECES, max_size=40).map(b"".join)


@given(_RAWS)
@settings(max_examples=400, deadline=None)
def test_body_offset_is_the_first_empty_line_of_either_kind(raw: bytes) -> None:
    assert body_offset(raw) == _defined_offset(raw)


def test_an_lf_blank_line_before_the_crlf_one_wins() -> None:
    raw = b"Subject: x\n\nbody\r\n\r\nmore"
    assert body_offset(raw) == raw.index(b"\n\n") + 2
    raw = b"Subject: x\r\n\r\nbody\n\nmore"
    assert body_offset(raw) == raw.index(b"\r\n\r\n") + 4


@given(st.lists(_PIECES, max_size=60).map(b"".join))
@settings(max_examples=300, deadline=None)
def test_key_matches_its_definition(body: bytes) -> None:
    raw = (b"From: A <a@example.com>\r\nSubject: Ticket\r\nMessage-ID: <k@example.com>\r\n"
           b"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\r\n" + body)
    assert dedup_key(raw, parse_message(raw, ParseLimits())) == _defined_key(raw)


def test_key_matches_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CR that ends one chunk and its LF that starts the next still read as one LF; lone
    CRs stay. Small chunks put every kind of line end on a boundary."""
    body = b"line one\r\nline two\r\n\r\nlone\rcr\r\r\n" * 50 + b"end\r"
    raw = b"Subject: chunks\r\n\r\n" + body
    expected = _defined_key(raw)
    for chunk in (1, 2, 3, 7, 64):
        monkeypatch.setattr(dedup, "_CHUNK", chunk)
        assert dedup_key(raw, parse_message(raw, ParseLimits())) == expected


def test_key_ignores_trace_headers_only() -> None:
    sent = b"From: a@example.com\r\nSubject: s\r\nMessage-ID: <m@x>\r\n\r\nbody\r\n"
    relayed = b"Received: from relay\r\nDelivered-To: desk@example.com\r\n" + sent
    changed = sent.replace(b"body", b"bodY")
    key = dedup_key(sent, parse_message(sent, ParseLimits()))
    assert dedup_key(relayed, parse_message(relayed, ParseLimits())) == key
    assert dedup_key(changed, parse_message(changed, ParseLimits())) != key
