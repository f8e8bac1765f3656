"""The facts threading decides on (who is on a case) include what the batch filed so far,
without flushing it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from processor.casework import _facts
from processor.db import open_database, session_scope, upgrade_schema
from processor.db.models import Case, Message

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def _message(case: Case, sender: str, role: str, n: int) -> Message:
    return Message(case=case, dedup_key=f"k{n}", direction="in", author_role=role,
                   message_id=f"<m{n}@example.org>", references=[], subject="s",
                   from_address=sender, from_name="", to_addresses=[], cc_addresses=[],
                   received_by=[], received_at=NOW, text="", new_text="", size=1,
                   raw_sha256="0" * 64)


def _case(reference: str) -> Case:
    return Case(reference=reference, status="open", mailbox="m",
                complainant_address="a@example.org", opened_at=NOW, updated_at=NOW)


def test_participants_stored_and_pending_count_and_nothing_is_flushed(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade_schema(engine)
    with session_scope(engine) as session:
        stored = _case("C-000001")
        session.add(_message(stored, "b@example.org", "participant", 1))
        session.flush()  # b is on the case in the database
        session.add(_message(stored, "c@example.org", "participant", 2))  # pending
        session.add(_message(stored, "d@example.org", "stranger", 3))  # not a participant
        fresh = _case("C-000002")  # opened in this batch: no id yet
        session.add(_message(fresh, "e@example.org", "complainant", 4))
        facts = _facts(session, stored)
        assert facts is not None
        assert facts.participants == {"b@example.org", "c@example.org"}
        fresh_facts = _facts(session, fresh)
        assert fresh_facts is not None and fresh_facts.participants == {"e@example.org"}
        assert fresh.id is None and len(session.new) == 4  # nothing was flushed
    engine.dispose()
