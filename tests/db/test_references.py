"""Case references stay unique when several writers open cases at the same moment, and on
SQLite the batch's reservation of numbers leaves no gap."""

from __future__ import annotations

import threading

from sqlalchemy import text

from processor.db import open_database, session_scope, upgrade_schema
from processor.db.store import CaseNumbers


def test_concurrent_writers_never_share_a_case_number(db_url: str) -> None:
    engine = open_database(db_url)
    upgrade_schema(engine)
    numbers: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def writer() -> None:
        start.wait()
        for _ in range(25):
            with session_scope(engine) as session:
                batch = CaseNumbers(session)
                batch.reserve(5)
                got = [batch.take(), batch.take()]
                batch.finish()
            with lock:
                numbers.extend(got)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert len(set(numbers)) == 200
    if db_url.startswith("sqlite"):  # gapless there; PostgreSQL's sequence may leave gaps
        assert sorted(numbers) == list(range(1, 201))


def test_sqlite_batch_gives_back_what_it_did_not_use(tmp_path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'desk.db'}")
    upgrade_schema(engine)
    with session_scope(engine) as session:
        batch = CaseNumbers(session)
        batch.reserve(10)
        assert [batch.take(), batch.take()] == [1, 2]
        mark = batch.mark()
        assert batch.take() == 3
        batch.rewind(mark)  # that mail was rolled back alone: its number is taken again
        assert batch.take() == 3
        batch.finish()
    with session_scope(engine) as session:
        assert session.execute(text("SELECT value FROM counters WHERE name = 'case'")
                               ).scalar_one() == 3
        batch = CaseNumbers(session)
        batch.reserve(1)
        assert batch.take() == 4
        try:
            batch.take()
        except RuntimeError as exc:
            assert "reservation" in str(exc)
        else:
            raise AssertionError("took a number beyond the reservation")
        batch.finish()
    engine.dispose()
