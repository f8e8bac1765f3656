"""The parts of a parsed mail that rule conditions may look at, each under a field name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from processor.classify.text import fold, normalize
from processor.mail.model import ParsedMessage

HEADER_PREFIX = "header:"

# The field names a condition may name (plus "header:<name>" for any header), with what they hold.
FIELDS: Mapping[str, str] = MappingProxyType({
    "subject": "the subject line",
    "body": "the new text of the body (without quoted history or signature)",
    "from": "the sender's address",
    "from_domain": "the sender's domain",
    "received_by": "the monitored address that received the mail",
    "attachment_name": "each attachment's file name",
    "attachment_type": "each attachment's content type, such as image/png",
    "language": "the detected language: zh or en",
})
ADDRESS_FIELDS = frozenset({"from", "from_domain", "received_by"})


def is_known_field(name: str) -> bool:
    return name in FIELDS or (name.startswith(HEADER_PREFIX) and len(name) > len(HEADER_PREFIX))


class MessageView:
    """Field name -> values, each kept as written (NFKC) and folded for keyword matching.

    A field is normalised and folded when a condition first asks for it: the rules name a
    few fields, and a mail has dozens of headers (doing them all took a quarter of the time
    of classifying a mail)."""

    __slots__ = ("_source", "_raw", "_folded")

    def __init__(self, source: Mapping[str, tuple[str, ...]]) -> None:
        self._source = source
        self._raw: dict[str, tuple[str, ...]] = {}
        self._folded: dict[str, tuple[str, ...]] = {}

    @classmethod
    def of(cls, message: ParsedMessage, received_by: str | None = None) -> MessageView:
        sender = message.from_
        # Without the poller's word on which monitored address received it, every recipient counts.
        receivers = (received_by,) if received_by else tuple(a.address for a in message.recipients)
        values: dict[str, tuple[str, ...]] = {
            "subject": (message.subject,),
            "body": (message.new_text,),
            "from": (sender.address,) if sender else (),
            "from_domain": (sender.domain,) if sender else (),
            "received_by": receivers,
            "attachment_name": tuple(a.filename for a in message.attachments),
            "attachment_type": tuple(a.content_type for a in message.attachments),
            "language": (message.language,),
        }
        for name, header_values in message.headers.items():
            values[HEADER_PREFIX + name.lower()] = tuple(header_values)
        return cls(values)

    def values(self, field: str) -> tuple[str, ...]:
        name = field.lower() if field.startswith(HEADER_PREFIX) else field
        found = self._raw.get(name)
        if found is None:
            found = self._raw[name] = tuple(normalize(v) for v in self._source.get(name, ()))
        return found

    def folded_values(self, field: str) -> tuple[str, ...]:
        name = field.lower() if field.startswith(HEADER_PREFIX) else field
        found = self._folded.get(name)
        if found is None:
            found = self._folded[name] = tuple(fold(v) for v in self._source.get(name, ()))
        return found
