"""Pure decisions on whether a mail may be answered automatically: robot signals and rate limits.

Every signal is one row of `ROBOT_SIGNALS`; a row's detector returns a short kebab-case reason
(recorded as an event on the case) or None. Adding a signal is adding one row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from processor.compose import is_our_message_id
from processor.mail.model import ParsedMessage


@dataclass(frozen=True, slots=True)
class LoopContext:
    """What we need to know about this installation to recognise our own mail coming back."""

    monitored_addresses: frozenset[str]
    loop_header_name: str = "X-Complaints-Loop"
    installation_id: str = "complaints"
    our_message_id_domain: str = ""
    # The monitored addresses as `is_monitored` compares them, made once, not per question.
    _monitored_keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_monitored_keys",
                           frozenset(_address_key(a) for a in self.monitored_addresses))

    def is_our_message_id(self, message_id: str) -> bool:
        return bool(self.our_message_id_domain) and is_our_message_id(
            message_id, self.our_message_id_domain, self.installation_id)

    def is_monitored(self, address: str) -> bool:
        return _address_key(address) in self._monitored_keys


Detector = Callable[[ParsedMessage, LoopContext], "str | None"]


@dataclass(frozen=True, slots=True)
class RobotSignal:
    """One row of the table: a name for the README and logs, and its detector."""

    name: str
    description: str
    detect: Detector


def _address_key(address: str) -> str:
    # complaints+urgent@example.com is still our complaints@ mailbox: sub-addresses compare equal.
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _token(value: str) -> str:
    """A header value reduced to a safe kebab-case word for a reason string."""
    word = re.split(r"[;(\s]", value.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return re.sub(r"[^a-z0-9.-]", "", word)[:40]


def _values(msg: ParsedMessage, *names: str) -> Iterable[str]:
    for name in names:
        yield from msg.headers.get(name.lower(), ())


# --- detector factories: most signals are "this header is present" or "has one of these values"


def _header_present(names: tuple[str, ...], reason: str) -> Detector:
    def detect(msg: ParsedMessage, ctx: LoopContext) -> str | None:
        found = next((n for n in names if n in msg.headers), None)
        return f"{reason}:{found}" if found else None

    return detect


def _header_value_in(names: tuple[str, ...], values: frozenset[str], reason: str) -> Detector:
    def detect(msg: ParsedMessage, ctx: LoopContext) -> str | None:
        for value in _values(msg, *names):
            if _token(value) in values:
                return f"{reason}:{_token(value)}"
        return None

    return detect


# --- the detectors that need more than a header lookup


def _auto_submitted(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    # RFC 3834: any value other than "no" (auto-replied, auto-generated, auto-notified, ...).
    for value in _values(msg, "auto-submitted"):
        if _token(value) != "no":
            return f"auto-submitted:{_token(value) or 'empty'}"
    return None


def _list_header(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    found = next((n for n in msg.headers if n.startswith("list-") or n == "mailing-list"), None)
    return f"list-header:{found}" if found else None


_SUPPRESS_WORDS = frozenset({"all", "autoreply", "oof", "dr"})


def _auto_response_suppress(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    for value in _values(msg, "x-auto-response-suppress"):
        for word in re.split(r"[,\s]+", value.lower()):
            if word in _SUPPRESS_WORDS:
                return f"auto-response-suppress:{word}"
    return None


def _empty_return_path(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    # A missing Return-Path tells us nothing (not every delivery adds one); "<>" is a bounce.
    value = msg.return_path if msg.return_path is not None else msg.header("return-path")
    if value is not None and value.strip().strip("<>").strip() == "":
        return "empty-return-path"
    return None


_ROBOT_LOCAL_PARTS = frozenset({"mailer-daemon", "mailerdaemon", "postmaster", "abuse", "root"})
# "no-reply", "noreply", "no_reply", "do-not-reply", "donotreply", "noreply-billing", ...
_NO_REPLY = re.compile(r"^(?:do[-_.]?not|no)[-_.]?reply")


def _sender_local_part(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    if msg.from_ is None:
        return None
    local = msg.from_.address.rpartition("@")[0].lower().split("+", 1)[0]
    if local in _ROBOT_LOCAL_PARTS:
        return f"sender-local-part:{local}"
    if _NO_REPLY.match(local):
        return "sender-local-part:no-reply"
    return None


def _no_sender(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    return "no-sender" if msg.from_ is None or "@" not in msg.from_.address else None


_REPORT_TYPES = {"delivery-status": "delivery-report", "disposition-notification":
                 "disposition-report"}


def _delivery_report(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    content_type = (msg.header("content-type") or "").lower()
    if content_type.startswith("multipart/report"):
        match = re.search(r'report-type\s*=\s*"?([a-z-]+)', content_type)
        return _REPORT_TYPES.get(match.group(1) if match else "", "delivery-report")
    # Some bouncers send the status part on its own, or the parser lists it as an attachment.
    types = [content_type.split(";")[0].strip()] + [a.content_type for a in msg.attachments]
    for kind in types:
        if kind.startswith("message/") and kind[8:] in _REPORT_TYPES:
            return _REPORT_TYPES[kind[8:]]
    return None


def _from_our_address(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    return "from-our-address" if msg.from_ and ctx.is_monitored(msg.from_.address) else None


def _our_loop_header(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    values = tuple(_values(msg, ctx.loop_header_name))
    if not values:
        return None
    # Another installation of this software is a robot too, but say which case we are in.
    if any(v.strip().lower() == ctx.installation_id.lower() for v in values):
        return "our-loop-header"
    return "loop-header:other-installation"


# Subject prefixes that out-of-office and vacation responders put in front of the original subject.
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?[ -]?(?:reply|response|antwort)?\s*[:：]|autoreply"
    r"|out of (?:the )?office|automatische antwort|abwesenheit|absence|réponse automatique"
    r"|自动回复|自動回覆|自動回复|自动答复)",
    re.IGNORECASE)


def _refers_to_our_auto_reply(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    # A person replying to our acknowledgement references our Message-ID: that is exactly how they
    # add information, so a reference alone must never block. It blocks only together with the
    # subject marker that vacation responders add ("Auto:", "Automatic reply:", "自动回复"), which
    # catches the responders that set none of the headers the other rows look for. (Any other
    # robot signal already blocks on its own row, so requiring one here would add nothing.)
    ids = (msg.in_reply_to or "").split() + list(msg.references)
    if any(ctx.is_our_message_id(i) for i in ids) and _AUTO_REPLY_SUBJECT.match(msg.subject):
        return "refers-to-our-auto-reply"
    return None


def _not_addressed_to_us(msg: ParsedMessage, ctx: LoopContext) -> str | None:
    # Reached us by Bcc or through a list: answering would reveal the address or spam the list.
    if any(ctx.is_monitored(a.address) for a in msg.recipients):
        return None
    return "not-addressed-to-us"


ROBOT_SIGNALS: tuple[RobotSignal, ...] = (
    RobotSignal("auto-submitted", "Auto-Submitted present and not 'no'", _auto_submitted),
    RobotSignal("precedence", "Precedence/X-Precedence bulk, junk, list or auto_reply",
                _header_value_in(("precedence", "x-precedence"),
                                 frozenset({"bulk", "junk", "list", "auto-reply"}), "precedence")),
    RobotSignal("list-header", "any List-* or Mailing-List header", _list_header),
    RobotSignal("auto-response-suppress", "X-Auto-Response-Suppress All/AutoReply/OOF/DR",
                _auto_response_suppress),
    RobotSignal("autoreply-header", "a header that auto-responders add",
                _header_present(("x-loop", "x-autoreply", "x-autorespond", "x-autoresponse",
                                 "x-autoreply-from", "x-mail-autoreply", "x-autogenerated"),
                                "autoreply-header")),
    RobotSignal("failed-recipients", "X-Failed-Recipients present (a bounce)",
                _header_present(("x-failed-recipients",), "failed-recipients")),
    RobotSignal("empty-return-path", "the envelope sender is <>", _empty_return_path),
    RobotSignal("no-sender", "no usable From address", _no_sender),
    RobotSignal("sender-local-part", "mailer-daemon, postmaster, abuse, root or no-reply",
                _sender_local_part),
    RobotSignal("delivery-report", "a delivery-status or disposition report", _delivery_report),
    RobotSignal("from-our-address", "From is one of our monitored addresses", _from_our_address),
    RobotSignal("our-loop-header", "carries our own loop header", _our_loop_header),
    RobotSignal("refers-to-our-auto-reply", "an auto-reply to one of our own messages",
                _refers_to_our_auto_reply),
    RobotSignal("not-addressed-to-us", "no monitored address in To/Cc", _not_addressed_to_us),
)


def robot_signals(msg: ParsedMessage, ctx: LoopContext,
                  signals: tuple[RobotSignal, ...] = ROBOT_SIGNALS) -> tuple[str, ...]:
    """One reason per signal that fired, in table order; empty means a person may be answered."""
    return tuple(r for r in (s.detect(msg, ctx) for s in signals) if r is not None)


@dataclass(frozen=True, slots=True)
class AckLimits:
    per_sender: int = 3
    period_hours: int = 24
    global_per_minute: int = 600
    bounce_suppress_days: int = 60

    def sender_window_start(self, now: datetime) -> datetime:
        """Count a sender's acknowledgements sent at or after this instant (our clock)."""
        return now - timedelta(hours=self.period_hours)


@dataclass(frozen=True, slots=True)
class AckDecision:
    send: bool
    reasons: tuple[str, ...]


def decide_ack(robot_reasons: tuple[str, ...], sender_recent_count: int,
               global_last_minute_count: int, sender_bounced_at: datetime | None,
               now: datetime, limits: AckLimits) -> AckDecision:
    """Send only if nothing fired; otherwise every reason that applies, for the case's history.

    The counts are of acknowledgements already sent (the database supplies them, measured on our
    own clock); `now` and `sender_bounced_at` must both be timezone-aware.
    """
    reasons = list(robot_reasons)
    if sender_recent_count >= limits.per_sender:
        reasons.append(f"sender-rate-limit:{limits.per_sender}-per-{limits.period_hours}h")
    # Above the ceiling we skip rather than defer: a burst that size is a loop or an attack, and a
    # late acknowledgement is worth less than the risk of feeding it.
    if global_last_minute_count >= limits.global_per_minute:
        reasons.append(f"global-rate-limit:{limits.global_per_minute}-per-minute")
    if sender_bounced_at is not None:
        until = sender_bounced_at + timedelta(days=limits.bounce_suppress_days)
        if now < until:
            reasons.append(f"bounce-suppressed:until-{until.date().isoformat()}")
    return AckDecision(send=not reasons, reasons=tuple(reasons))
