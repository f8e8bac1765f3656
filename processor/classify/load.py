"""Read rules/*.toml from the built-in and configured directories and validate every part of them.

Every problem is collected (never just the first), each as file:line and what is wrong, so
`complaints rules check` can list them all and `load_rules` can refuse with all of them.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import processor
from processor.classify import conditions as c
from processor.classify.model import (
    DEFAULT_TEMPLATE,
    LANGUAGES,
    NEEDS,
    PRIORITIES,
    Actions,
    Category,
    Condition,
    Rule,
    RuleProblem,
    RuleSet,
)
from processor.classify.source import Source, Span
from processor.classify.text import first_character_guard, keyword_pattern
from processor.classify.view import FIELDS, is_known_field
from processor.errors import RulesError

CATEGORIES_FILE = "categories.toml"

RULE_KEYS = ("name", "order", "description", "when", "then")
ACTION_KEYS = ("category", "priority", "sla_hours", "tags", "team", "assignee", "template",
               "ignore", "stop")
OPERATORS = ("contains_any", "contains_all", "regex", "equals", "domain_in")
COMBINATORS = ("all", "any", "not")
CATEGORIES_KEYS = ("default_category", "default_template", "category")
CATEGORY_KEYS = ("label", "priority", "sla_hours", "needs")

_RULE_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_CATEGORY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def builtin_rules_dir() -> Path:
    """The rules/ directory shipped at the top of the repository."""
    return Path(processor.__file__).resolve().parent.parent / "rules"


def load_rules(directories: Sequence[Path],
               known_templates: Collection[str] | None = None) -> RuleSet:
    """The validated rule set, or RulesError listing every problem found."""
    rules, problems = read_rules(directories, known_templates)
    if problems or rules is None:
        raise RulesError([str(p) for p in problems])
    return rules


def check_rules(directories: Sequence[Path],
                known_templates: Collection[str] | None = None) -> list[RuleProblem]:
    """Every problem in the rule files, in file and line order (empty when all is well)."""
    return read_rules(directories, known_templates)[1]


def rule_files(directories: Sequence[Path]) -> dict[str, Path]:
    """File name -> path; a file in a later directory replaces the same name in an earlier one."""
    chosen: dict[str, Path] = {}
    for directory in directories:
        for path in sorted(Path(directory).glob("*.toml")):
            chosen[path.name] = path
    return chosen


def read_rules(directories: Sequence[Path], known_templates: Collection[str] | None = None
               ) -> tuple[RuleSet | None, list[RuleProblem]]:
    """The rule set as read and every problem found; use the set only when there are none."""
    problems: list[RuleProblem] = []
    for directory in directories:
        if not Path(directory).is_dir():
            problems.append(RuleProblem(str(directory), 0, "rules directory does not exist"))
    files = rule_files(directories)
    categories_path = files.pop(CATEGORIES_FILE, None)
    if categories_path is None:
        problems.append(RuleProblem(str(directories[-1]) if directories else "rules", 0,
                                    f"no {CATEGORIES_FILE}: the categories must be defined"))
        return None, problems
    categories, declared, defaults = _read_categories(categories_path, problems)
    templates = None if known_templates is None else set(known_templates) | {DEFAULT_TEMPLATE}
    known = _Known(tuple(declared), None if templates is None else frozenset(templates))
    rules: list[Rule] = []
    sources: dict[str, Source] = {}
    for path in files.values():
        rules.extend(_read_rule_file(path, known, sources, problems))
    rules.sort(key=lambda r: (r.order, Path(r.file).name, r.line))
    _check_names(rules, sources, problems)
    _check_default_template(defaults, templates, categories_path, problems)
    _check_reachable(rules, sources, problems)
    problems.sort(key=lambda p: (p.file, p.line))
    ruleset = RuleSet(
        rules=tuple(rules),
        categories=MappingProxyType(categories),
        default_category=defaults.get("default_category", "other"),
        default_template=defaults.get("default_template", DEFAULT_TEMPLATE),
        files=(categories_path, *files.values()),
    )
    return ruleset, problems


# --- categories.toml -------------------------------------------------------------------------

def _read_categories(path: Path, problems: list[RuleProblem]
                     ) -> tuple[dict[str, Category], list[str], dict[str, str]]:
    """The valid categories, the names of all declared ones, and the file's defaults."""
    source, data, problem = Source.read(path)
    if data is None:
        problems.append(problem)  # type: ignore[arg-type]
        return {}, [], {}
    whole = source.whole()
    for key in data:
        if key not in CATEGORIES_KEYS:
            problems.append(whole.problem(
                f"unknown key '{key}'; expected {', '.join(CATEGORIES_KEYS)}", key))
    defaults = {k: data[k] for k in ("default_category", "default_template")
                if isinstance(data.get(k), str)}
    tables = data.get("category", {})
    if not isinstance(tables, dict) or not tables:
        problems.append(whole.problem("expected [category.<name>] tables", "category"))
        return {}, [], defaults
    categories = {}
    for name, table in tables.items():
        span = source.section_span("category", name)
        category = _category(name, table, span, problems)
        if category is not None:
            categories[name] = category
    default = defaults.get("default_category")
    if default is None:
        problems.append(whole.problem("default_category is missing: name the category used "
                                      "when no rule sets one", "default_category"))
    elif default not in tables:
        problems.append(whole.problem(f"default_category '{default}' is not a defined category",
                                      "default_category"))
    return categories, list(tables), defaults


def _category(name: str, table: Any, span: Span, problems: list[RuleProblem]) -> Category | None:
    before = len(problems)
    if not _CATEGORY_NAME.match(name):
        problems.append(span.problem(f"category name '{name}' must be lower_snake_case"))
    if not isinstance(table, dict):
        problems.append(span.problem(f"category.{name} must be a table"))
        return None
    for key in table:
        if key not in CATEGORY_KEYS:
            problems.append(span.problem(
                f"unknown key '{key}' in category.{name}; expected {', '.join(CATEGORY_KEYS)}",
                key))
    labels = table.get("label")
    if not isinstance(labels, dict) or any(not isinstance(labels.get(lang), str)
                                           for lang in LANGUAGES):
        problems.append(span.problem(
            f"category.{name}.label must give plain words for each of {', '.join(LANGUAGES)}, "
            'like label = { zh = "技术故障", en = "technical fault" }', "label"))
    priority = table.get("priority")
    if priority not in PRIORITIES:
        problems.append(span.problem(
            f"category.{name}.priority must be one of {', '.join(PRIORITIES)}", "priority"))
    sla = table.get("sla_hours")
    if not _positive_int(sla):
        problems.append(span.problem(
            f"category.{name}.sla_hours must be a whole number of hours above 0", "sla_hours"))
    needs = table.get("needs", [])
    if not _strings(needs) or any(n not in NEEDS for n in needs):
        problems.append(span.problem(
            f"category.{name}.needs must list details among {', '.join(NEEDS)}", "needs"))
    if len(problems) > before:
        return None
    # Validated above, so the raw values have the right types here.
    return Category(name, MappingProxyType(dict(table["label"])), table["priority"],
                    table["sla_hours"], tuple(needs))


# --- rule files ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Known:
    """What a rule may refer to: declared categories, and templates (None: not checked)."""

    categories: tuple[str, ...]
    templates: frozenset[str] | None


def _read_rule_file(path: Path, known: _Known, sources: dict[str, Source],
                    problems: list[RuleProblem]) -> list[Rule]:
    source, data, problem = Source.read(path)
    sources[source.name] = source
    if data is None:
        problems.append(problem)  # type: ignore[arg-type]
        return []
    whole = source.whole()
    for key in data:
        if key != "rule":
            problems.append(whole.problem(f"unknown key '{key}'; a rule file holds [[rule]] "
                                          "tables only", key))
    tables = data.get("rule", [])
    if not isinstance(tables, list):
        problems.append(whole.problem("'rule' must be an array of tables: write [[rule]]", "rule"))
        return []
    spans = source.table_spans("[[rule]]")
    if len(spans) != len(tables):  # written as an inline array: fall back to whole-file search
        spans = [whole] * len(tables)
    rules = []
    for table, span in zip(tables, spans, strict=True):
        rule = _rule(table, span, known, problems)
        if rule is not None:
            rules.append(rule)
    return rules


def _rule(table: dict[str, Any], span: Span, known: _Known,
          problems: list[RuleProblem]) -> Rule | None:
    before = len(problems)
    name = table.get("name")
    label = f"rule '{name}'" if isinstance(name, str) else "rule"
    for key in table:
        if key not in RULE_KEYS:
            problems.append(span.problem(
                f"unknown key '{key}' in {label}; expected {', '.join(RULE_KEYS)}", key))
    if not isinstance(name, str) or not _RULE_NAME.match(name):
        problems.append(span.problem(
            "every rule needs a kebab-case name, like name = \"dropped-calls\"", "name"))
    order = table.get("order")
    if not isinstance(order, int) or isinstance(order, bool):
        problems.append(span.problem(f"{label} needs a whole-number order, like order = 100",
                                     "order"))
    description = table.get("description", "")
    if not isinstance(description, str):
        problems.append(span.problem(f"{label}: description must be text", "description"))
    when = _condition(table.get("when", {}), span, f"{label} when", problems)
    then = _actions(table.get("then"), span, label, known, problems)
    if len(problems) > before or when is None or then is None:
        return None
    return Rule(table["name"], table["order"], span.source.name, span.first, when, then,
                description)


def _condition(raw: Any, span: Span, where: str, problems: list[RuleProblem]) -> Condition | None:
    if not isinstance(raw, dict):
        problems.append(span.problem(f"{where}: a condition must be a table", "when"))
        return None
    if not raw:
        return c.ALWAYS
    combinators = [key for key in raw if key in COMBINATORS]
    if combinators:
        key = combinators[0]
        if len(raw) > 1:
            others = ", ".join(k for k in raw if k != key)
            problems.append(span.problem(
                f"{where}: '{key}' cannot share a table with {others}; put them inside it", key))
            return None
        return _combinator(key, raw[key], span, where, problems)
    return _leaf(raw, span, where, problems)


def _combinator(key: str, value: Any, span: Span, where: str,
                problems: list[RuleProblem]) -> Condition | None:
    if key == "not":
        negated = _condition(value, span, f"{where} not", problems)
        return None if negated is None else c.Not(negated)
    if not isinstance(value, list):
        problems.append(span.problem(f"{where}: '{key}' must be a list of conditions", key))
        return None
    parts = [_condition(v, span, f"{where} {key}[{i}]", problems) for i, v in enumerate(value)]
    valid = tuple(p for p in parts if p is not None)
    if len(valid) < len(parts):
        return None
    return c.All(valid) if key == "all" else c.Any(valid)


def _leaf(raw: dict[str, Any], span: Span, where: str,
          problems: list[RuleProblem]) -> Condition | None:
    before = len(problems)
    unknown = [key for key in raw if key != "field" and key not in OPERATORS]
    for key in unknown:
        problems.append(span.problem(
            f"{where}: unknown key '{key}'; a condition has 'field' and one of "
            f"{', '.join(OPERATORS)}, or is one of {', '.join(COMBINATORS)}", key))
    fields = raw.get("field")
    fields = [fields] if isinstance(fields, str) else fields
    if not _strings(fields) or not fields:
        problems.append(span.problem(f"{where}: 'field' must name one field or a list of them",
                                     "field"))
        return None
    for name in fields:
        if not is_known_field(name):
            problems.append(span.problem(
                f"{where}: unknown field '{name}'; known: {', '.join(FIELDS)}, header:<name>",
                "field", name))
    operators = [key for key in raw if key in OPERATORS]
    if len(operators) != 1 and not unknown:  # a misspelt operator is already reported
        problems.append(span.problem(
            f"{where}: give exactly one of {', '.join(OPERATORS)} (found {len(operators)})",
            operators[1] if len(operators) > 1 else "field"))
        return None
    if len(problems) > before or len(operators) != 1:
        return None
    return _operator(operators[0], raw[operators[0]], tuple(fields), span, where, problems)


def _operator(op: str, value: Any, fields: tuple[str, ...], span: Span, where: str,
              problems: list[RuleProblem]) -> Condition | None:
    if op in ("contains_any", "contains_all", "domain_in"):
        if not _strings(value) or not value or any(not v.strip() for v in value):
            problems.append(span.problem(f"{where}: {op} must be a non-empty list of words", op))
            return None
        words = tuple(value)
        if op == "domain_in":
            return c.DomainIn(fields, tuple(w.strip().lower().lstrip("@") for w in words))
        kind = c.ContainsAny if op == "contains_any" else c.ContainsAll
        return kind(fields, words, tuple(keyword_pattern(w) for w in words))
    if not isinstance(value, str):
        problems.append(span.problem(f"{where}: {op} must be text", op))
        return None
    if op == "equals":
        return c.Equals(fields, value)
    try:
        compiled = re.compile(value, re.IGNORECASE)
    except re.error as exc:
        problems.append(span.problem(
            f"{where}: bad regex /{value}/: {exc.msg} at position {exc.pos}", "regex", value))
        return None
    # Searched with the same lookahead as the detail patterns: the same matches, and the
    # long alternations of the shipped rules found in about half the time.
    return c.Regex(fields, value, first_character_guard(compiled))


def _actions(raw: Any, span: Span, label: str, known: _Known,
             problems: list[RuleProblem]) -> Actions | None:
    if not isinstance(raw, dict) or not raw:
        problems.append(span.problem(f"{label} does nothing: add a 'then' table with at least "
                                     "one action", "then"))
        return None
    before = len(problems)
    for key in raw:
        if key not in ACTION_KEYS:
            problems.append(span.problem(
                f"unknown action '{key}' in {label}; expected {', '.join(ACTION_KEYS)}", key))
    for key in ("category", "team", "assignee", "template"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            problems.append(span.problem(f"{label}: {key} must be non-empty text", key))
    if "priority" in raw and raw["priority"] not in PRIORITIES:
        problems.append(span.problem(
            f"{label}: priority must be one of {', '.join(PRIORITIES)}", "priority"))
    if "sla_hours" in raw and not _positive_int(raw["sla_hours"]):
        problems.append(span.problem(
            f"{label}: sla_hours must be a whole number of hours above 0", "sla_hours"))
    tags = raw.get("tags", [])
    if not _strings(tags) or any(not _TAG.match(t) for t in tags):
        problems.append(span.problem(
            f"{label}: tags must be a list of lower-case words like \"regulator\"", "tags"))
    for key in ("ignore", "stop"):
        if key in raw and not isinstance(raw[key], bool):
            problems.append(span.problem(f"{label}: {key} must be true or false", key))
    category, template = raw.get("category"), raw.get("template")
    # Declared but invalid categories are reported in categories.toml, not again here.
    if isinstance(category, str) and known.categories and category not in known.categories:
        problems.append(span.problem(
            f"{label}: unknown category '{category}'; defined in {CATEGORIES_FILE}: "
            f"{', '.join(known.categories)}", "category", category))
    if isinstance(template, str) and known.templates is not None \
            and template not in known.templates:
        problems.append(span.problem(
            f"{label}: unknown template '{template}'; known: "
            f"{', '.join(sorted(known.templates))}", "template", template))
    if len(problems) > before:
        return None
    single = {k: v for k, v in raw.items() if k != "tags"}
    return Actions(tags=tuple(tags), **single)


# --- checks across files ---------------------------------------------------------------------

def _check_names(rules: list[Rule], sources: Mapping[str, Source],
                 problems: list[RuleProblem]) -> None:
    seen: dict[str, Rule] = {}
    for rule in rules:
        if rule.name in seen:
            first = seen[rule.name]
            problems.append(_span_of(rule, sources).problem(
                f"rule name '{rule.name}' is already used at {first.file}:{first.line}", "name"))
        seen.setdefault(rule.name, rule)


def _check_default_template(defaults: Mapping[str, str], templates: set[str] | None,
                            categories_path: Path, problems: list[RuleProblem]) -> None:
    default_template = defaults.get("default_template")
    if default_template and templates is not None and default_template not in templates:
        whole = Source.read(categories_path)[0].whole()
        problems.append(whole.problem(
            f"unknown template '{default_template}'; known: {', '.join(sorted(templates))}",
            "default_template"))


def _check_reachable(rules: list[Rule], sources: Mapping[str, Source],
                     problems: list[RuleProblem]) -> None:
    stoppers: list[Rule] = []
    for rule in rules:
        span = _span_of(rule, sources)
        blocker = next((s for s in stoppers
                        if c.always_holds(s.when) or s.when == rule.when), None)
        if blocker is not None:
            why = "always matches" if c.always_holds(blocker.when) else "has the same condition"
            problems.append(span.problem(
                f"rule '{rule.name}' is unreachable: rule '{blocker.name}' "
                f"({blocker.file}:{blocker.line}) runs first, {why} and stops", "name"))
        elif c.never_holds(rule.when):
            problems.append(span.problem(
                f"rule '{rule.name}' is unreachable: its condition can never hold "
                "(an empty 'any' list, or 'not' of something always true)", "when"))
        if rule.then.stop:
            stoppers.append(rule)


def _span_of(rule: Rule, sources: Mapping[str, Source]) -> Span:
    source = sources[rule.file]
    spans = [s for s in source.table_spans("[[rule]]") if s.first == rule.line]
    return spans[0] if spans else source.whole()


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
