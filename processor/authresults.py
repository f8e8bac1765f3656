"""Read Authentication-Results headers (RFC 8601) from our trusted receiving servers only.

The question asked is narrow: did the receiving server prove that a mail claiming to come
from a staff domain really came from it? DKIM passing for that domain proves it; so does SPF
passing for it together with DMARC passing for the From domain. Anything else does not.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MethodResult:
    """One `method=result prop=value ...` item of a header; names and values lower-cased."""

    method: str
    result: str
    properties: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.properties if key == name), None)


@dataclass(frozen=True, slots=True)
class AuthResults:
    """One parsed header: who wrote it and what it says."""

    authserv_id: str
    results: tuple[MethodResult, ...]


@dataclass(frozen=True, slots=True)
class AuthVerdict:
    """`applicable` is False when no trusted server left a header: the check is then skipped."""

    applicable: bool
    passed: bool
    reasons: tuple[str, ...]

    @property
    def acceptable(self) -> bool:
        """Passed, or nothing trusted to judge by (the issue: "where the server adds ...")."""
        return self.passed or not self.applicable


def _strip_comments(value: str) -> str:
    """The value without (comments), which nest, outside "quoted strings"."""
    out: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
        elif quoted:
            out.append(char)
            quoted = char != '"'
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
            out.append(" ")  # "pass(ok)smtp.x=y" must still split into two words
        elif depth == 0:
            out.append(char)
            quoted = char == '"'
    return "".join(out)


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    parts = re.split(rf"""{re.escape(separator)}(?=(?:[^"]*"[^"]*")*[^"]*$)""", value)
    return [part.strip() for part in parts]


_WORD = re.compile(r'([^\s=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s"]+)')


def parse_auth_results(value: str) -> AuthResults | None:
    """One Authentication-Results value, or None when it has no authserv-id at all."""
    text = " ".join(_strip_comments(value).split())  # also unfolds continuation lines
    pieces = _split_outside_quotes(text, ";")
    head = pieces[0].split()
    if not head:
        return None
    results = []
    for piece in pieces[1:]:
        pairs = [(key.lower(), raw.strip('"').lower()) for key, raw in _WORD.findall(piece)]
        if not pairs:
            continue  # "none", or an empty piece after a trailing ";"
        method, result = pairs[0]
        results.append(MethodResult(method.split("/", 1)[0], result, tuple(pairs[1:])))
    return AuthResults(head[0].lower(), tuple(results))


def _domain_of(value: str | None) -> str:
    # header.i=@example.com, smtp.mailfrom=bounce@example.com, or just a domain.
    return (value or "").rpartition("@")[2].strip().rstrip(".").lower()


def _matches(found: str, domain: str) -> bool:
    # The staff domain itself or a subdomain of it (mail.example.com signs for example.com
    # staff under DMARC's relaxed alignment); never a parent or a look-alike suffix.
    return bool(found) and (found == domain or found.endswith("." + domain))


def _evaluate(header: AuthResults, domain: str) -> tuple[bool, list[str]]:
    reasons: list[str] = []
    for item in header.results:
        if item.method == "dkim" and item.result == "pass":
            signer = _domain_of(item.get("header.d") or item.get("header.i"))
            if _matches(signer, domain):
                return True, [f"dkim=pass for {signer}"]
            reasons.append(f"dkim=pass but for {signer or 'no domain'}, not {domain}")
    spf = next((i for i in header.results if i.method == "spf" and i.result == "pass"
                and _matches(_domain_of(i.get("smtp.mailfrom")), domain)),
               None)
    dmarc = next((i for i in header.results if i.method == "dmarc" and i.result == "pass"
                  and _matches(_domain_of(i.get("header.from")), domain)), None)
    if spf and dmarc:
        return True, [f"spf=pass and dmarc=pass for {domain}"]
    if spf:
        reasons.append(f"spf=pass for {domain} but no dmarc=pass for it")
    elif dmarc:
        reasons.append(f"dmarc=pass for {domain} but no spf=pass for it")
    found = ", ".join(f"{i.method}={i.result}" for i in header.results) or "no results"
    reasons.append(f"no dkim=pass, nor spf=pass with dmarc=pass, for {domain} ({found})")
    return False, reasons


def sender_authenticated(header_values: Iterable[str], trusted_ids: Collection[str],
                         domain: str) -> AuthVerdict:
    """Did our trusted receiving server authenticate mail from `domain`?

    `header_values` are the Authentication-Results values top to bottom, as received.
    Only the topmost header written by a trusted authserv-id is read. Our receiving server
    adds its header above everything the mail already carried, while anything lower was
    written earlier in transit or by the sender, who can put our server's name in a header
    of their own making. (A server should also delete such look-alikes, RFC 8601 section 5;
    taking the topmost one keeps us safe when it does not.)
    """
    trusted = {t.strip().lower() for t in trusted_ids if t.strip()}
    domain = domain.strip().rstrip(".").lower()
    if not trusted:
        return AuthVerdict(False, False, ("no trusted authserv-id configured; not checked",))
    for value in header_values:
        header = parse_auth_results(value)
        if header is None or header.authserv_id not in trusted:
            continue
        passed, reasons = _evaluate(header, domain)
        where = f"Authentication-Results from {header.authserv_id}"
        return AuthVerdict(True, passed, tuple(f"{where}: {r}" for r in reasons))
    return AuthVerdict(False, False, ("no Authentication-Results from a trusted server; "
                                      "not checked",))
