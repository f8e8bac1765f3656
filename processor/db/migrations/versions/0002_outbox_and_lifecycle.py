"""Outbox, suppressions, digest runs, and the case lifecycle columns.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:44:14.969375
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('suppressions',
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('address')
    )
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('automatic', sa.Boolean(), nullable=False),
    sa.Column('message_id', sa.String(length=998), nullable=False),
    sa.Column('envelope_from', sa.String(length=320), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_case', ['case_id'], unique=False)
        batch_op.create_index('ix_outbox_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_outbox_recipient_kind', ['recipient', 'kind', 'created_at'], unique=False)

    op.create_table('digest_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outbox_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['outbox_id'], ['outbox.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('period_end', name='uq_digest_runs_period_end')
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_response_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('first_response_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_outbound_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('reopened_count', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('is_appeal', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('parent_case_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('link_kind', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_cases_due', ['status', 'first_response_due_at'], unique=False)
        batch_op.create_index('ix_cases_parent', ['parent_case_id'], unique=False)
        batch_op.create_index('ix_cases_resolved_at', ['resolved_at'], unique=False)
        batch_op.create_foreign_key('fk_cases_parent_case_id', 'cases', ['parent_case_id'], ['id'])


