from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from processor.db import open_database, session_scope, upgrade_schema
from tests.digest.fixture import build_desk


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An empty database of each kind, built by the migrations."""
    engine = open_database(db_url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def desk(engine: Engine) -> Engine:
    """The hand-computed desk of tests/digest/fixture.py."""
    with session_scope(engine) as session:
        build_desk(session)
    return engine
