"""Pure mail parsing: raw bytes in, a frozen ParsedMessage out. No I/O, no clock, never raises."""

from processor.mail.model import Address, Attachment, ParsedMessage
from processor.mail.parse import ParseLimits, parse_message

__all__ = ["Address", "Attachment", "ParseLimits", "ParsedMessage", "parse_message"]
