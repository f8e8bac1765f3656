"""Index for the per-minute ceiling of automatic mail: outbox rows by creation time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 19:20:00

Outbox rows are kept after sending (they are the record of what the desk said), so the count
of automatic mail created in the last minute, asked once per batch and once per mail filed by
the service, had read the whole table: its cost grew with every mail the desk ever sent.
With (created_at, automatic) the count reads only the last minute's rows, from the index alone.
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_created_automatic', ['created_at', 'automatic'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_created_automatic')
