"""The lookahead put in front of the long detail patterns and the rule files' regexes changes
no match, only the speed."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import processor.classify.text
from benchmarks.generate import iter_corpus
from processor.classify import builtin_rules_dir, classify, details, load_rules
from processor.classify.conditions import Regex
from processor.classify.text import first_character_guard
from processor.mail import parse_message

SHARED_CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"


def test_an_alternation_gets_the_characters_its_matches_start_with() -> None:
    guarded = first_character_guard(re.compile(r"每天|\bdaily\b|第?\d+\s*次|(?<!\d)x+y", re.I))
    assert guarded.pattern.startswith("(?=[")
    assert set(guarded.pattern[4:guarded.pattern.index("]")].replace(r"\d", "")) == set("每d第x")
    assert r"\d" in guarded.pattern
    assert guarded.flags == re.compile("", re.I).flags
    assert [m.group(0) for m in guarded.finditer("Daily: 第3次, 每天, 12 次, xxy")] == [
        "Daily", "第3次", "每天", "12 次", "xxy"]
    # Past what may be absent, and no further than what must be there.
    assert first_character_guard(re.compile(r"(a?(\bb))c|d")).pattern.startswith("(?=[abd])")
    # Only what comes first counts: a back-reference later on is no obstacle.
    assert first_character_guard(re.compile(r"(a)\1|b")).pattern.startswith("(?=[ab])")


@pytest.mark.parametrize("pattern", [
    r"a*",          # can match nothing: every position could start a match
    r".x|y",        # any character
    r"[^a]b",       # a negated set
    r"\Dx",         # a negated category
    r"(?i)abc|d",   # global flags must stay first
    r"(?s:.)x",     # scoped flags
    r"(a)?\1b",     # a back-reference may come first
])
def test_what_cannot_be_told_is_left_alone(pattern: str) -> None:
    compiled = re.compile(pattern)
    assert first_character_guard(compiled) is compiled


@pytest.fixture(scope="module")
def unguarded() -> Iterator[ModuleType]:
    """processor.classify.details loaded again without the guard, beside the real one."""
    spec = importlib.util.spec_from_file_location("_details_unguarded", details.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processor.classify.text, "first_character_guard", lambda p: p)
        spec.loader.exec_module(module)
    assert module._TIME.pattern != details._TIME.pattern  # the guard really is off there
    yield module


def _texts() -> Iterator[str]:
    for raw in iter_corpus(1500):
        message = parse_message(raw)
        yield f"{message.subject}\n{message.new_text}"
    yield from (
        "Ｎｏｖ ３ at ３ＰＭ，工号：ＡＢ１２３４，电话 +86 138-0013-8000",  # full-width, folded
        "٣ times on ٣/١١ 10:15 PM, ORDER #A1B2C3, agent id: X-1234",  # other digits
        "KEEPS DROPPING. EVERY DAY! He said \"stop calling\" 客服说“没办法”。",
        "在使用\n的时候\n断了；LOST\n\ncustomers and revenue; cost us",
    )
    if SHARED_CORPUS.is_dir():
        for path in sorted(SHARED_CORPUS.rglob("*.eml")):
            message = parse_message(path.read_bytes())
            yield f"{message.subject}\n{message.new_text}"


def test_details_are_the_same_with_and_without_the_guard(unguarded: ModuleType) -> None:
    compared = 0
    for text in _texts():
        normalized = details.normalize(text)
        sentences = details._sentences(normalized)
        for name, find in details.EXTRACTORS.items():
            plain = unguarded.EXTRACTORS[name]
            assert list(find(normalized, sentences)) == list(plain(normalized, sentences)), (
                name, text[:200])
        compared += 1
    assert compared > 1500


def test_rule_regexes_classify_the_same_with_and_without_the_guard() -> None:
    """The rule files' regex conditions are guarded when loaded: every mail gets the same
    classification, reasons and quoted matches included, as with the patterns as written."""
    guarded = load_rules([builtin_rules_dir()])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processor.classify.load, "first_character_guard", lambda p: p)
        plain = load_rules([builtin_rules_dir()])
    regexes = [condition for rule in guarded.rules for condition in _leaves(rule.when)
               if isinstance(condition, Regex)]
    assert sum(r.compiled.pattern.startswith("(?=[") for r in regexes) >= len(regexes) // 2
    assert not any(condition.compiled.pattern.startswith("(?=[")
                   for rule in plain.rules for condition in _leaves(rule.when)
                   if isinstance(condition, Regex))
    compared = 0
    for raw in [*iter_corpus(1500), *_shared_mails()]:
        message = parse_message(raw)
        assert classify(message, guarded) == classify(message, plain)
        compared += 1
    assert compared >= 1500


def _leaves(condition: object) -> Iterator[object]:
    inner = getattr(condition, "conditions", None)
    if inner is None and hasattr(condition, "condition"):
        inner = (condition.condition,)  # type: ignore[attr-defined]
    if inner is None:
        yield condition
        return
    for each in inner:
        yield from _leaves(each)


def _shared_mails() -> Iterator[bytes]:
    if SHARED_CORPUS.is_dir():
        for path in sorted(SHARED_CORPUS.rglob("*.eml")):
            yield path.read_bytes()
