"""Run every benchmark, print one table and append it to benchmarks/RESULTS.md.

    .venv/bin/python -m benchmarks.run [--n 10000] [--quick]

Starts what it needs: a Dovecot for this run alone (scripts/dovecot-test-server on a free
port, stopped and removed at the end), an SMTP sink in this process, a database of its own on
the local PostgreSQL (created, then dropped). Generated mail, Maildirs, databases and blob
stores are deleted at the end; a phase that fails is reported in the table, the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from benchmarks.generate import iter_corpus
from benchmarks.ingest import Throughput, measure_floor, measure_poll
from benchmarks.latency import Latency, describe, idle_floor, measure_latency, percentile
from benchmarks.memory import measure_big_attachment, measure_over_limit
from benchmarks.services import Dovecot, postgres_database
from benchmarks.soak import Soak, describe_soak, measure_soak

T = TypeVar("T")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
IDLE_FLOOR_MAILS = 20


@dataclass
class Report:
    n: int
    loaded_seconds: float = 0.0
    corpus_mib: float = 0.0
    floors: dict[str, Throughput] = field(default_factory=dict)
    sqlite: Throughput | None = None
    # The modern-policy floor and the SQLite poll, run one after the other `--pairs` times:
    # `floors["modern"]` and `sqlite` are then the runs of median time.
    pairs: list[tuple[Throughput, Throughput]] = field(default_factory=list)
    # The same poll with `[ack] enabled = false`: what composing and queuing the
    # acknowledgements costs, for reference (no target).
    unacknowledged: Throughput | None = None
    postgres: Throughput | None = None
    # The SQLite poll run just before the PostgreSQL one, which it is compared with.
    postgres_pair: Throughput | None = None
    small: Throughput | None = None
    big: Throughput | None = None
    over_limit: Throughput | None = None
    idle: list[float] = field(default_factory=list)
    latency: Latency | None = None
    soak: Soak | None = None
    failures: list[str] = field(default_factory=list)

    def attempt(self, phase: str, measure: Callable[[], T]) -> T | None:
        """Run one phase; a failure is reported in the table and the other phases still run."""
        try:
            result = measure()
        except Exception as exc:  # noqa: BLE001 - keep what was measured so far
            self.failures.append(f"{phase}: {type(exc).__name__}: {str(exc)[:300]}")
            _say(f"{phase} failed: {exc}")
            return None
        _say(f"{phase}: {result}")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ingest, latency and memory benchmarks.")
    parser.add_argument("--n", type=int, default=10_000, help="mails in the backlog (10000)")
    parser.add_argument("--small-n", type=int, default=1_000,
                        help="backlog whose peak RSS is compared with --n's (1000)")
    parser.add_argument("--latency-mails", type=int, default=200)
    parser.add_argument("--big-mb", type=int, default=30,
                        help="size of the one large attachment; 0 skips it (30)")
    parser.add_argument("--over-limit-mb", type=int, default=100,
                        help="size of one mail over the size limit, quarantined unparsed; 0 "
                             "skips it (100)")
    parser.add_argument("--pairs", type=int, default=None,
                        help="times the modern-policy floor and the SQLite poll are run, one "
                             "after the other; the ratio is the median of the pairs' (3; 1 "
                             "with --quick)")
    parser.add_argument("--soak-mails", type=int, default=3_000,
                        help="mails streamed to `complaints run` in groups, its memory read "
                             "after each; 0 skips it (3000)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 30 mails, 10 for RSS, 5 latency mails, 2 MB, "
                             "100 streamed")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="Markdown file the table is appended to")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.small_n, args.latency_mails, args.big_mb = 30, 10, 5, 2
        args.over_limit_mb, args.soak_mails = 3, 100
    if args.pairs is None:
        args.pairs = 1 if args.quick else 3
    # SIGTERM unwinds like Ctrl-C, so the Maildirs, databases and Dovecot are still cleaned up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    dovecot = Dovecot.private()
    dovecot.start()
    load_before = os.getloadavg()[0]
    try:
        with _workdir() as work:
            report = run_all(dovecot, work, args)
    finally:
        dovecot.stop_and_remove()
    table = render(report, args)
    print(table)
    # Other work on the machine slows every figure down: say how busy it was.
    load = f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print(load)
    if not args.no_record:
        append_results(args.results, table, load)
        print(f"appended to {args.results}")
    return 0


def run_all(dovecot: Dovecot, work: Path, args: argparse.Namespace) -> Report:
    """Every phase in turn. Nothing is deleted between them, only with the work directory and
    the Dovecot instance at the end: on this ext4, the first few thousand files created after
    many others were deleted take 20-50 times longer to create (inode allocation steps over
    the recently freed ones), still five minutes after the deletion, which would charge one
    phase for the previous phase's clean-up. Loading the corpus, which is not measured, comes
    first and takes that cost if an earlier run left it."""
    report = Report(args.n)
    user = dovecot.new_user("bench")
    _say(f"generating and loading {args.n} mails into Dovecot user {user}")
    started = time.monotonic()
    sizes: list[int] = []
    dovecot.load(user, _counting(iter_corpus(args.n), sizes))
    report.loaded_seconds = time.monotonic() - started
    report.corpus_mib = sum(sizes) / 2**20
    for mode in ("fetch", "compat32"):
        floor = report.attempt(f"floor {mode}",
                               functools.partial(measure_floor, dovecot, user, mode, work))
        if floor is not None:
            report.floors[mode] = floor
    _floor_and_poll_pairs(report, dovecot, user, work, args)
    dovecot.move_back(user)
    root = work / "sqlite-unacknowledged"
    report.unacknowledged = report.attempt(
        "poll --once, SQLite, acknowledgements off", functools.partial(
            measure_poll, dovecot, user, f"sqlite:///{root / 'desk.sqlite3'}", root,
            "poll --once, SQLite, acknowledgements off", args.n, acknowledge=False))
    if not args.no_postgres:
        dovecot.move_back(user)
        # Next to a SQLite poll of its own, for the reason the floor and the SQLite poll are
        # paired: compared with the pairs' polls minutes earlier, the ratio read the
        # machine's drift too (1.55 in a run of 2026-11-30 whose floor went from 26 to 33 s).
        root = work / "sqlite-beside-postgres"
        report.postgres_pair = report.attempt(
            "poll --once, SQLite, beside PostgreSQL", functools.partial(
                measure_poll, dovecot, user, f"sqlite:///{root / 'desk.sqlite3'}", root,
                "poll --once, SQLite", args.n))
        dovecot.move_back(user)
        report.postgres = report.attempt("poll --once, PostgreSQL",
                                         lambda: _postgres_poll(dovecot, user, work, args.n))
    if args.small_n and args.small_n < args.n:
        report.small = report.attempt(f"poll --once, SQLite, {args.small_n} mails",
                                      lambda: _small_poll(dovecot, work, args.small_n))
    if args.big_mb:
        report.big = report.attempt(f"one {args.big_mb} MB attachment",
                                    lambda: measure_big_attachment(dovecot, work / "big",
                                                                   args.big_mb))
    if args.over_limit_mb:
        report.over_limit = report.attempt(
            f"one {args.over_limit_mb} MB mail over the size limit",
            lambda: measure_over_limit(dovecot, work / "over", args.over_limit_mb))
    report.idle = report.attempt("IDLE notification floor", lambda: idle_floor(
        dovecot, min(IDLE_FLOOR_MAILS, max(args.latency_mails, 1)))) or []
    if args.latency_mails:
        report.latency = report.attempt(
            f"latency over {args.latency_mails} mails",
            _on_sqlite(measure_latency, dovecot, work / "latency", args.latency_mails))
    if args.soak_mails:
        report.soak = report.attempt(
            f"`run` over a stream of {args.soak_mails} mails",
            _on_sqlite(measure_soak, dovecot, work / "soak", args.soak_mails))
    return report


def _floor_and_poll_pairs(report: Report, dovecot: Dovecot, user: str, work: Path,
                          args: argparse.Namespace) -> None:
    """The modern-policy floor, then the SQLite poll, `args.pairs` times. A virtual
    machine's speed can drift by a quarter within minutes (RESULTS.md, 2026-11-30): one floor
    and one poll a minute apart compared the moments as much as the programs. Each pair runs back
    to back, and the ratio reported is the median of the pairs'."""
    for index in range(max(1, args.pairs)):
        if index:
            dovecot.move_back(user)
        label = f" ({index + 1} of {args.pairs})" if args.pairs > 1 else ""
        floor = report.attempt(f"floor modern{label}", functools.partial(
            measure_floor, dovecot, user, "modern", work))
        root = work / f"sqlite-{index + 1}"
        poll = report.attempt(f"poll --once, SQLite{label}", functools.partial(
            measure_poll, dovecot, user, f"sqlite:///{root / 'desk.sqlite3'}", root,
            "poll --once, SQLite", args.n))
        if floor is not None and poll is not None:
            report.pairs.append((floor, poll))
    if report.pairs:
        report.floors["modern"] = _median_run([floor for floor, _ in report.pairs])
        report.sqlite = _median_run([poll for _, poll in report.pairs])


def _median_run(runs: list[Throughput]) -> Throughput:
    """The run of median time (of an even number, the slower of the two in the middle)."""
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]


def _on_sqlite(measure: Callable[[Dovecot, Path, str, int], T], dovecot: Dovecot, root: Path,
               mails: int) -> Callable[[], T]:
    """A service phase on a SQLite database of its own under `root`."""
    return lambda: measure(dovecot, root, f"sqlite:///{root / 'desk.sqlite3'}", mails)


def _postgres_poll(dovecot: Dovecot, user: str, work: Path, n: int) -> Throughput:
    with postgres_database() as url:
        return measure_poll(dovecot, user, url, work / "postgres", "poll --once, PostgreSQL", n)


def _small_poll(dovecot: Dovecot, work: Path, n: int) -> Throughput:
    user = dovecot.new_user("benchsmall")
    root = work / "small"
    dovecot.load(user, iter_corpus(n))
    return measure_poll(dovecot, user, f"sqlite:///{root / 'd.sqlite3'}", root,
                        "poll --once, SQLite", n)


# -- the table ------------------------------------------------------------------------------------


def render(report: Report, args: argparse.Namespace) -> str:
    rows: list[tuple[str, str, str]] = []
    n = report.n
    rows.append(("corpus", f"{n} mails, {report.corpus_mib:.0f} MiB, loaded in "
                 f"{report.loaded_seconds:.1f} s", ""))
    for mode, label in (("fetch", "floor: fetch only"),
                        ("compat32", "floor: fetch + email (compat32)"),
                        ("modern", "floor: fetch + email (modern policy)")):
        if mode in report.floors:
            rows.append((label, _rate(report.floors[mode]), ""))
    modern = report.floors.get("modern")
    compat = report.floors.get("compat32")
    if len(report.pairs) > 1:
        rows.append(("floor (modern policy), each pair", ", ".join(
            f"{floor.seconds:.1f} s" for floor, _ in report.pairs), ""))
    if report.sqlite:
        s = report.sqlite
        rows.append(("poll --once, SQLite", _rate(s) + f"; {s.detail}", ""))
        if len(report.pairs) > 1:
            rows.append(("poll --once, SQLite, each pair", ", ".join(
                f"{poll.seconds:.1f} s" for _, poll in report.pairs), ""))
            ratios = sorted(floor.seconds / poll.seconds for floor, poll in report.pairs)
            ratio = statistics.median(ratios)
            each = ", ".join(f"{r:.2f}" for r in ratios)
            rows.append(("ratio SQLite / modern floor", f"{ratio:.2f}, the median of "
                         f"{len(ratios)} pairs run back to back ({each})",
                         _met(ratio >= 1.0, "≥ 1.0")))
        elif modern:
            ratio = s.rate / modern.rate
            rows.append(("ratio SQLite / modern floor", f"{ratio:.2f}",
                         _met(ratio >= 1.0, "≥ 1.0")))
        if compat:
            ratio = s.rate / compat.rate
            rows.append(("ratio SQLite / compat32 floor", f"{ratio:.2f}",
                         _met(ratio >= 0.5, "aim ≥ 0.5")))
    if report.unacknowledged:
        u = report.unacknowledged
        versus = f"; {modern.seconds / u.seconds:.2f} × the modern floor's speed" \
            if modern else ""
        rows.append(("poll --once, SQLite, acknowledgements off",
                     _rate(u) + f"{versus} (for reference: what acknowledging costs)",
                     ""))
    if report.postgres:
        p, beside = report.postgres, report.postgres_pair
        rows.append(("poll --once, PostgreSQL", _rate(p), ""))
        if beside is not None:
            rows.append(("poll --once, SQLite, just before it", _rate(beside), ""))
        median = None if report.sqlite is None else p.seconds / report.sqlite.seconds
        if beside is not None:
            pg_ratio: float | None = p.seconds / beside.seconds
            how = f"{p.seconds / beside.seconds:.2f}, run back to back"
            if median is not None:
                how += f"; against the pairs' median SQLite poll, {median:.2f}"
        else:  # the SQLite poll beside it failed (reported below): the pairs' median instead
            pg_ratio = median
            how = f"{median:.2f}, against the pairs' median SQLite poll" if median else ""
        if pg_ratio is not None:
            rows.append(("time PostgreSQL / SQLite", how, _met(pg_ratio <= 1.5, "≤ 1.5")))
    if report.small and report.sqlite:
        # The largest peak of the polls of N, against the smaller backlog's.
        small = report.small
        large = max((poll for _, poll in report.pairs), key=lambda poll: poll.peak_rss_mib,
                    default=report.sqlite)
        ratio = large.peak_rss_mib / small.peak_rss_mib
        rows.append((f"peak RSS, poll of {small.mails}", f"{small.peak_rss_mib:.0f} MiB", ""))
        rows.append((f"peak RSS, poll of {large.mails}", f"{large.peak_rss_mib:.0f} MiB "
                     f"({ratio:.2f} × the {small.mails}-mail run)", _met(ratio <= 1.2, "≤ 1.2 ×")))
    elif report.sqlite:
        rows.append((f"peak RSS, poll of {report.sqlite.mails}",
                     f"{report.sqlite.peak_rss_mib:.0f} MiB", ""))
    if report.postgres:
        rows.append((f"peak RSS, poll of {report.postgres.mails} (PostgreSQL)",
                     f"{report.postgres.peak_rss_mib:.0f} MiB", ""))
    if report.big:
        rows.append((f"peak RSS, one {args.big_mb} MB attachment",
                     f"{report.big.peak_rss_mib:.0f} MiB ({report.big.seconds:.1f} s)",
                     _met(report.big.peak_rss_mib < 150, "< 150 MiB")
                     if args.big_mb >= 30 else "< 150 MiB at 30 MB"))
    if report.over_limit:
        rows.append((f"peak RSS, one {args.over_limit_mb} MB mail over the size limit",
                     f"{report.over_limit.peak_rss_mib:.0f} MiB "
                     f"({report.over_limit.seconds:.1f} s; quarantined unparsed)", ""))
    if report.idle:
        rows.append(("Dovecot IDLE notification alone",
                     f"p50 {percentile(report.idle, 50) * 1000:.0f} ms, p95 "
                     f"{percentile(report.idle, 95) * 1000:.0f} ms", ""))
    if report.latency:
        lat = report.latency
        rows.append(("append → ack accepted (`run`, IDLE)", describe(lat),
                     _met(lat.p95 <= 1.0 and not lat.missing, "p95 ≤ 1 s")))
        rows.append(("peak RSS, `complaints run`", f"{lat.peak_rss_mib:.0f} MiB", ""))
    if report.soak:
        rows.append((f"resident memory, `run` over {report.soak.mails} mails "
                     "(with its workers)", describe_soak(report.soak), ""))
    rows += [("**failed**", failure.replace("|", "/").replace("\n", " "), "")
             for failure in report.failures]
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'measure':<{width}} | result | target |", f"|{'-' * (width + 2)}|---|---|"]
    lines += [f"| {a:<{width}} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def _rate(t: Throughput) -> str:
    inner = f", {t.mails / t.inner_seconds:,.0f}/s inside" if t.inner_seconds else ""
    cpu = f"; {t.cpu}" if t.cpu else ""
    return (f"{t.rate:,.0f} mails/s ({t.mails} in {t.seconds:.1f} s{inner}; "
            f"peak RSS {t.peak_rss_mib:.0f} MiB{cpu})")


def _met(ok: bool, target: str) -> str:
    return f"{target}: {'met' if ok else '**not met**'}"


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    dovecot = _version(["dovecot", "--version"])
    import sqlite3

    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} cores{memory}; "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
            f"Dovecot {dovecot} on loopback")


def _version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.split()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def append_results(path: Path, table: str, load: str) -> None:
    """Append a dated section; everything already in the file is kept as it is."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:])
    section = (f"\n## Run of {now}\n\n{machine()}; {load}.\n`{command.strip()}`\n\n"
               f"{table}\n")
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    path.write_text(existing.rstrip("\n") + "\n" + section, encoding="utf-8")


# -- helpers ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="complaints-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _counting(raws: Iterator[bytes], sizes: list[int]) -> Iterator[bytes]:
    for raw in raws:
        sizes.append(len(raw))
        yield raw


def _say(text: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
