"""Several workers on one database: worker registry, folder leases, thread claims.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 18:40:00

On PostgreSQL, case numbers move from the row-locked counter to a sequence (`case_numbers`,
continuing from the counter), so that workers never wait on each other to open a case.

Thread claims are filled from the messages already filed (each Message-ID to the case of its
earliest message), so a reply to mail filed before this upgrade still finds its case.
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workers',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('folder_leases',
    sa.Column('mailbox', sa.String(length=100), nullable=False),
    sa.Column('folder', sa.String(length=500), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=True),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('mailbox', 'folder')
    )
    op.create_table('thread_claims',
    sa.Column('message_id', sa.String(length=998), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('message_id')
    )
    with op.batch_alter_table('thread_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_thread_claims_case_id'), ['case_id'], unique=False)
    with op.batch_alter_table('poll_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=200), nullable=True))

    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE case_numbers")
        op.execute("SELECT setval('case_numbers', GREATEST(value, 1), value > 0) "
                   "FROM counters WHERE name = 'case'")

    # Each Message-ID to the case of its earliest filed message.
    op.execute(
        "INSERT INTO thread_claims (message_id, case_id, created_at) "
        "SELECT m.message_id, m.case_id, m.received_at FROM messages m "
        "WHERE m.id IN (SELECT MIN(id) FROM messages "
        "WHERE message_id IS NOT NULL AND case_id IS NOT NULL GROUP BY message_id)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE counters SET value = (SELECT CASE WHEN is_called THEN last_value "
                   "ELSE last_value - 1 END FROM case_numbers) WHERE name = 'case'")
        op.execute("DROP SEQUENCE case_numbers")
    with op.batch_alter_table('poll_runs', schema=None) as batch_op:
        batch_op.drop_column('worker')
    with op.batch_alter_table('thread_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_thread_claims_case_id'))
    op.drop_table('thread_claims')
    op.drop_table('folder_leases')
    op.drop_table('workers')
