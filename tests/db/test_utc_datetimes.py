"""UTC datetimes on SQLite: stored in exactly the text form SQLAlchemy's DATETIME writes (the
columns are compared as text, and rows written before must sort with rows written after),
and read back as the same instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME

from processor.db.models import UtcDateTime

CHINA = timezone(timedelta(hours=8))
INSTANTS = [
    datetime(2026, 11, 30, 5, 55, 17, 123456, tzinfo=UTC),
    datetime(2026, 11, 30, 5, 55, 17, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=CHINA),  # the day before, in UTC
    datetime(999, 3, 4, 5, 6, 7, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.parametrize("instant", INSTANTS)
def test_the_text_is_what_sqlalchemys_datetime_writes_for_the_utc_instant(
        instant: datetime) -> None:
    ours = UtcDateTime().bind_processor(sqlite.dialect())
    theirs = DATETIME().bind_processor(sqlite.dialect())
    assert ours is not None and theirs is not None
    assert ours(instant) == theirs(instant.astimezone(UTC).replace(tzinfo=None))


def test_the_last_value_kept_never_answers_for_another() -> None:
    """The processor keeps the last datetime's text (a batch binds its `now` many times):
    any other value, even between two uses of the same one, gets its own text."""
    ours = UtcDateTime().bind_processor(sqlite.dialect())
    theirs = DATETIME().bind_processor(sqlite.dialect())
    assert ours is not None and theirs is not None
    sequence = [INSTANTS[0], INSTANTS[0], INSTANTS[2], INSTANTS[0], None, INSTANTS[2],
                INSTANTS[0].replace(microsecond=1), INSTANTS[2].astimezone(UTC)]
    assert [ours(v) for v in sequence] == [
        None if v is None else theirs(v.astimezone(UTC).replace(tzinfo=None)) for v in sequence]


def test_a_naive_datetime_is_refused_and_none_stays_none() -> None:
    ours = UtcDateTime().bind_processor(sqlite.dialect())
    assert ours is not None and ours(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(datetime(2026, 11, 30, 5, 55))


def test_stored_and_read_back_the_same_instants_in_the_same_order() -> None:
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", UtcDateTime()))
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"at": at} for at in INSTANTS])
        read = list(connection.scalars(select(table.c.at).order_by(table.c.at)))
    assert read == sorted(INSTANTS)
    assert all(at.tzinfo is UTC for at in read)
