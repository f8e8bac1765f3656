"""Reloading rules in a running process: swap on valid files, keep the old rules on broken ones."""

from __future__ import annotations

import logging

import pytest

from processor.classify import RulesHolder
from processor.errors import RulesError

from .mails import rules_dir

RULE = '[[rule]]\nname = "{name}"\norder = 1\n[rule.then]\ntags = ["t"]\n'


def test_reload_swaps_in_valid_rules(tmp_path):
    directory = rules_dir(tmp_path, {"r.toml": RULE.format(name="first")})
    holder = RulesHolder([directory])
    (directory / "r.toml").write_text(RULE.format(name="second"), encoding="utf-8")
    assert holder.reload() == []
    assert [r.name for r in holder.current.rules] == ["second"]


def test_reload_keeps_the_old_rules_when_the_new_ones_are_invalid(tmp_path, caplog):
    directory = rules_dir(tmp_path, {"r.toml": RULE.format(name="first")})
    holder = RulesHolder([directory])
    (directory / "r.toml").write_text(RULE.format(name="Bad Name"), encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="processor.classify"):
        problems = holder.reload()
    assert problems and "kebab-case" in problems[0].message
    assert [r.name for r in holder.current.rules] == ["first"]
    assert "keeping the ones in use" in caplog.text


def test_starting_with_invalid_rules_refuses(tmp_path):
    directory = rules_dir(tmp_path, {"r.toml": RULE.format(name="Bad Name")})
    with pytest.raises(RulesError):
        RulesHolder([directory])
