"""Signed per-case reply addresses (`complaints+C-000123.<sig>@example.com`) and their checking.

Staff notifications carry such an address in Reply-To, so a staff member's ordinary "Reply"
names the case and proves that whoever answers received our mail for that case. The
signature is an HMAC with a server secret; during a rotation the previous secret is still
accepted, and `ReplyTarget.secret_index` says which one matched so the rotation can be watched.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from processor.errors import ComplaintsError, ConfigError

SIGNATURE_CHARS = 16  # 16 base32 characters = 80 bits: far beyond guessing, short enough to read
MAX_LOCAL_PART = 64  # RFC 5321
# Domain separation: this secret may one day sign something else, which must never verify here.
_PURPOSE = b"complaints-reply-address-v1"
# Case references are letters, digits and "-" (C-000123); "." and "+" separate the parts.
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")
_SIGNATURE = re.compile(rf"^[a-z2-7]{{{SIGNATURE_CHARS}}}$")


class InvalidReplyAddress(ComplaintsError):
    """A reply address cannot be made from this base address or case reference (a bug)."""


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """A valid signed reply address, taken apart.

    `case_ref` is as configured (`C-000123`) even when a mail server lower-cased the address.
    `secret_index` is 0 for the current secret and 1, 2, ... for previous ones.
    """

    case_ref: str
    base_address: str
    secret_index: int

    @property
    def signed_with_previous_secret(self) -> bool:
        return self.secret_index > 0


def _signature(secret: bytes, case_ref: str, base_address: str) -> str:
    # Lower-cased inputs and a lower-case alphabet: some servers fold the local part's case,
    # and the address must still verify after that.
    message = b"\0".join((_PURPOSE, case_ref.lower().encode("ascii"),
                          base_address.lower().encode("utf-8")))
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:SIGNATURE_CHARS]


def _split(address: str) -> tuple[str, str]:
    local, at, domain = address.strip().strip("<>").rpartition("@")
    return (local, domain) if at else ("", "")


def make_reply_address(base_address: str, case_ref: str, secret: bytes) -> str:
    """`local+<REF>.<sig>@domain` for the monitored `base_address` and one case."""
    if not secret:
        raise ConfigError("the reply-address secret is empty", key="staff.secret_env",
                          hint="set the secret (environment variable or file) before sending "
                               "staff notifications")
    local, domain = _split(base_address)
    if not local or not domain or "+" in local:
        raise InvalidReplyAddress(f"not a plain base address for reply addresses: "
                                  f"{base_address!r}")
    if not _REF.match(case_ref):
        raise InvalidReplyAddress(f"not a case reference usable in an address: {case_ref!r}")
    base = f"{local}@{domain}"
    tagged_local = f"{local}+{case_ref}.{_signature(secret, case_ref, base)}"
    if len(tagged_local) > MAX_LOCAL_PART:
        raise InvalidReplyAddress(f"reply address for {base!r} would be longer than "
                                  f"{MAX_LOCAL_PART} characters before the @")
    return f"{tagged_local}@{domain}"


def parse_reply_address(address: str, secrets: Sequence[bytes],
                        case_prefix: str = "C-") -> ReplyTarget | None:
    """The case an address is signed for, or None when it is not a validly signed address.

    `secrets` is the current secret first, then previous ones; empty secrets are ignored so
    an unset variable can never make every signature "valid".
    """
    local, domain = _split(address)
    base_local, plus, detail = local.partition("+")
    case_ref, dot, signature = detail.rpartition(".")
    if not (plus and dot and domain and _REF.match(case_ref)):
        return None
    signature = signature.lower()
    if not _SIGNATURE.match(signature):
        return None
    base = f"{base_local}@{domain}"
    for index, secret in enumerate(secrets):
        if secret and hmac.compare_digest(_signature(secret, case_ref, base), signature):
            return ReplyTarget(_restore_prefix(case_ref, case_prefix), base.lower(), index)
    return None


def _restore_prefix(case_ref: str, case_prefix: str) -> str:
    if case_prefix and case_ref.lower().startswith(case_prefix.lower()):
        return case_prefix + case_ref[len(case_prefix):]
    return case_ref


def find_reply_target(recipients: Iterable[str], base_addresses: Iterable[str],
                      secrets: Sequence[bytes], case_prefix: str = "C-") -> ReplyTarget | None:
    """The first validly signed address among the recipients that belongs to one of ours.

    `recipients` are To/Cc addresses and raw Delivered-To / X-Original-To values; a value
    may hold several addresses ("a@x, B <b@y>"). Only addresses whose base is one of
    `base_addresses` count: the signature covers the base, but checking it here also keeps a
    third party's plus-addresses out of our logs.
    """
    ours = {address.strip().lower() for address in base_addresses}
    for value in recipients:
        for _name, address in email.utils.getaddresses([value]):
            local, domain = _split(address)
            if f"{local.partition('+')[0]}@{domain}".lower() not in ours:
                continue
            target = parse_reply_address(address, secrets, case_prefix)
            if target is not None:
                return target
    return None
