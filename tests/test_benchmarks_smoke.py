"""The benchmark command runs end to end on a tiny corpus and prints its table.

Only that it completes is checked: the figures depend on the machine and are never asserted.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import REPO_ROOT, _pg_reachable

pytestmark = pytest.mark.slow


def test_benchmark_quick_run_prints_the_table(tmp_path: Path) -> None:
    pytest.importorskip("aiosmtpd", reason="aiosmtpd is not installed: pip install -e '.[test]'")
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Digest\n\nkept as it was\n", encoding="utf-8")
    argv = [sys.executable, "-m", "benchmarks.run", "--quick", "--pairs", "2",
            "--results", str(results)]
    with_postgres = _pg_reachable("postgresql+psycopg://postgres@127.0.0.1:5432/postgres") is None
    if not with_postgres:
        argv.append("--no-postgres")
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    for measure in ("floor: fetch only", "poll --once, SQLite", "peak RSS",
                    "mail over the size limit", "append → ack accepted",
                    "resident memory, `run` over 100 mails",
                    "poll --once, SQLite, acknowledgements off"):
        assert measure in done.stdout
    # Each poll says how much CPU it and the worker processes below it used.
    poll_row = next(line for line in done.stdout.splitlines()
                    if line.startswith("| poll --once, SQLite ") and "mails/s" in line)
    assert re.search(r"CPU \d+\.\d s, and \d+\.\d s in \d+ process(es)? below it", poll_row), \
        poll_row
    assert "**failed**" not in done.stdout, done.stdout
    # The floor and the poll ran twice, one after the other; the ratio is the pairs' median.
    assert "the median of 2 pairs run back to back" in done.stdout, done.stdout
    if with_postgres:  # against a SQLite poll run just before it, as the floor and the poll
        ratio_row = next(line for line in done.stdout.splitlines()
                         if line.startswith("| time PostgreSQL / SQLite"))
        assert "run back to back; against the pairs' median SQLite poll" in ratio_row
        assert "| poll --once, SQLite, just before it " in done.stdout
    recorded = results.read_text(encoding="utf-8")
    assert "## Digest\n\nkept as it was" in recorded
    assert "## Run of " in recorded and "poll --once, SQLite" in recorded


@pytest.mark.parametrize(("argv", "prints"), [
    (["-m", "benchmarks.compose_bench", "--n", "4", "--repeat", "1"], "compose_ack alone"),
    (["benchmarks/digest_bench.py", "--cases", "200", "--runs", "1"], "collect_digest run 1"),
], ids=["compose_bench", "digest_bench"])
def test_the_micro_benchmarks_run(argv: list[str], prints: str) -> None:
    """The micro-benchmarks beside the main one, on a tiny size: a change to what they call
    must not leave them broken (compose_bench was, once the batch's rows were deferred)."""
    done = subprocess.run([sys.executable, *argv], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=240, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    assert prints in done.stdout


def test_postgres_is_compared_with_the_sqlite_poll_beside_it_or_else_the_median() -> None:
    from benchmarks.ingest import Throughput
    from benchmarks.run import Report, render

    args = argparse.Namespace(n=10, big_mb=0, over_limit_mb=0, latency_mails=0,
                              soak_mails=0, pairs=3, small_n=0)
    report = Report(10)
    report.postgres, report.sqlite = Throughput("pg", 10, 14.0, 100.0), Throughput(
        "sqlite", 10, 10.0, 100.0)
    report.postgres_pair = Throughput("sqlite", 10, 9.0, 100.0)
    [row] = [line for line in render(report, args).splitlines() if "PostgreSQL /" in line]
    assert "1.56, run back to back; against the pairs' median SQLite poll, 1.40" in row
    assert "**not met**" in row
    report.postgres_pair = None  # it failed: the table still compares PostgreSQL, with the median
    [row] = [line for line in render(report, args).splitlines() if "PostgreSQL /" in line]
    assert "1.40, against the pairs' median SQLite poll" in row and "≤ 1.5: met" in row
    assert "| poll --once, PostgreSQL " in render(report, args)
