"""The configurable bounds that keep parsing one hostile mail cheap in time and memory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Every bound the parser enforces; crossing one is recorded as a defect, never raised.

    The defaults are generous for real complaint mail (a phone photo album, a long Outlook
    thread) yet keep a pathological message to milliseconds and a few times its own size.
    """

    max_depth: int = 20
    max_parts: int = 500
    max_headers: int = 1000
    max_header_length: int = 64 * 1024
    max_attachments: int = 200
    max_attachment_bytes: int = 50 * 1024 * 1024
    # Text bodies beyond this are cut: nobody writes a 4 MB complaint, and rules scan it all.
    max_text_chars: int = 1_000_000
    # HTML handed to the HTML-to-text converter, which is the slowest step per byte.
    max_html_bytes: int = 2 * 1024 * 1024
    # Bytes handed to charset detection; a sample decides as well as the whole.
    max_detect_bytes: int = 64 * 1024
