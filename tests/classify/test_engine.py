"""How matched rules combine: first category wins, priority only rises, tags add up, stop."""

from __future__ import annotations

from processor.classify import classify, load_rules

from .mails import mail, rules_dir


def rule(name: str, order: int, keyword: str | None, then: str) -> str:
    when = f'[rule.when]\nfield = ["subject", "body"]\ncontains_any = ["{keyword}"]\n' \
        if keyword else ""
    return f'[[rule]]\nname = "{name}"\norder = {order}\n{when}[rule.then]\n{then}\n\n'


def ruleset(tmp_path, *rules: str):
    return load_rules([rules_dir(tmp_path, {"r.toml": "".join(rules)})])


def test_first_rule_that_sets_the_category_wins_and_later_ones_still_add(tmp_path):
    rules = ruleset(
        tmp_path,
        rule("fault", 10, "dropped", 'category = "technical_fault"\nteam = "tech"'),
        rule("money", 20, "charged", 'category = "billing"\nteam = "billing"\ntags = ["money"]'),
    )
    result = classify(mail(body="Calls dropped and I was charged for them"), rules)
    assert (result.category, result.team, result.tags) == ("technical_fault", "tech", ("money",))
    assert result.matched[1].reasons == (
        'body contains "charged"',
        "category billing not applied: already technical_fault from rule 'fault'",
        "team billing not applied: already tech from rule 'fault'",
        "adds tags money",
    )


def test_priority_only_rises_and_sla_only_shrinks(tmp_path):
    rules = ruleset(
        tmp_path,
        rule("urgent", 10, "regulator", 'priority = "urgent"\nsla_hours = 4'),
        rule("calm", 20, "bill", 'category = "billing"\npriority = "low"\nsla_hours = 100'),
    )
    result = classify(mail(body="Your bill is wrong; I am going to the regulator"), rules)
    assert (result.category, result.priority, result.sla_hours) == ("billing", "urgent", 4)
    plain = classify(mail(body="Your bill is wrong"), rules)
    assert (plain.priority, plain.sla_hours) == ("normal", 48)  # the category's defaults


def test_tags_accumulate_in_rule_order_without_repeats(tmp_path):
    rules = ruleset(tmp_path, rule("a", 1, "x", 'tags = ["one", "two"]'),
                    rule("b", 2, "x", 'tags = ["two", "three"]'))
    assert classify(mail(body="x"), rules).tags == ("one", "two", "three")


def test_stop_means_no_later_rule_runs(tmp_path):
    rules = ruleset(tmp_path, rule("first", 1, "x", 'tags = ["a"]\nstop = true'),
                    rule("second", 2, "y", 'tags = ["b"]'))
    result = classify(mail(body="x y"), rules)
    assert [m.rule for m in result.matched] == ["first"] and result.tags == ("a",)


def test_ignore_keeps_the_walk_but_marks_the_mail(tmp_path):
    rules = ruleset(tmp_path, rule("bulk", 1, "unsubscribe", "ignore = true\nstop = true"))
    assert classify(mail(body="To unsubscribe click here"), rules).ignored
    assert not classify(mail(body="My calls drop"), rules).ignored


def test_without_a_matching_rule_the_default_category_applies(tmp_path):
    rules = ruleset(tmp_path, rule("fault", 1, "dropped", 'category = "technical_fault"'))
    result = classify(mail(body="Hello"), rules)
    assert (result.category, result.matched, result.ack_template) == ("other", (), "ack-default")


def test_rules_run_in_order_field_not_file_order(tmp_path):
    rules = ruleset(tmp_path, rule("late", 50, "x", 'category = "billing"'),
                    rule("early", 5, "x", 'category = "technical_fault"'))
    assert classify(mail(body="x"), rules).category == "technical_fault"


def test_template_and_assignee_first_wins(tmp_path):
    rules = ruleset(tmp_path, rule("a", 1, "x", 'template = "ack-vip"\nassignee = "ann"'),
                    rule("b", 2, "x", 'template = "ack-other"\nassignee = "bob"'))
    result = classify(mail(body="x"), rules)
    assert (result.ack_template, result.assignee) == ("ack-vip", "ann")


def test_missing_lists_what_the_category_needs_and_the_mail_lacks(tmp_path):
    rules = ruleset(tmp_path, rule("fault", 1, "卡顿", 'category = "technical_fault"'))
    result = classify(mail(body="系统卡顿，请尽快处理。"), rules)
    assert result.missing == ("time", "frequency", "scenario", "impact")
    body = "11月3日下午3点开始，每天通话中都卡顿，影响我们接单。请尽快处理。"
    full = classify(mail(body=body), rules)
    assert full.missing == ()


def test_as_json_has_the_documented_keys(tmp_path):
    rules = ruleset(tmp_path, rule("fault", 1, "x", 'category = "technical_fault"'))
    data = classify(mail(body="x"), rules).as_json()
    assert list(data) == ["category", "priority", "sla_hours", "tags", "team", "assignee",
                          "ack_template", "ignored", "matched", "details", "missing"]
    assert data["matched"] == [{"rule": "fault", "file": str(tmp_path / "r.toml"),
                                "reasons": ['body contains "x"', "sets category technical_fault"]}]


def test_classify_is_pure(tmp_path):
    rules = ruleset(tmp_path, rule("fault", 1, "x", 'category = "technical_fault"'))
    message = mail(body="x")
    assert classify(message, rules) == classify(message, rules)


def test_category_label_in_each_language_with_english_fallback(tmp_path):
    rules = ruleset(tmp_path, rule("fault", 1, "x", 'category = "technical_fault"'))
    assert rules.category_label("technical_fault", "zh") == "技术故障"
    assert rules.category_label("technical_fault", "fr") == "technical fault"
    assert rules.category_label("no_such", "en") == "no such"
