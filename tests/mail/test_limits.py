"""Hostile mail: limits hold, nothing raises, and memory stays a small multiple of the input."""

from __future__ import annotations

import base64
import os
import tracemalloc

from processor.mail import ParseLimits, parse_message

_HEAD = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n"
         b"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
         b"--B\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n")


def _with_attachment(payload: bytes) -> bytes:
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (_HEAD + b"--B\r\nContent-Type: application/octet-stream; name=big.bin\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--B--\r\n")


def test_30_mb_attachment_peak_memory_under_three_times_its_size() -> None:
    size = 30 * 1024 * 1024
    raw = _with_attachment(os.urandom(size))
    tracemalloc.start()
    try:
        message = parse_message(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message.attachments[0].size == size
    assert not message.defects
    assert peak < 3 * size, f"peak {peak / size:.2f}x the attachment size"


def test_attachment_over_the_size_limit_is_skipped_not_decoded() -> None:
    raw = _with_attachment(b"x" * 100_000)
    message = parse_message(raw, ParseLimits(max_attachment_bytes=10_000))
    assert message.attachments == ()
    assert message.text == "see attachment"
    assert any("larger than 10000 bytes skipped" in d for d in message.defects)


def test_attachment_count_limit() -> None:
    parts = b"".join(b"--B\r\nContent-Type: image/png\r\n\r\nx\r\n" for _ in range(20))
    message = parse_message(_HEAD + parts + b"--B--\r\n", ParseLimits(max_attachments=5))
    assert len(message.attachments) == 5
    assert "attachment: more than 5, the rest skipped" in message.defects


def test_deep_nesting_is_cut_at_the_limit() -> None:
    depth = 5000
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
                       for i in range(depth))
    raw = b"Subject: deep\r\n" + opening + b"Content-Type: text/plain\r\n\r\ncore\r\n"
    message = parse_message(raw, ParseLimits(max_depth=10))
    assert message.subject == "deep"
    assert any("nesting deeper than 10" in d for d in message.defects)


def test_deeply_nested_forwarded_messages_stop_at_the_limit() -> None:
    raw = b"Subject: inner\r\n\r\ncore\r\n"
    for level in range(60):
        raw = (b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % level) + raw
    message = parse_message(raw)
    depth = 0
    while message.forwarded:
        message = message.forwarded[0]
        depth += 1
    assert depth <= ParseLimits().max_depth


def test_part_count_limit() -> None:
    parts = b"".join(b"--B\r\nContent-Type: text/plain\r\n\r\np%d\r\n" % i for i in range(100))
    message = parse_message(_HEAD + parts + b"--B--\r\n", ParseLimits(max_parts=10))
    assert "mime: more than 10 parts, the rest skipped" in message.defects
    assert message.text.startswith("see attachment")


def test_header_count_and_length_limits() -> None:
    raw = (b"Subject: s\r\n" + b"X-Junk: 1\r\n" * 50 + b"X-Long: " + b"a" * 5000 + b"\r\n\r\nbody")
    message = parse_message(raw, ParseLimits(max_headers=20, max_header_length=1000))
    assert message.subject == "s"
    assert "header: more than 20 fields, the rest skipped" in message.defects
    raw = b"Subject: " + b"a" * 5000 + b"\r\n\r\nbody"
    message = parse_message(raw, ParseLimits(max_header_length=1000))
    assert len(message.subject) == 1000
    assert "header: a value longer than 1000 characters was cut" in message.defects


def test_text_limit_cuts_the_body() -> None:
    raw = b"Subject: s\r\n\r\n" + b"word " * 100_000
    message = parse_message(raw, ParseLimits(max_text_chars=1000))
    assert len(message.text) <= 1000
    assert any(d.startswith("body: text longer than") for d in message.defects)


def test_not_bytes_is_a_defect_not_an_exception() -> None:
    message = parse_message(None)  # type: ignore[arg-type]
    assert message.defects and message.defects[0].startswith("parser: gave up")
