"""Worked examples for the lifecycle helpers: #status moves, raised priority, appeal phrases."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.errors import ConfigError
from processor.threading import (
    DEFAULT_APPEAL_PHRASES,
    STATUS_TRANSITIONS,
    appeal_requested,
    apply_status_command,
    builtin_appeal_phrases_path,
    load_appeal_phrases,
    raised_priority,
)


@pytest.mark.parametrize("current,requested", [
    ("new", "open"), ("open", "pending"), ("pending", "open"), ("open", "resolved"),
    ("resolved", "open"), ("resolved", "closed"), ("closed", "open"), ("new", "closed"),
])
def test_allowed_status_moves(current: str, requested: str) -> None:
    change = apply_status_command(current, requested)
    assert change.allowed and change.new_status == requested
    assert change.reason == f"{current} -> {requested}"


@pytest.mark.parametrize("requested", ["resolved", "pending"])
def test_closed_case_can_only_be_reopened(requested: str) -> None:
    change = apply_status_command("closed", requested)
    assert not change.allowed and change.new_status == "closed"
    assert "possible: open" in change.reason


def test_same_status_is_a_harmless_no_op() -> None:
    change = apply_status_command("pending", "pending")
    assert change.allowed and change.new_status == "pending" and "already" in change.reason


def test_no_command_moves_a_case_back_to_new() -> None:
    assert all("new" not in targets for targets in STATUS_TRANSITIONS.values())


@pytest.mark.parametrize("current,raised", [("low", "high"), ("normal", "high"),
                                            ("high", "urgent"), ("urgent", "urgent"),
                                            ("unknown", "high")])
def test_raised_priority(current: str, raised: str) -> None:
    assert raised_priority(current) == raised


@pytest.mark.parametrize("text", [
    "我对处理结果不满意", "我要申诉", "请复核", "我要求投诉升级", "I am not satisfied with this.",
    "NOT   SATISFIED", "I'm dissatisfied.", "I want to appeal.", "Appeal: please look again",
    "I would like to request a review", "ｎｏｔ ｓａｔｉｓｆｉｅｄ", "appeal申诉",
])
def test_appeal_phrases_match(text: str) -> None:
    assert appeal_requested(text)


@pytest.mark.parametrize("text", [
    "Thanks, I am satisfied.", "满意，谢谢", "The offer is very appealing.",
    "Thanks for the review", "",
])
def test_not_an_appeal(text: str) -> None:
    assert not appeal_requested(text)


def test_shipped_phrase_file_loads_and_covers_the_issue() -> None:
    phrases = load_appeal_phrases(builtin_appeal_phrases_path())
    for phrase in ("不满意", "申诉", "复核", "投诉升级", "not satisfied", "appeal"):
        assert phrase in phrases
    assert load_appeal_phrases() == phrases


def test_missing_phrase_file_gives_the_built_in_list(tmp_path: Path) -> None:
    assert load_appeal_phrases(tmp_path / "absent.toml") == DEFAULT_APPEAL_PHRASES


def test_phrases_from_a_file_are_used(tmp_path: Path) -> None:
    path = tmp_path / "appeal.toml"
    path.write_text('appeal_phrases = ["reconsider"]\n', encoding="utf-8")
    phrases = load_appeal_phrases(path)
    assert appeal_requested("Please reconsider.", phrases)
    assert not appeal_requested("I want to appeal", phrases)


@pytest.mark.parametrize("content", ["appeal_phrases = []\n", "appeal_phrases = [1]\n",
                                     "appeal_phrases = \"appeal\"\n", "other = 1\n",
                                     "appeal_phrases = [\n"])
def test_bad_phrase_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "appeal.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_appeal_phrases(path)
