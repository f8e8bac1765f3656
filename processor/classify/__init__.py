"""Pure classification: rules/*.toml decide a mail's category, priority and tags, with why."""

from processor.classify.details import extract_details
from processor.classify.engine import classify
from processor.classify.holder import RulesHolder
from processor.classify.load import builtin_rules_dir, check_rules, load_rules, rule_files
from processor.classify.model import (
    DETAIL_NAMES,
    NEEDS,
    PRIORITIES,
    Category,
    Classification,
    Details,
    Rule,
    RuleMatch,
    RuleProblem,
    RuleSet,
)
from processor.classify.templates import discover_templates

__all__ = [
    "DETAIL_NAMES",
    "NEEDS",
    "PRIORITIES",
    "Category",
    "Classification",
    "Details",
    "Rule",
    "RuleMatch",
    "RuleProblem",
    "RuleSet",
    "RulesHolder",
    "builtin_rules_dir",
    "check_rules",
    "classify",
    "discover_templates",
    "extract_details",
    "load_rules",
    "rule_files",
]
