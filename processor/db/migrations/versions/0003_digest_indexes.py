"""Indexes for the daily digest: resolved/closed with opening, first response, appeals, events.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 16:00:00
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index('ix_cases_resolved_opened', ['resolved_at', 'opened_at'],
                              unique=False)
        batch_op.create_index('ix_cases_closed_opened', ['closed_at', 'opened_at'], unique=False)
        batch_op.create_index('ix_cases_first_response',
                              ['first_response_at', 'first_response_due_at'], unique=False)
        batch_op.create_index('ix_cases_appeal_opened', ['is_appeal', 'opened_at'], unique=False)
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_kind_at', ['kind', 'at'], unique=False)
