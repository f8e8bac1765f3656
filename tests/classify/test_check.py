"""Every documented `rules check` problem, produced by a broken rule file, located by file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.classify import (
    RuleProblem,
    builtin_rules_dir,
    check_rules,
    discover_templates,
    load_rules,
)
from processor.classify.model import DEFAULT_TEMPLATE
from processor.errors import RulesError

from .mails import CATEGORIES, rules_dir

GOOD = '''\
[[rule]]
name = "billing"
order = 10
[rule.when]
field = "subject"
contains_any = ["bill"]
[rule.then]
category = "billing"
'''


def problems(tmp_path: Path, text: str, templates=None, categories: str | None = CATEGORIES
             ) -> list[RuleProblem]:
    return check_rules([rules_dir(tmp_path, {"r.toml": text}, categories)], templates)


def only(tmp_path: Path, text: str, **kwargs) -> RuleProblem:
    found = problems(tmp_path, text, **kwargs)
    assert len(found) == 1, found
    return found[0]


def test_the_shipped_rules_are_valid_with_the_shipped_templates():
    templates_dir = builtin_rules_dir().parent / "templates"
    assert check_rules([builtin_rules_dir()], discover_templates([templates_dir])) == []


def test_a_good_file_has_no_problems(tmp_path):
    assert problems(tmp_path, GOOD) == []


def test_problem_reads_as_file_line_message():
    assert str(RuleProblem("rules/a.toml", 7, "bad")) == "rules/a.toml:7: bad"


def test_not_valid_toml_names_the_line(tmp_path):
    problem = only(tmp_path, GOOD + 'oops = = 1\n')
    assert problem.line == 9 and "not valid TOML" in problem.message
    assert problem.file.endswith("r.toml")


def test_unknown_key_in_a_rule(tmp_path):
    problem = only(tmp_path, GOOD.replace("order = 10", "order = 10\nprority = 3"))
    assert (problem.line, "unknown key 'prority'" in problem.message) == (4, True)


def test_unknown_action(tmp_path):
    problem = only(tmp_path, GOOD + 'catgory = "billing"\n')
    assert problem.line == 9 and "unknown action 'catgory'" in problem.message


def test_unknown_key_in_a_condition(tmp_path):
    problem = only(tmp_path, GOOD.replace('contains_any = ["bill"]', 'contains = ["bill"]'))
    assert problem.line == 6 and "unknown key 'contains'" in problem.message


def test_unknown_field(tmp_path):
    problem = only(tmp_path, GOOD.replace('field = "subject"', 'field = "subjet"'))
    assert problem.line == 5 and "unknown field 'subjet'" in problem.message


def test_bad_regex_names_its_line_and_what_is_wrong(tmp_path):
    problem = only(tmp_path, GOOD.replace('contains_any = ["bill"]', "regex = '(unclosed'"))
    assert problem.line == 6
    assert "bad regex /(unclosed/: missing ), unterminated subpattern" in problem.message


def test_unknown_category(tmp_path):
    problem = only(tmp_path, GOOD.replace('category = "billing"', 'category = "biling"'))
    assert problem.line == 8 and "unknown category 'biling'" in problem.message


def test_unknown_template_when_templates_are_known(tmp_path):
    text = GOOD + 'template = "ack-vip"\n'
    problem = only(tmp_path, text, templates={"ack-default"})
    assert problem.line == 9 and "unknown template 'ack-vip'" in problem.message
    assert problems(tmp_path, text) == []  # without a list of templates this is not checked


def test_unreachable_after_a_rule_that_always_matches_and_stops(tmp_path):
    stopper = '[[rule]]\nname = "stop-all"\norder = 1\n[rule.then]\nignore = true\nstop = true\n\n'
    problem = only(tmp_path, stopper + GOOD)
    assert problem.line == 9
    assert "rule 'billing' is unreachable: rule 'stop-all'" in problem.message
    assert "always matches and stops" in problem.message


def test_unreachable_after_a_stopping_rule_with_the_same_condition(tmp_path):
    first = GOOD.replace('name = "billing"', 'name = "first"').replace(
        'category = "billing"', 'category = "billing"\nstop = true')
    problem = only(tmp_path, first + "\n" + GOOD.replace("order = 10", "order = 20"))
    assert "has the same condition and stops" in problem.message


def test_unreachable_when_the_condition_can_never_hold(tmp_path):
    text = '[[rule]]\nname = "never"\norder = 1\nwhen = { any = [] }\n[rule.then]\ntags = ["x"]\n'
    assert "can never hold" in only(tmp_path, text).message


def test_duplicate_rule_names(tmp_path):
    problem = only(tmp_path, GOOD + "\n" + GOOD)
    assert problem.line == 11 and "already used at" in problem.message


@pytest.mark.parametrize("change, message", [
    (('name = "billing"', 'name = "Billing Rule"'), "kebab-case name"),
    (("order = 10", 'order = "ten"'), "whole-number order"),
    (('category = "billing"', 'category = "billing"\npriority = "critical"'),
     "priority must be one of low, normal, high, urgent"),
    (('category = "billing"', 'category = "billing"\nsla_hours = 0'), "sla_hours must be"),
    (('category = "billing"', 'category = "billing"\ntags = ["Not A Tag"]'), "tags must be"),
    (('category = "billing"', 'category = "billing"\nstop = "yes"'), "stop must be true or false"),
    (('contains_any = ["bill"]', 'contains_any = ["bill"]\nregex = "x"'), "exactly one of"),
    (('contains_any = ["bill"]', "contains_any = []"), "non-empty list"),
    (('[rule.then]\ncategory = "billing"\n', ""), "does nothing"),
])
def test_malformed_rules(tmp_path, change, message):
    assert message in only(tmp_path, GOOD.replace(*change)).message


def test_combinator_cannot_share_a_table(tmp_path):
    text = GOOD.replace('field = "subject"', 'any = []\nfield = "subject"')
    assert "cannot share a table" in only(tmp_path, text).message


def test_unknown_top_level_key_in_a_rule_file(tmp_path):
    assert "holds [[rule]] tables only" in only(tmp_path, 'version = 2\n' + GOOD).message


@pytest.mark.parametrize("change, message", [
    (('priority = "high"', 'priority = "hi"'), "category.technical_fault.priority"),
    (('label = { zh = "计费", en = "billing" }', 'label = { en = "billing" }'), "plain words"),
    (('needs = ["order_number", "expected_resolution"]', 'needs = ["order"]'), "needs must list"),
    (('default_category = "other"', 'default_category = "misc"'), "not a defined category"),
    (('sla_hours = 72', 'sla_hours = 72\ncolour = "red"'), "unknown key 'colour'"),
])
def test_broken_categories_file(tmp_path, change, message):
    found = problems(tmp_path, GOOD, categories=CATEGORIES.replace(*change))
    assert any(message in p.message and p.file.endswith("categories.toml") for p in found), found


def test_category_problem_points_at_its_line(tmp_path):
    broken = CATEGORIES.replace("sla_hours = 48", "sla_hours = -1")
    (problem,) = problems(tmp_path, GOOD, categories=broken)
    assert broken.splitlines()[problem.line - 1] == "sla_hours = -1"


def test_missing_categories_file(tmp_path):
    assert "no categories.toml" in only(tmp_path, GOOD, categories=None).message


def test_missing_directory(tmp_path):
    found = check_rules([rules_dir(tmp_path / "a", {"r.toml": GOOD}), tmp_path / "nope"])
    assert [p.message for p in found] == ["rules directory does not exist"]


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    text = GOOD.replace('"subject"', '"subjet"') + '\n' + GOOD.replace(
        'name = "billing"', 'name = "b2"').replace("category = \"billing\"", 'category = "nope"')
    assert len(problems(tmp_path, text)) == 2


def test_load_rules_refuses_with_every_problem(tmp_path):
    directory = rules_dir(tmp_path, {"r.toml": GOOD.replace('category = "billing"',
                                                            'category = "nope"')})
    with pytest.raises(RulesError) as raised:
        load_rules([directory])
    assert len(raised.value.problems) == 1
    assert "r.toml:8: rule 'billing': unknown category 'nope'" in raised.value.problems[0]


def test_a_later_directory_replaces_a_file_of_the_same_name(tmp_path):
    builtin = rules_dir(tmp_path / "builtin", {"r.toml": GOOD, "keep.toml": GOOD.replace(
        'name = "billing"', 'name = "kept"')})
    override = rules_dir(tmp_path / "override", {"r.toml": GOOD.replace(
        'name = "billing"', 'name = "replaced"')}, categories=None)
    rules = load_rules([builtin, override])
    assert sorted(r.name for r in rules.rules) == ["kept", "replaced"]


def test_discover_templates_reads_names_and_always_knows_the_default(tmp_path):
    for name in ("ack-vip.zh.txt.j2", "ack-vip.en.html.j2", "_partial.en.j2", "notes.txt"):
        (tmp_path / name).write_text("x")
    assert discover_templates([tmp_path, tmp_path / "missing"]) == {"ack-vip", DEFAULT_TEMPLATE}
