from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acknowledge.conftest import make_desk
from tests.schedule.helpers import Scene
from tests.servers import DovecotServer, SmtpSink


@pytest.fixture
def scene(tmp_path: Path, sqlite_url: str, dovecot: DovecotServer,
          smtp_delivering: SmtpSink) -> Iterator[Scene]:
    team = f"{dovecot.new_user('team')}@desk.example.com"
    lead = f"{dovecot.new_user('lead')}@desk.example.com"
    desk = make_desk(tmp_path, sqlite_url, dovecot, smtp_delivering,
                     staff={"domains": ["desk.example.com"], "notify": [team]},
                     lifecycle={"escalation_address": lead})
    yield Scene(desk, f"{dovecot.new_user('cust')}@customer.example", team,
                f"{dovecot.new_user('agent')}@desk.example.com", lead)
    desk.runtime.engine.dispose()
    desk.deployment.close()
