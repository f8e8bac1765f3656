"""The floor: fetch every mail of a folder with imapclient in batches, parse it with the standard
`email` package, and nothing else. Run as its own process by the benchmark:

    python -m benchmarks.floor --user USER --mode {fetch,compat32,modern} [--batch 200]

Modes:
  fetch     fetching only (BODY.PEEK[] in batches of UIDs, as the desk fetches);
  compat32  + `email.message_from_bytes` with the legacy compat32 policy, reading Subject, From,
            Date and Message-ID and decoding the first text part's payload;
  modern    + `BytesParser(policy=email.policy.default)`, reading the same headers (which the
            modern policy parses into structured objects) and `get_body().get_content()`.
Attachments are located but not decoded: this is the least any desk must do per mail.
imaplib's trace is off, as in the desk (see `run`).
Prints one JSON line: {"mode", "count", "seconds"} (seconds from connect to the last mail).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from email import message_from_bytes, policy
from email.parser import BytesParser

from imapclient import IMAPClient

MODERN = BytesParser(policy=policy.default)


def parse_compat32(raw: bytes) -> None:
    message = message_from_bytes(raw)
    for name in ("subject", "from", "date", "message-id"):
        message.get(name)
    for part in message.walk():
        if part.get_content_maintype() == "text":
            part.get_payload(decode=True)
            break


def parse_modern(raw: bytes) -> None:
    message = MODERN.parsebytes(raw)
    for name in ("subject", "from", "date", "message-id"):
        message.get(name)
    body = message.get_body(("plain", "html"))
    if body is not None:
        body.get_content()  # type: ignore[attr-defined]


PARSERS = {"fetch": None, "compat32": parse_compat32, "modern": parse_modern}


def run(host: str, port: int, user: str, password: str, mode: str, batch: int) -> dict[str, object]:
    parse = PARSERS[mode]
    started = time.monotonic()
    count = 0
    client = IMAPClient(host, port, ssl=False, timeout=60)
    # The desk turns off imaplib's trace, which imapclient turns on and which formats every
    # fetched mail for a logger that drops it (processor.imap._without_imaplib_trace); the
    # floor does the same, or it would be paying for work that no desk needs to do.
    client._imap.debug = 0  # noqa: SLF001 - imapclient keeps its imaplib connection there
    try:
        client.login(user, password)
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        for start in range(0, len(uids), batch):
            fetched = client.fetch(uids[start:start + batch], [b"BODY.PEEK[]"])
            for item in fetched.values():
                raw = item[b"BODY[]"]
                if parse is not None:
                    parse(raw)
                count += 1
            del fetched
    finally:
        client.logout()
    return {"mode": mode, "count": count, "seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DOVECOT_TEST_PORT",
                                                                       "10143")))
    parser.add_argument("--user", required=True)
    parser.add_argument("--mode", choices=sorted(PARSERS), required=True)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    password = os.environ.get("DOVECOT_TEST_PASSWORD", "test-secret")
    print(json.dumps(run(args.host, args.port, args.user, password, args.mode, args.batch)))


if __name__ == "__main__":
    main()
