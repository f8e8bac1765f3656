"""The per-minute ceiling on automatic mail counts only the last minute, from an index.

Outbox rows are kept after sending, so a count that read the table would grow with every mail
the desk ever sent, and it is asked once per batch and once per mail the service files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from processor.db.ledger import automatic_mail_last_minute
from processor.db.models import OutboxMail

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _outbox_row(index: int, created_at: datetime, automatic: bool) -> dict[str, object]:
    return {"kind": "ack", "automatic": automatic, "message_id": f"<{index}@desk.example>",
            "envelope_from": "", "recipient": f"c{index}@example.com", "recipients": [],
            "subject": "", "raw": b"", "status": "sent", "attempts": 1,
            "next_attempt_at": created_at, "created_at": created_at}


def _fill(engine: sa.Engine) -> None:
    old = [_outbox_row(i, NOW - timedelta(days=1, seconds=i), True) for i in range(3000)]
    recent = [_outbox_row(3000 + i, NOW - timedelta(seconds=10 + i), i % 3 != 0)
              for i in range(9)]  # six automatic, three written by staff
    edge = [_outbox_row(4000, NOW - timedelta(minutes=1), True),
            _outbox_row(4001, NOW - timedelta(minutes=1, microseconds=1), True)]
    with engine.begin() as connection:
        connection.execute(sa.insert(OutboxMail), old + recent + edge)
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE outbox")


def _plan(engine: sa.Engine) -> str:
    query = (sa.select(sa.func.count()).select_from(OutboxMail)
             .where(OutboxMail.created_at >= NOW - timedelta(minutes=1),
                    OutboxMail.automatic.is_(True)))
    with engine.connect() as connection:
        # The statement as the driver gets it; the plan does not depend on the values.
        compiled = query.compile(engine)
        values = {name: str(value) for name, value in compiled.params.items()}
        if engine.dialect.name == "sqlite":
            ordered = tuple(values[name] for name in compiled.positiontup or ())
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", ordered).all()
            return " ".join(str(row[-1]) for row in rows)
        rows = connection.exec_driver_sql(f"EXPLAIN {compiled}", values).all()
        return " ".join(row[0] for row in rows)


def test_counts_automatic_mail_of_the_last_minute_only(engine: sa.Engine) -> None:
    _fill(engine)
    with Session(engine) as session:
        # six recent automatic mails and the one exactly a minute old; not the older ones,
        # nor the three staff replies
        assert automatic_mail_last_minute(session, NOW) == 7
        assert automatic_mail_last_minute(session, NOW + timedelta(days=2)) == 0


def test_the_count_reads_the_index_not_the_table(engine: sa.Engine) -> None:
    _fill(engine)
    plan = _plan(engine)
    assert "ix_outbox_created_automatic" in plan, plan
    if engine.dialect.name == "sqlite":
        assert "COVERING INDEX" in plan, plan
