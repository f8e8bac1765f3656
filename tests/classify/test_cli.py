"""`complaints rules check` and `complaints rules test`, run through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from processor.cli import main

LABELLED = Path(__file__).parent / "labelled"


def run(tmp_path: Path, *args: str, rules_dir: Path | None = None):
    config = tmp_path / "complaints.toml"
    config.write_text(f'[processing]\nrules_dir = "{rules_dir or ""}"\n', encoding="utf-8")
    return CliRunner().invoke(main, ["-c", str(config), "rules", *args])


def test_check_passes_on_the_shipped_rules(tmp_path):
    result = run(tmp_path, "check")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: ")


def test_check_lists_problems_as_file_line_and_exits_1(tmp_path):
    override = tmp_path / "rules"
    override.mkdir()
    (override / "local.toml").write_text(
        '[[rule]]\nname = "vip"\norder = 5\n[rule.when]\nfield = "from"\nregex = "(x"\n'
        '[rule.then]\ncategory = "vip"\n', encoding="utf-8")
    result = run(tmp_path, "check", rules_dir=override)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{override / 'local.toml'}:6: rule 'vip' when: bad regex /(x/" in lines[0]
    assert f"{override / 'local.toml'}:8: rule 'vip': unknown category 'vip'" in lines[1]


def test_test_shows_matched_rules_reasons_and_details(tmp_path):
    result = run(tmp_path, "test", str(LABELLED / "015-zh-agent.eml"))
    assert result.exit_code == 0, result.output
    assert "subject-agent-conduct" in result.output
    assert 'subject contains "态度恶劣"' in result.output
    assert "category:     agent_conduct (客服服务态度)" in result.output
    assert "agent_ids: 8023" in result.output


def test_test_json_has_the_documented_shape(tmp_path):
    result = run(tmp_path, "test", "--json", str(LABELLED / "004-zh-tech.eml"))
    data = json.loads(result.output)
    assert {"category", "priority", "sla_hours", "tags", "team", "assignee", "ignored",
            "matched", "details", "missing"} <= set(data)
    assert (data["category"], data["priority"], data["tags"]) == (
        "technical_fault", "urgent", ["regulator"])
    assert data["matched"][0]["rule"] == "regulator-mentioned"
    assert data["matched"][0]["reasons"][0] == 'subject contains "工信部"'


def test_test_refuses_on_invalid_rules_and_says_why(tmp_path):
    override = tmp_path / "rules"
    override.mkdir()
    (override / "bad.toml").write_text("[[rule]]\nname = 1\n", encoding="utf-8")
    result = run(tmp_path, "test", str(LABELLED / "001-zh-tech.eml"), rules_dir=override)
    assert result.exit_code == 2
    assert "invalid rules" in result.output and "bad.toml:2" in result.output
    assert "Traceback" not in result.output


def test_help_says_what_each_command_does_with_an_example(tmp_path):
    for command in ("check", "test"):
        result = CliRunner().invoke(main, ["rules", command, "--help"])
        assert "Example:" in result.output and "complaints rules " + command in result.output
