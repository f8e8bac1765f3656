"""Decoding an attachment in pieces gives exactly the bytes and defects of decoding it whole,
whatever the line lengths, stray characters, padding or breakage of its base64."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.mail import parse_message
from processor.mail.limits import ParseLimits
from processor.mail.mime import Part, parse_structure, transfer_decode, transfer_decode_pieces

HEAD = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: %s\r\n\r\n"


def body_part(body: bytes, cte: bytes = b"base64") -> tuple[bytes, Part]:
    raw = HEAD % cte + body
    return raw, parse_structure(raw, ParseLimits(), [])


def both(raw: bytes, part: Part, piece: int) -> tuple[bytes, list[str], list[bytes], list[str]]:
    whole_defects: list[str] = []
    whole = transfer_decode(raw, part, whole_defects, "attachment")
    piece_defects: list[str] = []
    pieces = list(transfer_decode_pieces(raw, part, piece_defects, "attachment", piece))
    return whole, whole_defects, pieces, piece_defects


def lines(text: bytes, width: int, newline: bytes) -> bytes:
    return newline.join(text[i:i + width] for i in range(0, len(text), width)) + newline


def test_a_large_attachment_is_decoded_in_pieces_of_about_the_size_asked() -> None:
    data = random.Random(1).randbytes(300_000)
    raw, part = body_part(base64.encodebytes(data).replace(b"\n", b"\r\n"))
    whole, whole_defects, pieces, piece_defects = both(raw, part, 16 * 1024)
    assert b"".join(pieces) == whole == data
    assert len(pieces) > 20 and max(map(len, pieces)) < 13 * 1024
    assert whole_defects == piece_defects == []


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000), width=st.integers(min_value=1, max_value=120),
       newline=st.sampled_from([b"\r\n", b"\n", b" \r\n"]), piece=st.integers(1, 400),
       edits=st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 3),
                                st.sampled_from([b"=", b"==", b"!", b"\r\n", b"A", b"-_", b"\xff",
                                                 b"\n=\n", b"Zm9v", b" "])), max_size=6),
       cte=st.sampled_from([b"base64", b"x-base64", b"7bit", b"quoted-printable"]))
def test_pieces_join_to_the_whole_decoding_with_the_same_defects(
    data: bytes, width: int, newline: bytes, piece: int, edits: list[tuple[int, int, bytes]],
    cte: bytes,
) -> None:
    body = bytearray(lines(base64.b64encode(data), width, newline))
    for position, length, insert in edits:
        position %= len(body) + 1
        body[position:position + length] = insert
    raw, part = body_part(bytes(body), cte)
    whole, whole_defects, pieces, piece_defects = both(raw, part, piece)
    assert b"".join(pieces) == whole
    assert piece_defects == whole_defects


@pytest.mark.parametrize("first_line", [b"QQ==QQ", b"QUI=Q", b"QQ==\r\nQQ"])
def test_padding_in_the_middle_ends_the_decoding_in_pieces_too(first_line: bytes) -> None:
    # Encodings glued together: binascii stops at the first complete padding, so must we, even
    # where the line after it ends on a group of four.
    body = first_line + b"\r\n" + b"QUJDQUJD\r\n" * 40
    raw, part = body_part(body)
    whole, whole_defects, pieces, piece_defects = both(raw, part, 4)
    assert whole in (b"A", b"AB")
    assert b"".join(pieces) == whole and piece_defects == whole_defects


def test_a_parsed_large_attachment_hashes_and_streams_as_its_payload() -> None:
    data = random.Random(2).randbytes(2_500_000)
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    raw = (b"From: a@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Type: text/plain\r\n\r\nSee attached.\r\n--B\r\n"
           b"Content-Type: video/mp4; name=a.mp4\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + encoded + b"\r\n--B--\r\n")
    (attachment,) = parse_message(raw).attachments
    assert attachment.size == len(data)
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.decoded is None  # not held: a batch of parsed mails holds raw bytes only
    chunks = list(attachment.chunks())
    assert len(chunks) > 1 and b"".join(chunks) == attachment.payload == data
    # Kept for a caller that stores it at once: the same attachment, its bytes in hand.
    (kept,) = parse_message(raw, keep_decoded=True).attachments
    assert kept == attachment and kept.decoded == data
    assert list(kept.chunks()) == [data] and kept.payload == data


def test_a_small_attachment_is_kept_and_comes_as_one_chunk() -> None:
    raw = (b"From: a@example.com\r\nSubject: small\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Type: text/plain\r\n\r\nSee attached.\r\n--B\r\n"
           b"Content-Type: image/png; name=a.png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(b"tiny") + b"--B--\r\n")
    (attachment,) = parse_message(raw).attachments
    assert attachment.source == b"tiny" and list(attachment.chunks()) == [b"tiny"]
