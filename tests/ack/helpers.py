"""Small builders shared by the acknowledgement tests: raw mails parsed by the real parser."""

from __future__ import annotations

from processor.loopguard import LoopContext
from processor.mail import ParsedMessage, parse_message

DESK = "complaints@desk.example.com"
DOMAIN = "desk.example.com"
INSTALLATION = "desk-test"
CTX = LoopContext(monitored_addresses=frozenset({DESK}), loop_header_name="X-Complaints-Loop",
                  installation_id=INSTALLATION, our_message_id_domain=DOMAIN)

BASE_HEADERS: dict[str, str] = {
    "Return-Path": "<alice@example.org>",
    "From": "Alice Wang <alice@example.org>",
    "To": f"Complaints <{DESK}>",
    "Subject": "My internet is down again",
    "Message-ID": "<m1@example.org>",
    "Date": "Mon, 03 Jun 2024 09:00:00 +0800",
    "Content-Type": "text/plain; charset=utf-8",
}


def raw_mail(overrides: dict[str, str | None] | None = None,
             extra: list[tuple[str, str]] | None = None, body: str = "Please help.\n") -> bytes:
    """A plain mail; `overrides` replaces (None removes) base headers, `extra` appends more."""
    headers = dict(BASE_HEADERS)
    for name, value in (overrides or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    lines = [f"{n}: {v}" for n, v in headers.items()] + [f"{n}: {v}" for n, v in extra or []]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def parsed(overrides: dict[str, str | None] | None = None,
           extra: list[tuple[str, str]] | None = None, body: str = "Please help.\n"
           ) -> ParsedMessage:
    return parse_message(raw_mail(overrides, extra, body))
