"""The default rules over the labelled complaint mails in labelled/: categories, regulator, ignored.

labels.toml says, for each mail, what a person reading it decided. See its header for which
mails the rules were fitted to and how the held-out batches did before that.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from processor.classify import Classification, builtin_rules_dir, classify, load_rules
from processor.mail import parse_message

LABELLED = Path(__file__).parent / "labelled"
REQUIRED_ACCURACY = 0.95


@cache
def results() -> tuple[tuple[str, dict, Classification], ...]:
    rules = load_rules([builtin_rules_dir()])
    labels = tomllib.loads((LABELLED / "labels.toml").read_text(encoding="utf-8"))
    return tuple((name, label, classify(parse_message((LABELLED / name).read_bytes()), rules))
                 for name, label in labels.items())


def confusion(rows) -> str:
    """A confusion matrix (rows: expected, columns: got) and the mails that went wrong."""
    counts = Counter((label["category"], got.category) for _, label, got in rows)
    names = sorted({c for pair in counts for c in pair})
    width = max(map(len, names)) + 2
    lines = ["expected \\ got".ljust(width) + "".join(n[:8].rjust(9) for n in names)]
    for expected in names:
        lines.append(expected.ljust(width) + "".join(
            str(counts.get((expected, got), "")).rjust(9) for got in names))
    wrong = [f"  {name}: expected {label['category']}, got {got.category} "
             f"(rules: {', '.join(m.rule for m in got.matched)})"
             for name, label, got in rows if label["category"] != got.category]
    return "\n".join(lines + ["wrong:"] + wrong)


def test_the_set_is_large_and_bilingual():
    names = [name for name, _, _ in results()]
    assert len(names) >= 80
    assert sum("-zh-" in n for n in names) >= 30 and sum("-en-" in n for n in names) >= 30
    assert set(names) == {p.name for p in LABELLED.glob("*.eml")}, "every mail is labelled"


def test_categories_are_right_for_at_least_95_percent():
    rows = [row for row in results() if not row[1].get("ignored")]
    right = sum(label["category"] == got.category for _, label, got in rows)
    accuracy = right / len(rows)
    assert accuracy >= REQUIRED_ACCURACY, (
        f"{right}/{len(rows)} right ({accuracy:.1%})\n" + confusion(rows))


def test_every_regulator_case_is_tagged_urgent():
    rows = results()
    missed = [name for name, label, got in rows
              if label["regulator"] and ("regulator" not in got.tags or got.priority != "urgent")]
    extra = [name for name, label, got in rows
             if not label["regulator"] and "regulator" in got.tags]
    assert (missed, extra) == ([], [])


def test_bulk_mail_and_robots_are_ignored_and_complaints_are_not():
    wrong = [name for name, label, got in results()
             if got.ignored != label.get("ignored", False)]
    assert wrong == []


@pytest.mark.parametrize("name", ["001-zh-tech.eml", "015-zh-agent.eml"])
def test_every_rule_hit_gives_a_reason(name):
    got = next(got for n, _, got in results() if n == name)
    assert got.matched and all(match.reasons for match in got.matched)
