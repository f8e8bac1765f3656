"""The database edge: engine and sessions, migrations, and the queries the pipeline needs."""

from processor.db.engine import (
    conflicts_as,
    is_concurrency_conflict,
    open_database,
    session_scope,
)
from processor.db.migrate import check_schema_current, upgrade_schema

__all__ = ["check_schema_current", "conflicts_as", "is_concurrency_conflict", "open_database",
           "session_scope", "upgrade_schema"]
