"""The condition kinds a rule may use; each answers `check(view) -> reason | None`.

Leaves look at one or more fields of the mail (see processor.classify.view.FIELDS) and hold
when any of those fields satisfies them; combinators join other conditions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from processor.classify.model import Condition
from processor.classify.text import fold, keyword_literal
from processor.classify.view import MessageView

_SHOWN = 60  # characters of matched text quoted in a reason


def _fields(names: tuple[str, ...]) -> str:
    return " or ".join(names)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return f'"{text[:_SHOWN]}…"' if len(text) > _SHOWN else f'"{text}"'


@dataclass(frozen=True, slots=True)
class ContainsAny:
    """Holds when a field contains at least one of the keywords."""

    fields: tuple[str, ...]
    keywords: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...] = field(compare=False, repr=False)
    # What each keyword's text must contain for its pattern to match (see keyword_literal):
    # most values contain none of them, and `in` says so where a search per keyword took
    # a fifth of the time of preparing a mail.
    literals: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "literals", tuple(keyword_literal(k) for k in self.keywords))

    def check(self, view: MessageView) -> str | None:
        for name in self.fields:
            for value in view.folded_values(name):
                for keyword, literal, pattern in zip(self.keywords, self.literals,
                                                     self.patterns, strict=True):
                    if literal in value and pattern.search(value):
                        return f'{name} contains "{keyword}"'
        return None

    def describe(self) -> str:
        return f"{_fields(self.fields)} contains any of {', '.join(self.keywords)}"


@dataclass(frozen=True, slots=True)
class ContainsAll:
    """Holds when every keyword is found (each in any of the fields)."""

    fields: tuple[str, ...]
    keywords: tuple[str, ...]
    patterns: tuple[re.Pattern[str], ...] = field(compare=False, repr=False)
    literals: tuple[str, ...] = field(init=False, compare=False, repr=False)  # as ContainsAny's

    def __post_init__(self) -> None:
        object.__setattr__(self, "literals", tuple(keyword_literal(k) for k in self.keywords))

    def check(self, view: MessageView) -> str | None:
        found = []
        for keyword, literal, pattern in zip(self.keywords, self.literals, self.patterns,
                                             strict=True):
            where = next((name for name in self.fields
                          if any(literal in v and pattern.search(v)
                                 for v in view.folded_values(name))), None)
            if where is None:
                return None
            found.append(f'{where} contains "{keyword}"')
        return " and ".join(found)

    def describe(self) -> str:
        return f"{_fields(self.fields)} contains all of {', '.join(self.keywords)}"


@dataclass(frozen=True, slots=True)
class Regex:
    """Holds when the pattern is found in a field (case-insensitive, on NFKC-normalised text)."""

    fields: tuple[str, ...]
    pattern: str
    compiled: re.Pattern[str] = field(compare=False, repr=False)

    def check(self, view: MessageView) -> str | None:
        for name in self.fields:
            for value in view.values(name):
                found = self.compiled.search(value)
                if found:
                    return f"{name} matches /{self.pattern}/ at {_quote(found.group(0))}"
        return None

    def describe(self) -> str:
        return f"{_fields(self.fields)} matches /{self.pattern}/"


@dataclass(frozen=True, slots=True)
class Equals:
    """Holds when a field's whole value equals the text (case-insensitive, outer spaces ignored)."""

    fields: tuple[str, ...]
    value: str

    def check(self, view: MessageView) -> str | None:
        wanted = fold(self.value).strip()
        for name in self.fields:
            if any(v.strip() == wanted for v in view.folded_values(name)):
                return f'{name} equals "{self.value}"'
        return None

    def describe(self) -> str:
        return f'{_fields(self.fields)} equals "{self.value}"'


@dataclass(frozen=True, slots=True)
class DomainIn:
    """Holds when an address's domain is one of the domains or a subdomain of one."""

    fields: tuple[str, ...]
    domains: tuple[str, ...]

    def check(self, view: MessageView) -> str | None:
        for name in self.fields:
            for value in view.folded_values(name):
                domain = value.strip().rpartition("@")[2].rstrip(">")
                for wanted in self.domains:
                    wanted = wanted.lower()
                    if domain == wanted or domain.endswith("." + wanted):
                        return f"{name} domain {domain} is in {wanted}"
        return None

    def describe(self) -> str:
        return f"{_fields(self.fields)} domain in {', '.join(self.domains)}"


@dataclass(frozen=True, slots=True)
class All:
    """Holds when every inner condition holds; the reason lists each of theirs."""

    conditions: tuple[Condition, ...]

    def check(self, view: MessageView) -> str | None:
        reasons = []
        for condition in self.conditions:
            reason = condition.check(view)
            if reason is None:
                return None
            reasons.append(reason)
        return " and ".join(reasons) if reasons else "always (no conditions)"

    def describe(self) -> str:
        return "all of (" + "; ".join(c.describe() for c in self.conditions) + ")"


@dataclass(frozen=True, slots=True)
class Any:
    """Holds when at least one inner condition holds; the first one that does gives the reason."""

    conditions: tuple[Condition, ...]

    def check(self, view: MessageView) -> str | None:
        for condition in self.conditions:
            reason = condition.check(view)
            if reason is not None:
                return reason
        return None

    def describe(self) -> str:
        return "any of (" + "; ".join(c.describe() for c in self.conditions) + ")"


@dataclass(frozen=True, slots=True)
class Not:
    """Holds when the inner condition does not."""

    condition: Condition

    def check(self, view: MessageView) -> str | None:
        if self.condition.check(view) is None:
            return f"not ({self.condition.describe()})"
        return None

    def describe(self) -> str:
        return f"not ({self.condition.describe()})"


ALWAYS: Condition = All(())


def always_holds(condition: Condition) -> bool:
    """True when the condition holds for every mail, judged from its shape alone."""
    if isinstance(condition, All):
        return all(always_holds(c) for c in condition.conditions)
    if isinstance(condition, Any):
        return any(always_holds(c) for c in condition.conditions)
    if isinstance(condition, Not):
        return never_holds(condition.condition)
    return False


def never_holds(condition: Condition) -> bool:
    """True when the condition can hold for no mail, judged from its shape alone."""
    if isinstance(condition, All):
        return any(never_holds(c) for c in condition.conditions)
    if isinstance(condition, Any):
        return all(never_holds(c) for c in condition.conditions)
    if isinstance(condition, Not):
        return always_holds(condition.condition)
    return False
