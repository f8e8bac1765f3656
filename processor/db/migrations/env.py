"""Alembic environment: the engine comes from processor.db.migrate, never from an ini file."""

from alembic import context

from processor.db.models import Base

config = context.config
engine = config.attributes["engine"]

# Several workers may start at once and each run `complaints db upgrade` (docker/compose.yaml):
# on PostgreSQL they take turns, and the later ones find the schema current.
MIGRATION_LOCK = 0x636F6D706C61  # "compla"

with engine.connect() as connection:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
