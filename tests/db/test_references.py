"""Case references stay unique when several writers open cases at the same moment."""

from __future__ import annotations

import threading

from processor.db import open_database, session_scope, upgrade_schema
from processor.db.store import allocate_case_numbers


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
                got = list(allocate_case_numbers(session, 2))
            with lock:
                numbers.extend(got)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert sorted(numbers) == list(range(1, 201))
