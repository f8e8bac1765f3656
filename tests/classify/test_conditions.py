"""Each condition kind and combinator on its own, through rules loaded from TOML text."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.classify import conditions as c
from processor.classify import load_rules
from processor.classify.text import fold, keyword_literal, keyword_pattern
from processor.classify.view import MessageView

from .mails import mail, rules_dir


def condition(tmp_path: Path, when: str) -> c.Condition:
    """The condition of a one-rule set whose [rule.when] table is `when`."""
    text = f'[[rule]]\nname = "r"\norder = 1\n[rule.when]\n{when}\n[rule.then]\ntags = ["hit"]\n'
    return load_rules([rules_dir(tmp_path, {"r.toml": text})]).rules[0].when


def check(tmp_path: Path, when: str, message=None, received_by: str | None = None) -> str | None:
    return condition(tmp_path, when).check(MessageView.of(message or mail(), received_by))


def test_contains_any_finds_chinese_keyword_inside_unspaced_text(tmp_path):
    reason = check(tmp_path, 'field = "body"\ncontains_any = ["掉线", "卡顿"]',
                   mail(body="我们的电话最近总是卡顿，很烦"))
    assert reason == 'body contains "卡顿"'


def test_contains_any_respects_english_word_edges(tmp_path):
    when = 'field = "body"\ncontains_any = ["app"]'
    assert check(tmp_path / "a", when, mail(body="I am not happy")) is None
    assert check(tmp_path / "b", when, mail(body="The App crashed")) == 'body contains "app"'


def test_contains_any_star_lets_the_word_go_on(tmp_path):
    when = 'field = "body"\ncontains_any = ["refund*"]'
    assert check(tmp_path, when, mail(body="Nothing was Refunded")) == 'body contains "refund*"'


def test_contains_any_ignores_case_and_full_width_forms(tmp_path):
    when = 'field = "subject"\ncontains_any = ["refund"]'
    assert check(tmp_path, when, mail(subject="ＲＥＦＵＮＤ please")) == 'subject contains "refund"'


def test_contains_any_treats_spaces_and_hyphens_alike(tmp_path):
    when = 'field = "body"\ncontains_any = ["do not call"]'
    assert check(tmp_path, when, mail(body="We are on the do-not-call list")) is not None


def test_contains_any_without_a_match(tmp_path):
    assert check(tmp_path, 'field = "body"\ncontains_any = ["掉线"]', mail(body="一切正常")) is None


def test_contains_all_needs_every_keyword_in_any_listed_field(tmp_path):
    when = 'field = ["subject", "body"]\ncontains_all = ["账单", "退款"]'
    both = mail(subject="账单有误", body="请退款")
    assert check(tmp_path / "a", when, both) == 'subject contains "账单" and body contains "退款"'
    assert check(tmp_path / "b", when, mail(subject="账单有误", body="谢谢")) is None


def test_regex_is_case_insensitive_and_quotes_what_it_found(tmp_path):
    reason = check(tmp_path, "field = \"body\"\nregex = 'ticket\\s+#?\\d+'",
                   mail(body="About TICKET #4411 again"))
    assert reason == 'body matches /ticket\\s+#?\\d+/ at "TICKET #4411"'


def test_regex_reads_full_width_digits_as_ascii(tmp_path):
    reason = check(tmp_path, "field = \"body\"\nregex = '\\d{5}'", mail(body="打１２３１５"))
    assert reason == 'body matches /\\d{5}/ at "12315"'


def test_equals_compares_the_whole_value(tmp_path):
    when = 'field = "header:x-priority"\nequals = "1 (Highest)"'
    assert check(tmp_path / "a", when, mail(headers={"X-Priority": "1 (highest) "})) is not None
    assert check(tmp_path / "b", when, mail(headers={"X-Priority": "1"})) is None


def test_equals_on_language(tmp_path):
    zh = mail(subject="投诉", body="你们的客服电话一直打不通，已经三天了，请尽快处理。")
    assert check(tmp_path, 'field = "language"\nequals = "zh"', zh) == 'language equals "zh"'


def test_domain_in_matches_domain_and_subdomains_only(tmp_path):
    when = 'field = "from"\ndomain_in = ["example.com"]'
    assert check(tmp_path / "a", when, mail(sender="a@mail.example.com")) is not None
    assert check(tmp_path / "b", when, mail(sender="a@badexample.com")) is None


def test_from_domain_field(tmp_path):
    reason = check(tmp_path, 'field = "from_domain"\nequals = "example.com"')
    assert reason == 'from_domain equals "example.com"'


def test_received_by_is_the_monitored_address_when_given(tmp_path):
    when = 'field = "received_by"\nequals = "vip@desk.example"'
    message = mail(to="complaints@desk.example", cc="vip@desk.example")
    assert check(tmp_path / "a", when, message) is not None  # no word from the poller: To and Cc
    assert check(tmp_path / "b", when, message, received_by="complaints@desk.example") is None


def test_attachment_name_and_type(tmp_path):
    message = mail(attachments=(("screenshot.PNG", "image/png"),))
    assert check(tmp_path / "a", "field = \"attachment_name\"\nregex = '\\.png$'", message)
    assert check(tmp_path / "b", 'field = "attachment_type"\nequals = "image/png"', message)


def test_any_header_by_name(tmp_path):
    message = mail(headers={"X-Mailer": "Foxmail 7.2"})
    assert check(tmp_path, 'field = "header:X-Mailer"\ncontains_any = ["foxmail"]', message)


def test_body_is_the_new_text_not_the_quoted_history(tmp_path):
    message = mail(body="Still broken.\n\nOn Mon, 4 Nov 2024, Desk <d@desk.example> wrote:\n"
                        "> We have issued a refund.\n")
    assert check(tmp_path, 'field = "body"\ncontains_any = ["refund"]', message) is None


def test_all_holds_only_when_every_part_does(tmp_path):
    text = ('[[rule]]\nname = "r"\norder = 1\n'
            '[[rule.when.all]]\nfield = "subject"\ncontains_any = ["bill"]\n'
            '[[rule.when.all]]\nfield = "body"\ncontains_any = ["twice"]\n'
            '[rule.then]\ntags = ["hit"]\n')
    rule = load_rules([rules_dir(tmp_path, {"r.toml": text})]).rules[0]
    hit = rule.when.check(MessageView.of(mail(subject="Bill", body="charged twice")))
    assert hit == 'subject contains "bill" and body contains "twice"'
    assert rule.when.check(MessageView.of(mail(subject="Bill", body="once"))) is None


def test_any_gives_the_first_reason_that_holds(tmp_path):
    text = ('[[rule]]\nname = "r"\norder = 1\n'
            '[[rule.when.any]]\nfield = "subject"\ncontains_any = ["outage"]\n'
            '[[rule.when.any]]\nfield = "body"\ncontains_any = ["down"]\n'
            '[rule.then]\ntags = ["hit"]\n')
    rule = load_rules([rules_dir(tmp_path, {"r.toml": text})]).rules[0]
    assert rule.when.check(MessageView.of(mail(body="it is down"))) == 'body contains "down"'
    assert rule.when.check(MessageView.of(mail(body="fine"))) is None


def test_not_holds_when_its_condition_does_not(tmp_path):
    when = 'not = { field = "from_domain", domain_in = ["desk.example"] }'
    assert check(tmp_path / "a", when) == "not (from_domain domain in desk.example)"
    assert check(tmp_path / "b", when, mail(sender="staff@desk.example")) is None


def test_no_when_means_always(tmp_path):
    text = '[[rule]]\nname = "r"\norder = 1\n[rule.then]\ntags = ["hit"]\n'
    rule = load_rules([rules_dir(tmp_path, {"r.toml": text})]).rules[0]
    assert c.always_holds(rule.when)
    assert rule.when.check(MessageView.of(mail())) == "always (no conditions)"


@pytest.mark.parametrize("shape, always, never", [
    (c.All(()), True, False),
    (c.Any(()), False, True),
    (c.Not(c.All(())), False, True),
    (c.Not(c.Any(())), True, False),
    (c.Equals(("subject",), "x"), False, False),
])
def test_shape_judgements(shape, always, never):
    assert c.always_holds(shape) is always
    assert c.never_holds(shape) is never


@pytest.mark.parametrize("keyword", ["do not call", "re-open", "refund*", "掉线", "Ｃ－１２",
                                     "call  back", "-", "a--b"])
def test_a_keyword_pattern_never_matches_text_without_its_literal(keyword):
    # The literal is checked first, for speed: it must never turn a match into a miss.
    pattern, literal = keyword_pattern(keyword), keyword_literal(keyword)
    texts = ["please do-not-call me", "do not  call", "donotcall", "reopen it", "re open",
             "re-open", "refunded", "not a refund", "总是掉线", "c-12", "c12", "call back",
             "call-back", "a-b", "ab", "a b", "-", ""]
    for text in (fold(t) for t in texts):
        if pattern.search(text):
            assert literal in text, (keyword, text)
    assert any(pattern.search(fold(t)) for t in texts), keyword
