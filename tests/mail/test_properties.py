"""Property tests: random and mutated MIME never raises, and output and time stay bounded."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.mail import ParseLimits, normalize_subject, parse_message
from processor.mail.quoting import extract_new_text
from tests.mail.conftest import SAMPLES

_SEEDS = [path.read_bytes() for path in sorted(SAMPLES.glob("*.eml"))]
_LIMITS = ParseLimits(max_parts=50, max_depth=8, max_text_chars=20_000)
_TOKENS = [b"\r\n", b"\n", b"--", b"--B", b"--B--", b"=?", b"?=", b"=?utf-8?B?", b"=?gbk?Q?",
           b"Content-Type: multipart/mixed; boundary=B\r\n", b"Content-Type: message/rfc822\r\n",
           b"Content-Transfer-Encoding: base64\r\n",
           b"Content-Transfer-Encoding: quoted-printable\r\n",
           b"Content-Disposition: attachment; filename*0*=utf-8''%E4; filename*1=x\r\n",
           b": ", b"\t", b"=\r\n", b"=ZZ", b"\xff\xfe", b"\xe4\xb8", b"<html><div>", b"</td>",
           b"> ", b"On x wrote:\n", "发件人：".encode(), b"\x00"]


def _check(raw: bytes) -> None:
    started = time.perf_counter()
    message = parse_message(raw, _LIMITS)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0
    assert len(message.text) <= _LIMITS.max_text_chars
    assert len(message.attachments) <= _LIMITS.max_attachments
    assert sum(a.size for a in message.attachments) <= len(raw)
    message.as_json()  # every field is serialisable


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS) | st.binary(max_size=20), max_size=200))
def test_mime_shaped_noise(tokens: list[bytes]) -> None:
    _check(b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + b"".join(tokens))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SEEDS), st.lists(
    st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=40),
              st.sampled_from(_TOKENS) | st.binary(max_size=8)), max_size=8))
def test_mutated_samples(seed: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    raw = bytearray(seed)
    for position, length, insert in edits:
        position %= len(raw) + 1
        raw[position:position + length] = insert
    _check(bytes(raw))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2000))
def test_text_rules_total(text: str) -> None:
    started = time.perf_counter()
    new_text = extract_new_text(text)
    normalize_subject(text)
    assert len(new_text) <= len(text)
    assert time.perf_counter() - started < 1.0


def test_pathological_repetition_is_fast() -> None:
    started = time.perf_counter()
    parse_message(b"Subject: " + b"=?utf-8?B?" * 20_000 + b"\r\n\r\n" + b"> On " * 50_000)
    parse_message(b"Content-Type: multipart/mixed; boundary=B\r\n\r\n" + b"--B\r\n" * 20_000)
    normalize_subject("Re: [" * 5000 + "x")
    extract_new_text("On " * 30_000 + "\n" + "发件人:\n" * 10_000)
    assert time.perf_counter() - started < 5.0
