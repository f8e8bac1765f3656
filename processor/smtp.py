"""The outgoing edge: submit one composed message over SMTP and say whether a retry can help.

    ComplaintsError
    ├── SendTransient      connection refused or dropped, timeout, TLS trouble, 4xx: retry later
    │   └── LoginRefused   the server refused the desk's login, or wants one (530, 534, 535)
    └── SendPermanent      5xx (or the server cannot do what we require): do not retry

aiosmtplib and socket errors are translated here and nowhere else; the outbox decides, with
`next_attempt_delay`, when to try again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from processor.compose import validate_address
from processor.errors import ComplaintsError, ConfigError
from processor.oauth2 import TokenSource

log = logging.getLogger("processor.smtp")

SmtpTls = Literal["starttls", "implicit", "none"]
# RFC 4954: 530 authentication required, 534 mechanism too weak, 535 credentials invalid.
LOGIN_REQUIRED_CODES = (530, 534, 535)


class SendTransient(ComplaintsError):
    """The message was not accepted, but trying again later may work."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"temporary SMTP failure: {reason}")
        self.reason = reason


class LoginRefused(SendTransient):
    """The server refused the desk's own login, or requires one: no mail is at fault, and every
    mail would meet the same refusal until the settings are mended. A 5xx reply, but treated as
    Postfix treats it by default (smtp_sasl_auth_soft_bounce): the mail waits, never fails."""

    def __init__(self, code: int | None, reason: str) -> None:
        message = f"the SMTP server refused the desk's login ({code} {reason})"
        ComplaintsError.__init__(self, message)  # not "temporary": it lasts until mended
        self.reason, self.code = message, code


class SendPermanent(ComplaintsError):
    """The server refused the message for good; `code` is its reply code, or None."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"SMTP refused the message ({code}): {reason}" if code
                         else f"SMTP refused the message: {reason}")
        self.code = code
        self.reason = reason


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach the submission server; `envelope_sender` "" means the null sender "<>"."""

    host: str
    port: int = 587
    tls: SmtpTls = "starttls"
    user: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 30.0
    verify_certificate: bool = True
    ca_file: str = ""  # trusted in place of the system's CAs when set
    envelope_sender: str = ""
    # With it, AUTH XOAUTH2 with its token (as `user`) instead of a password (processor.oauth2).
    oauth_token: TokenSource | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tls not in ("starttls", "implicit", "none"):
            raise ConfigError(f"expected starttls, implicit or none, got {self.tls!r}",
                              key="smtp.tls")
        # Credentials and complaint text must never cross a network in clear.
        if self.tls == "none" and not _is_loopback(self.host):
            raise ConfigError("plain SMTP without TLS is allowed only for 127.0.0.1/localhost",
                              key="smtp.tls")
        if self.envelope_sender:
            validate_address(self.envelope_sender)


async def send_message(settings: SmtpSettings, message: EmailMessage,
                       recipients: Sequence[str]) -> None:
    """Submit `message` to `recipients` with the configured envelope sender, or raise Send*."""
    await send_raw(settings, message.as_bytes(), recipients,
                   message_id=str(message.get("Message-ID", "")))


async def send_raw(settings: SmtpSettings, data: bytes, recipients: Sequence[str], *,
                   envelope_sender: str | None = None, message_id: str = "") -> None:
    """Submit already-serialised bytes (what the outbox stores), or raise Send*.

    If the server accepts some recipients and refuses others we return normally and log the
    refusals: raising would make the outbox send the message again to those who already have it.
    """
    rcpts = [validate_address(r) for r in recipients]
    if not rcpts:
        raise SendPermanent(None, "no recipients")
    chosen = settings.envelope_sender if envelope_sender is None else envelope_sender
    sender = chosen and validate_address(chosen)
    source = settings.oauth_token

    async def token() -> str:
        assert source is not None
        try:
            return await asyncio.to_thread(source)
        except ComplaintsError as exc:  # the helper failed: try again later
            raise SendTransient(f"{exc} (hint: {exc.hint})" if exc.hint else str(exc)) from None

    client = aiosmtplib.SMTP(
        hostname=settings.host, port=settings.port, timeout=settings.timeout,
        use_tls=settings.tls == "implicit", start_tls=settings.tls == "starttls",
        validate_certs=settings.verify_certificate, cert_bundle=settings.ca_file or None,
        username=settings.user or None,
        password=settings.password if settings.user and source is None else None,
        oauth_token_generator=token if source is not None else None,
    )
    try:
        async with client:
            refused, _reply = await client.sendmail(sender, rcpts, data)
    except aiosmtplib.SMTPAuthenticationError as exc:
        if source is None:
            raise LoginRefused(exc.code, exc.message) from None
        # A token expires, or is revoked, while the helper still has a good one to give; or
        # the grant was withdrawn, and every mail would be refused as with a wrong password.
        source.forget()
        raise LoginRefused(exc.code, f"{exc.message}; the access token was refused, the next "
                                     "attempt asks the token command again") from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        reason = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        if all(c in LOGIN_REQUIRED_CODES for c in codes):
            raise LoginRefused(codes[0], reason) from None
        if all(500 <= c < 600 for c in codes):
            raise SendPermanent(codes[0], reason) from None
        raise SendTransient(reason) from None
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code in LOGIN_REQUIRED_CODES:
            raise LoginRefused(exc.code, exc.message) from None
        if 500 <= exc.code < 600:
            raise SendPermanent(exc.code, exc.message) from None
        raise SendTransient(f"{exc.code} {exc.message}") from None
    except aiosmtplib.SMTPNotSupported as exc:
        # e.g. STARTTLS required by our settings but not offered: retrying changes nothing.
        raise SendPermanent(None, str(exc)) from None
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
        raise SendTransient(f"{type(exc).__name__}: {exc}") from None
    if refused:
        log.warning("%s: some recipients refused: %s", message_id,
                    "; ".join(f"{r}: {resp.code} {resp.message}" for r, resp in refused.items()))
    log.info("%s: submitted to %s:%s for %d recipient(s)", message_id, settings.host,
             settings.port, len(rcpts) - len(refused))


def next_attempt_delay(attempt: int, base: float = 30, cap: float = 3600,
                       rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1, 2, ...): full jitter.

    Uniform between 0 and min(cap, base * 2**(attempt-1)), so many mails that failed together
    (the relay was down) do not all come back at the same second.
    """
    ceiling = min(cap, base * 2 ** min(max(attempt - 1, 0), 62))
    return rng() * ceiling
