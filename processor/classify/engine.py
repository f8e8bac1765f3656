"""Walk the rules in order over one mail and decide its classification, keeping a reason per hit.

How matched rules combine (the README's rule-format section says the same):
  category, team, assignee, template  the first matched rule that sets one wins;
  priority                            only ever rises (from the category's default);
  sla_hours                           only ever shrinks (from the category's default);
  tags                                accumulate, in rule order, without repeats;
  ignore                              any matched rule may set it;
  stop                                no later rule runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from processor.classify.details import extract_details
from processor.classify.model import (
    NEEDS,
    PRIORITIES,
    Actions,
    Classification,
    Rule,
    RuleMatch,
    RuleSet,
)
from processor.classify.view import MessageView
from processor.mail.model import ParsedMessage

_SINGLE = ("category", "team", "assignee", "template")


@dataclass(frozen=True, slots=True)
class _Decision:
    """What the rules walked so far have decided, and which rule set each single value."""

    chosen: dict[str, tuple[str, str]] = field(default_factory=dict)  # action -> (value, rule)
    priorities: tuple[str, ...] = ()
    slas: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    ignored: bool = False


def classify(message: ParsedMessage, rules: RuleSet,
             received_by: str | None = None) -> Classification:
    """The classification of one mail under one rule set; pure: same mail, same answer."""
    view = MessageView.of(message, received_by)
    decision = _Decision()
    matched: list[RuleMatch] = []
    for rule in rules.rules:
        reason = rule.when.check(view)
        if reason is None:
            continue
        decision, notes = _apply(decision, rule)
        matched.append(RuleMatch(rule.name, rule.file, (reason, *notes)))
        if rule.then.stop:
            break
    return _conclude(message, rules, decision, tuple(matched))


def _apply(decision: _Decision, rule: Rule) -> tuple[_Decision, list[str]]:
    """The decision after one matched rule, and notes on what it changed or could not change."""
    then: Actions = rule.then
    chosen = dict(decision.chosen)
    notes = []
    for action in _SINGLE:
        value = getattr(then, action)
        if value is None:
            continue
        if action in chosen:
            earlier_value, earlier_rule = chosen[action]
            if earlier_value != value:
                notes.append(f"{action} {value} not applied: already {earlier_value} "
                             f"from rule '{earlier_rule}'")
            continue
        chosen[action] = (value, rule.name)
        notes.append(f"sets {action} {value}")
    if then.priority:
        notes.append(f"raises priority to at least {then.priority}")
    if then.sla_hours:
        notes.append(f"response within at most {then.sla_hours} h")
    new_tags = tuple(t for t in then.tags if t not in decision.tags)
    if new_tags:
        notes.append("adds tags " + ", ".join(new_tags))
    if then.ignore:
        notes.append("ignore: keep the mail, open no case, send nothing")
    if then.stop:
        notes.append("stop: no later rule runs")
    return replace(
        decision,
        chosen=chosen,
        priorities=decision.priorities + ((then.priority,) if then.priority else ()),
        slas=decision.slas + ((then.sla_hours,) if then.sla_hours else ()),
        tags=decision.tags + new_tags,
        ignored=decision.ignored or then.ignore,
    ), notes


def _conclude(message: ParsedMessage, rules: RuleSet, decision: _Decision,
              matched: tuple[RuleMatch, ...]) -> Classification:
    def chosen(action: str) -> str | None:
        return decision.chosen[action][0] if action in decision.chosen else None

    # A rule set without a catch-all rule still gives every mail a category: the default one.
    name = chosen("category") or rules.default_category
    category = rules.categories[name]
    priority = max((category.priority, *decision.priorities), key=PRIORITIES.index)
    details = extract_details(message)
    return Classification(
        category=name,
        priority=priority,
        sla_hours=min((category.sla_hours, *decision.slas)),
        tags=decision.tags,
        team=chosen("team"),
        assignee=chosen("assignee"),
        ack_template=chosen("template") or rules.default_template,
        ignored=decision.ignored,
        matched=matched,
        details=details,
        missing=tuple(need for need in category.needs if not getattr(details, NEEDS[need])),
    )
