"""Worked examples for staff mail commands: top lines only, all or nothing."""

from __future__ import annotations

import pytest

from processor.mailcommands import Command, CommandParse, parse_commands

CATEGORIES = ("billing", "technical-fault", "agent-conduct")


def parse(text: str) -> CommandParse:
    return parse_commands(text, CATEGORIES)


def values(text: str) -> list[tuple[str, str]]:
    return [(c.name, c.value) for c in parse(text).commands]


def test_each_command_with_a_valid_value() -> None:
    text = ("#status pending\n#assign zhang.wei\n#priority high\n#category billing\n"
            "#tag refund-requested\n\nDear customer, we are checking.")
    result = parse(text)
    assert result.errors == ()
    assert values(text) == [("status", "pending"), ("assign", "zhang.wei"), ("priority", "high"),
                            ("category", "billing"), ("tag", "refund-requested")]
    assert result.remaining_text == "Dear customer, we are checking."
    assert result.may_relay and not result.is_note


def test_command_keeps_its_line_for_the_event_log() -> None:
    assert parse("  #Status RESOLVED  \nDone.").commands == (
        Command("status", "resolved", "#Status RESOLVED"),)


def test_leading_blank_lines_and_blank_lines_between_commands() -> None:
    assert values("\n\n#status open\n\n#priority low\nHello") == [("status", "open"),
                                                                  ("priority", "low")]


def test_commands_only_at_the_top() -> None:
    result = parse("Thanks for waiting.\n#status resolved\n")
    assert result.commands == () and result.errors == ()
    assert result.remaining_text == "Thanks for waiting.\n#status resolved"


def test_first_text_line_ends_the_commands() -> None:
    result = parse("#status pending\nPlease send the invoice.\n#priority urgent")
    assert values("#status pending\nPlease send the invoice.\n#priority urgent") == [
        ("status", "pending")]
    assert result.remaining_text == "Please send the invoice.\n#priority urgent"


def test_full_width_hash_and_letters_and_ideographic_space() -> None:
    assert values("＃ｓｔａｔｕｓ\u3000ｒｅｓｏｌｖｅｄ\n已处理。") == [("status", "resolved")]


def test_space_after_hash_is_still_a_command() -> None:
    # Better understood than relayed to the complainant as text.
    assert values("# status resolved") == [("status", "resolved")]


def test_keywords_and_values_are_case_insensitive() -> None:
    assert values("#PRIORITY Urgent\n#Category BILLING") == [("priority", "urgent"),
                                                            ("category", "billing")]


def test_chinese_assignee_and_tag() -> None:
    assert values("#assign 张伟\n#tag 退款") == [("assign", "张伟"), ("tag", "退款")]


def test_assignee_may_be_an_address() -> None:
    assert values("#assign li.na@example.com") == [("assign", "li.na@example.com")]


def test_tag_may_repeat() -> None:
    assert values("#tag a\n#tag b_c") == [("tag", "a"), ("tag", "b_c")]


def test_note_is_never_relayed_and_keeps_its_words() -> None:
    result = parse("#note called the customer, will ring back\nInternal: VIP")
    assert result.is_note and not result.may_relay
    assert result.remaining_text == "called the customer, will ring back\nInternal: VIP"
    assert [c.name for c in result.commands] == ["note"]


def test_only_commands_leaves_nothing_to_relay() -> None:
    result = parse("#status resolved\n")
    assert result.remaining_text == "" and not result.may_relay


def test_unknown_command_is_an_error_and_nothing_applies() -> None:
    result = parse("#status resolved\n#foo bar\nHello")
    assert result.commands == ()
    assert len(result.errors) == 1 and "unknown command #foo" in result.errors[0]
    assert "line 2" in result.errors[0]
    assert not result.may_relay


@pytest.mark.parametrize("line,expected", [
    ("#status done", "status must be one of open, pending, resolved, closed"),
    ("#status new", "status must be one of"),
    ("#priority critical", "priority must be one of low, normal, high, urgent"),
    ("#category nonsense", "unknown category; known: agent-conduct, billing"),
    ("#assign", "#assign needs a name"),
    ("#assign two words", "a name is one word"),
    ("#assign x;rm", "a name is one word"),
    ("#tag", "#tag needs a tag"),
    ("#tag Has Space", "a tag is lower-case"),
    ("#tag " + "x" * 41, "at most 40 characters"),
    ("#tag -leading-dash", "a tag is lower-case"),
])
def test_invalid_value_is_an_error(line: str, expected: str) -> None:
    result = parse(f"#tag vip\n{line}\nHello")
    assert result.commands == ()  # the valid #tag is not applied either
    assert any(expected in error for error in result.errors), result.errors


def test_single_use_command_twice_is_an_error() -> None:
    result = parse("#status pending\n#status resolved")
    assert result.commands == () and "only once" in result.errors[0]


def test_mistyped_note_is_not_relayed() -> None:
    # "#nte" is an error, so the internal text below it must not reach the complainant.
    result = parse("#nte\nthe customer is a known troll")
    assert result.errors and not result.may_relay


def test_note_with_an_error_is_still_a_note() -> None:
    result = parse("#note\n#status finished\ninternal")
    assert result.is_note and result.errors and result.commands == ()


def test_hash_without_a_word_is_text() -> None:
    result = parse("#1 priority for us is your refund.")
    assert result.commands == () and result.errors == ()
    assert result.may_relay


def test_empty_text() -> None:
    result = parse("")
    assert result.commands == () and result.errors == () and result.remaining_text == ""
