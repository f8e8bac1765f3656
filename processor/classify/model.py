"""Typed values of classification: rules, categories, a rule set, the decision and its reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from processor.classify.view import MessageView

# Lowest first: a rule may only raise the priority, so the order of this tuple is the rule.
PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")

DEFAULT_TEMPLATE = "ack-default"
LANGUAGES: tuple[str, ...] = ("zh", "en")


class Condition(Protocol):
    """One condition kind: `check` gives a human-readable reason when it holds, else None."""

    def check(self, view: MessageView) -> str | None: ...

    def describe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong in a rule file, located well enough for a person to fix it."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class Actions:
    """What a matching rule does; None / empty means the rule leaves that part alone."""

    category: str | None = None
    priority: str | None = None
    sla_hours: int | None = None
    tags: tuple[str, ...] = ()
    team: str | None = None
    assignee: str | None = None
    template: str | None = None
    ignore: bool = False
    stop: bool = False

    def is_empty(self) -> bool:
        return self == Actions()


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    order: int
    file: str
    line: int
    when: Condition
    then: Actions
    description: str = ""


@dataclass(frozen=True, slots=True)
class Category:
    """A category as support staff see it: plain-words labels, and its default urgency."""

    name: str
    labels: Mapping[str, str]
    priority: str
    sla_hours: int
    needs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Validated rules in the order they are walked, with the categories they may set."""

    rules: tuple[Rule, ...]
    categories: Mapping[str, Category]
    default_category: str
    default_template: str = DEFAULT_TEMPLATE
    files: tuple[Path, ...] = ()

    def category_label(self, name: str, language: str) -> str:
        """The words used for a category in a mail to the complainant (falls back to English)."""
        category = self.categories.get(name)
        if category is None:
            return name.replace("_", " ")
        return category.labels.get(language) or category.labels.get("en") or name


@dataclass(frozen=True, slots=True)
class Details:
    """What a complaint team needs to act, pulled out of the mail as the complainant wrote it."""

    times: tuple[str, ...] = ()
    frequency: tuple[str, ...] = ()
    scenario: tuple[str, ...] = ()
    impact: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()
    phone_numbers: tuple[str, ...] = ()
    order_numbers: tuple[str, ...] = ()
    expected_resolution: tuple[str, ...] = ()
    what_was_said: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name)) for name in DETAIL_NAMES}


DETAIL_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Details))

# What a team may need (categories.toml `needs`, and `missing` in a classification) -> the
# Details field that holds it. The names are singular, as the acknowledgement templates ask them.
NEEDS: Mapping[str, str] = MappingProxyType({
    "time": "times",
    "frequency": "frequency",
    "scenario": "scenario",
    "impact": "impact",
    "agent_id": "agent_ids",
    "phone_number": "phone_numbers",
    "order_number": "order_numbers",
    "expected_resolution": "expected_resolution",
    "what_was_said": "what_was_said",
})


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """A rule that matched, and why (the condition that held, then notes on what it changed)."""

    rule: str
    file: str
    reasons: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"rule": self.rule, "file": self.file, "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class Classification:
    category: str
    priority: str
    sla_hours: int
    tags: tuple[str, ...]
    team: str | None
    assignee: str | None
    ack_template: str
    ignored: bool
    matched: tuple[RuleMatch, ...]
    details: Details = field(default_factory=Details)
    missing: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        """The stable shape printed by `complaints rules test --json` (documented in README)."""
        return {
            "category": self.category,
            "priority": self.priority,
            "sla_hours": self.sla_hours,
            "tags": list(self.tags),
            "team": self.team,
            "assignee": self.assignee,
            "ack_template": self.ack_template,
            "ignored": self.ignored,
            "matched": [m.as_json() for m in self.matched],
            "details": self.details.as_json(),
            "missing": list(self.missing),
        }
