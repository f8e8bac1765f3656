"""Small mails and rule directories for the classification tests, built from plain values."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from processor.mail import ParsedMessage, parse_message

CATEGORIES = """\
default_category = "other"
default_template = "ack-default"

[category.technical_fault]
label = { zh = "技术故障", en = "technical fault" }
priority = "high"
sla_hours = 24
needs = ["time", "frequency", "scenario", "impact", "expected_resolution"]

[category.billing]
label = { zh = "计费", en = "billing" }
priority = "normal"
sla_hours = 48
needs = ["order_number", "expected_resolution"]

[category.other]
label = { zh = "其他", en = "other matter" }
priority = "normal"
sla_hours = 72
"""


def mail(subject: str = "hello", body: str = "text", *, sender: str = "Ann <ann@example.com>",
         to: str = "complaints@desk.example", cc: str | None = None,
         headers: dict[str, str] | None = None,
         attachments: tuple[tuple[str, str], ...] = ()) -> ParsedMessage:
    """A parsed mail made from its parts, through the real parser."""
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Message-ID"] = "<test@example.com>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body, charset="utf-8")
    for filename, content_type in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(b"data", maintype=maintype, subtype=subtype, filename=filename)
    return parse_message(message.as_bytes())


def rules_dir(root: Path, files: dict[str, str], categories: str | None = CATEGORIES) -> Path:
    """A rules directory holding `files` and (unless None) a small categories.toml."""
    root.mkdir(parents=True, exist_ok=True)
    if categories is not None:
        (root / "categories.toml").write_text(categories, encoding="utf-8")
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    return root
