"""Time-driven case changes, with "now" passed in: resolved cases close after a quiet period.

`complaints run` calls `tick` every few minutes and `complaints tick` does it once (for cron);
both are safe to run at the same time, since each change is one UPDATE guarded by its condition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from processor.config import Settings
from processor.db import session_scope
from processor.db.models import Case
from processor.db.store import add_event

log = logging.getLogger("processor.scheduler")


@dataclass(frozen=True, slots=True)
class TickResult:
    closed: tuple[str, ...]


def tick(engine: Engine, settings: Settings, now: datetime) -> TickResult:
    """Close resolved cases nobody wrote to for `lifecycle.auto_close_days`."""
    cutoff = now - timedelta(days=settings.lifecycle.auto_close_days)
    closed = []
    with session_scope(engine) as session:
        due = session.scalars(select(Case).where(
            Case.status == "resolved", Case.resolved_at <= cutoff).limit(1000)
            .with_for_update(skip_locked=True))
        for case in due:
            if case.last_inbound_at and case.last_inbound_at > case.resolved_at:  # type: ignore[operator]
                continue  # a reply after the resolution reopened or linked it; not quiet
            case.status, case.closed_at, case.updated_at = "closed", now, now
            add_event(session, case, "status-changed", at=now, actor="system",
                      reason=f"no reply for {settings.lifecycle.auto_close_days} days after "
                             "resolution", **{"from": "resolved", "to": "closed"})
            closed.append(case.reference)
    if closed:
        log.info("closed %d resolved cases after %d quiet days", len(closed),
                 settings.lifecycle.auto_close_days)
    return TickResult(tuple(closed))
