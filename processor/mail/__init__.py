"""Pure mail parsing: raw bytes in, a frozen ParsedMessage out. No I/O, no clock, never raises."""

from processor.mail.limits import ParseLimits
from processor.mail.model import Address, Attachment, ParsedMessage
from processor.mail.parse import parse_message
from processor.mail.subject import display_subject, fold_for_matching, normalize_subject

__all__ = [
    "Address",
    "Attachment",
    "display_subject",
    "ParseLimits",
    "ParsedMessage",
    "fold_for_matching",
    "normalize_subject",
    "parse_message",
]
