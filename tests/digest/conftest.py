from __future__ import annotations

import pytest
from sqlalchemy import Engine

from processor.db import session_scope
from tests.digest.fixture import build_desk


@pytest.fixture
def desk(engine: Engine) -> Engine:
    """The hand-computed desk of tests/digest/fixture.py."""
    with session_scope(engine) as session:
        build_desk(session)
    return engine
