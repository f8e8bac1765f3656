"""The first quick-start command's job: `complaints demo` ingests the samples and prints cases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_demo_ingests_the_examples_and_prints_the_cases(tmp_path: Path) -> None:
    pytest.importorskip("pymap", reason="the demo needs the demo extra (pymap)")
    workdir = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "processor", "demo", "--workdir", str(workdir)],
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.eml"))
    assert f"loaded with {len(examples)} sample complaints" in result.stdout
    assert f"ingested: {len(examples)} stored" in result.stdout
    assert "C-000001" in result.stdout and "agent_conduct" in result.stdout
    assert "帳單重複扣款" in result.stdout  # Big5 decoded
    assert list((workdir / "outbox-sink").glob("*.eml"))  # acknowledgements were sent
    again = subprocess.run([sys.executable, "-m", "processor", "demo", "--workdir", str(workdir)],
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert again.returncode == 0  # a demo directory is replaced, never merged
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("not a demo")
    refused = subprocess.run([sys.executable, "-m", "processor", "demo", "--workdir",
                              str(tmp_path / "mine")], capture_output=True, text=True,
                             timeout=300, stdin=subprocess.DEVNULL)
    assert refused.returncode == 1 and "not a demo directory" in refused.stderr
    assert (tmp_path / "mine" / "keep.txt").exists()
