"""Benchmark of the daily digest on a large desk: 1,000,000 cases and 5,000,000 messages.

The database is built by the migrations, then filled in bulk by the database itself
(INSERT ... SELECT over a recursive CTE on SQLite, over generate_series on PostgreSQL), so
building takes a few minutes, not hours. Then `collect_digest` is timed for the last day.

    python benchmarks/digest_bench.py                       # SQLite in a temporary file
    python benchmarks/digest_bench.py --url postgresql://postgres@127.0.0.1:5432/digest_bench \
        --create                                            # creates, fills, times, drops

Two years of cases, about 1,370 a day; each is resolved 1 to 20 days after it opened and
closed a week later (about 14,000 are open at the end); one in 200 is tagged regulator, one
in 500 is an appeal, one in 300 reopened.
Generated data is never committed; the temporary file or database is removed afterwards
unless --keep is given.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from processor.blobstore import fsync_path  # noqa: E402
from processor.config import settings_from_mapping  # noqa: E402
from processor.db import digest_queries as q  # noqa: E402
from processor.db import open_database, session_scope, upgrade_schema  # noqa: E402
from processor.digest import collect_digest, render_digest  # noqa: E402

END = datetime(2026, 11, 28, tzinfo=UTC)  # 08:00 in Asia/Shanghai
SPAN_DAYS = 730
CATEGORIES = ("billing", "technical-fault", "agent-conduct", "delivery", "privacy", "refund",
              "network", "other")


def _case_columns(n: str, h: str, fmt: Callable[[str], str], start: int, step: int,
                  true: str, false: str, json_empty: str, json_regulator: str) -> str:
    """The SELECT list that makes case number `n` (h: a hash of n) in either dialect."""
    opened = f"({start} + {n} * {step})"
    now = int(END.timestamp())
    age_days = f"(({now} - {opened}) / 86400)"
    resolved = f"({opened} + (1 + {h} % 20) * 86400)"
    closed = f"({resolved} + 7 * 86400)"
    is_resolved, is_closed = f"{resolved} < {now}", f"{closed} < {now}"
    answered = f"NOT ({age_days} < 3 AND {h} % 5 = 0)"
    first = f"({opened} + (1 + {h} % 40) * 3600)"
    categories = " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(CATEGORIES))
    return ",\n".join([
        f"{n}",
        "'C-' || lpad_ref",
        f"CASE WHEN {is_closed} THEN 'closed' WHEN {is_resolved} THEN 'resolved' "
        f"ELSE (CASE {h} % 3 WHEN 0 THEN 'new' WHEN 1 THEN 'open' ELSE 'pending' END) END",
        f"CASE {n} % 3 WHEN 0 THEN 'complaints' WHEN 1 THEN 'brand2' ELSE 'brand3' END",
        f"'user' || ({h} % 400000) || '@example.com'",
        "''",
        f"'Complaint ' || {n}",
        "'zh'",
        f"CASE {h} % 8 {categories} END",
        f"CASE WHEN {h} % 10 = 0 THEN 'urgent' WHEN {h} % 10 < 3 THEN 'high' ELSE 'normal' END",
        "24",
        f"CASE WHEN {h} % 200 = 0 THEN {json_regulator} ELSE {json_empty} END",
        "'{}'" if json_empty == "'[]'" else "'{}'::json",
        fmt(opened),
        fmt(opened),
        fmt(f"({opened} + 86400)"),
        f"CASE WHEN {answered} THEN {fmt(first)} END",
        f"CASE WHEN {is_resolved} THEN {fmt(resolved)} END",
        f"CASE WHEN {is_closed} THEN {fmt(closed)} END",
        f"CASE WHEN {answered} AND {h} % 4 = 0 THEN {fmt(f'({first} + 7200)')} "
        f"ELSE {fmt(opened)} END",
        f"CASE WHEN {answered} THEN {fmt(first)} END",
        f"CASE WHEN {h} % 300 = 0 THEN 1 ELSE 0 END",
        f"CASE WHEN {h} % 500 = 1 THEN {true} ELSE {false} END",
        f"CASE WHEN {h} % 500 = 1 AND {n} > 1000 THEN {n} - 1000 END",
        f"CASE WHEN {h} % 500 = 1 THEN 'appeal' END",
    ])


CASE_COLUMNS = ("id, reference, status, mailbox, complainant_address, complainant_name, subject, "
                "language, category, priority, sla_hours, tags, details, opened_at, updated_at, "
                "first_response_due_at, first_response_at, resolved_at, closed_at, "
                "last_inbound_at, last_outbound_at, reopened_count, is_appeal, parent_case_id, "
                "link_kind")
MESSAGE_COLUMNS = ('id, case_id, dedup_key, direction, author_role, message_id, "references", '
                   "subject, from_address, from_name, to_addresses, cc_addresses, received_by, "
                   "received_at, language, text, new_text, auto_submitted, defects, size, "
                   "raw_sha256")


def _start_and_step(cases: int) -> tuple[int, int]:
    """Cases `step` seconds apart, the last one a minute before END."""
    step = SPAN_DAYS * 86400 // cases
    return int(END.timestamp()) - 60 - cases * step, step


def build_sqlite(url: str, cases: int, per_case: int) -> None:
    import sqlite3

    path = make_url(url).database
    assert path
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")  # no multi-GB WAL while loading
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    start, step = _start_and_step(cases)

    def fmt(seconds: str) -> str:
        return f"strftime('%Y-%m-%d %H:%M:%S', {seconds}, 'unixepoch') || '.000000'"

    h = "((n * 2654435761) % 1000003)"
    columns = _case_columns("n", h, fmt, start, step, "1", "0", "'[]'", "'[\"regulator\"]'")
    columns = columns.replace("'C-' || lpad_ref", "'C-' || printf('%07d', n)")
    series = "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {})"
    conn.execute("BEGIN")
    _timed("cases", lambda: conn.execute(
        f"{series.format(cases)} INSERT INTO cases ({CASE_COLUMNS}) SELECT {columns} FROM s"))
    _timed("events", lambda: conn.execute(
        f"""{series.format(cases)} INSERT INTO events (case_id, at, actor, kind, data)
        SELECT n, {fmt(f'({start} + n * {step})')}, 'system', 'case-opened', '{{}}' FROM s
        UNION ALL
        SELECT n, {fmt(f'({start} + n * {step} + 5 * 86400)')}, 'system', 'reopened',
               '{{"from": "resolved"}}' FROM s WHERE {h} % 300 = 0"""))
    m = "m"
    case_of = f"(({m} - 1) / {per_case} + 1)"
    _timed("messages", lambda: conn.execute(
        f"""WITH RECURSIVE s(m) AS (SELECT 1 UNION ALL SELECT m + 1 FROM s
                                    WHERE m < {cases * per_case})
        INSERT INTO messages ({MESSAGE_COLUMNS})
        SELECT m, {case_of}, 'k' || m, CASE WHEN m % 2 = 1 THEN 'in' ELSE 'out' END,
               CASE WHEN m % 2 = 1 THEN 'complainant' ELSE 'staff' END,
               '<m' || m || '@example.net>', '[]', 'Complaint ' || {case_of},
               'user@example.com', '', '[]', '[]', '[]',
               {fmt(f'({start} + {case_of} * {step} + (m % {per_case}) * 3600)')}, 'zh',
               'The complaint text of message ' || m, '', 0, '[]', 2048, 'x' FROM s"""))
    _timed("side tables", lambda: _side_tables_sqlite(conn))
    conn.execute("COMMIT")
    # Leave it as the service keeps it: in WAL mode, and on disk rather than gigabytes of
    # dirty pages loaded without syncing, which the first digest would otherwise wait for.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    _timed("flushed to disk", lambda: fsync_path(path))


def _side_tables_sqlite(conn: object) -> None:
    execute = conn.execute  # type: ignore[attr-defined]
    execute("""INSERT INTO quarantine (mailbox, folder, stage, reason, status, created_at, size)
               VALUES ('complaints', 'INBOX', 'parse', 'too big', 'held',
                       '2026-11-27 03:00:00.000000', 0)""")
    execute("""INSERT INTO outbox (kind, automatic, message_id, envelope_from, recipient,
                                   recipients, subject, raw, status, attempts, next_attempt_at,
                                   created_at)
               VALUES ('ack', 1, '<f@x.invalid>', '', 'a@example.com', '[]', '', x'', 'failed',
                       8, '2026-11-27 03:00:00.000000', '2026-11-27 03:00:00.000000')""")


def build_postgres(url: str, cases: int, per_case: int) -> None:
    engine = sa.create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    start, step = _start_and_step(cases)

    def fmt(seconds: str) -> str:
        return f"to_timestamp({seconds})"

    h = "((n::bigint * 2654435761) % 1000003)"
    columns = _case_columns("n", h, fmt, start, step, "true", "false", "'[]'::json",
                            "'[\"regulator\"]'::json")
    columns = columns.replace("'C-' || lpad_ref", "'C-' || lpad(n::text, 7, '0')")
    case_of = f"((m - 1) / {per_case} + 1)"
    with engine.begin() as conn:

        def run(sql: str) -> object:
            return conn.exec_driver_sql(sql.replace("%", "%%"))  # psycopg reads % as a placeholder

        _timed("cases", lambda: run(
            f"INSERT INTO cases ({CASE_COLUMNS}) SELECT {columns} "
            f"FROM generate_series(1, {cases}) AS n"))
        _timed("events", lambda: run(
            f"""INSERT INTO events (case_id, at, actor, kind, data)
            SELECT n, to_timestamp({start} + n * {step}), 'system', 'case-opened', '{{}}'::json
            FROM generate_series(1, {cases}) AS n
            UNION ALL
            SELECT n, to_timestamp({start} + n * {step} + 5 * 86400), 'system', 'reopened',
                   '{{"from": "resolved"}}'::json
            FROM generate_series(1, {cases}) AS n WHERE {h} % 300 = 0"""))
        _timed("messages", lambda: run(
            f"""INSERT INTO messages ({MESSAGE_COLUMNS})
            SELECT m, {case_of}, 'k' || m, CASE WHEN m % 2 = 1 THEN 'in' ELSE 'out' END,
                   CASE WHEN m % 2 = 1 THEN 'complainant' ELSE 'staff' END,
                   '<m' || m || '@example.net>', '[]'::json, 'Complaint ' || {case_of},
                   'user@example.com', '', '[]'::json, '[]'::json, '[]'::json,
                   to_timestamp({start} + {case_of} * {step} + (m % {per_case}) * 3600), 'zh',
                   'The complaint text of message ' || m, '', false, '[]'::json, 2048, 'x'
            FROM generate_series(1, {cases * per_case}) AS m"""))
        run("""INSERT INTO quarantine (mailbox, folder, stage, reason, status, created_at, size)
               VALUES ('complaints', 'INBOX', 'parse', 'too big', 'held', now(), 0)""")
        run("""INSERT INTO outbox (kind, automatic, message_id, envelope_from, recipient,
                                   recipients, subject, raw, status, attempts, next_attempt_at,
                                   created_at)
               VALUES ('ack', true, '<f@x.invalid>', '', 'a@example.com', '[]', '', '', 'failed',
                       8, now(), now())""")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # What autovacuum would do shortly after a bulk load; the planner needs the statistics.
        _timed("analyze", lambda: conn.exec_driver_sql("ANALYZE"))
    engine.dispose()


def _timed(label: str, action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    took = time.perf_counter() - began
    print(f"  {label:<28} {took:8.2f} s", flush=True)
    return took


def time_digest(url: str, runs: int) -> dict[str, float]:
    settings = settings_from_mapping({
        "digest": {"recipients": ["lead@example.com"], "language": "en"},
        "mailbox": {name: {"host": "127.0.0.1", "addresses": [f"{name}@example.com"]}
                    for name in ("complaints", "brand2", "brand3")}})
    start = END - timedelta(hours=24)
    engine = open_database(url)
    results: dict[str, float] = {}
    totals = []
    for run in range(runs):
        with session_scope(engine) as session:
            began = time.perf_counter()
            digest = collect_digest(session, settings, start, END)
            totals.append(time.perf_counter() - began)
            render_digest(digest, settings)
        print(f"  collect_digest run {run + 1}: {totals[-1]:.3f} s", flush=True)
    results["first"], results["median"] = totals[0], statistics.median(totals)
    d = digest.as_json()
    print(f"  figures: new {d['new']['total']}, open {d['open_total']}, "
          f"waiting {d['totals']['awaiting_staff']}, overdue {d['totals']['overdue']}, "
          f"resolved {d['resolved']}, closed {d['closed']}, "
          f"regulator {d['totals']['regulator']}, "
          f"first response median {d['first_response_hours']['median']} h", flush=True)
    for days in (30, 365):  # a past date: more cases were resolved after its end
        with session_scope(engine) as session:
            began = time.perf_counter()
            collect_digest(session, settings, start - timedelta(days=days),
                           END - timedelta(days=days))
            results[f"{days} days back"] = time.perf_counter() - began
        print(f"  collect_digest {days} days back: {results[f'{days} days back']:.3f} s")
    print("  per query (warm):")
    with session_scope(engine) as session:
        for label, call in [
            ("new by category/priority", lambda: q.new_by_category_and_priority(session, start,
                                                                                 END)),
            ("open total", lambda: q.open_total(session, END)),
            ("per mailbox", lambda: q.per_mailbox(session, start, END)),
            ("awaiting staff", lambda: q.awaiting_staff(session, END, 50)),
            ("overdue", lambda: q.overdue(session, END, 50)),
            ("due soon", lambda: q.due_soon(session, END, END + timedelta(hours=4), 50)),
            ("first response spread", lambda: q.first_response_spread(session, start, END)),
            ("resolution spread", lambda: q.resolution_spread(session, start, END)),
            ("reopened", lambda: q.reopened(session, start, END, 50)),
            ("appeals", lambda: q.appeals(session, start, END, 50)),
            ("regulator", lambda: q.regulator_open(session, END, 50)),
            ("resolved + closed", lambda: (q.resolved_count(session, start, END),
                                           q.closed_count(session, start, END))),
            ("repeat senders", lambda: q.repeat_senders(session, start, END, 50)),
        ]:
            results[label] = _timed(label, call)
    engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--messages-per-case", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--create", action="store_true",
                        help="PostgreSQL: create the database first and drop it afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--time-only", action="store_true",
                        help="only time the digest on an existing database (--url)")
    args = parser.parse_args()
    if args.time_only:
        time_digest(args.url, args.runs)
        return 0
    tmp = None
    url = args.url
    if url is None:
        tmp = tempfile.mkdtemp(prefix="digest-bench-")
        url = f"sqlite:///{tmp}/bench.sqlite3"
    is_pg = make_url(url).get_backend_name() == "postgresql"
    if is_pg and args.create:
        _admin(url, f'CREATE DATABASE "{make_url(url).database}"')
    try:
        print(f"building {args.cases:,} cases, {args.cases * args.messages_per_case:,} messages "
              f"in {make_url(url).render_as_string()}", flush=True)
        engine = open_database(url)
        upgrade_schema(engine)
        engine.dispose()
        build = build_postgres if is_pg else build_sqlite
        _timed("build total", lambda: build(url, args.cases, args.messages_per_case))
        # Timed in a new process, as cron or a systemd timer runs it.
        print("timing the digest in a new process", flush=True)
        subprocess.run([sys.executable, __file__, "--url", url, "--time-only",
                        "--runs", str(args.runs)], check=True)
    finally:
        if not args.keep:
            if is_pg and args.create:
                _admin(url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
            if tmp is not None:
                for path in Path(tmp).iterdir():
                    path.unlink()
                Path(tmp).rmdir()
    return 0


def _admin(url: str, sql: str) -> None:
    admin = sa.create_engine(make_url(url).set(drivername="postgresql+psycopg",
                                               database="postgres"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(sql)
    admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
