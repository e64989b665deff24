"""Linked calls (MCP 2026-07-28): ``call_id``, ``round`` and ``call_latency_ms`` on events (a
multi-round call's rounds, a task's updates, a request's progress and cancellation, a
subscription's notifications), with a partial index on the linked ones; the client's declared
capabilities and log level on sessions.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("call_id", sa.String(length=36), nullable=True))
        batch.add_column(sa.Column("round", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("call_latency_ms", sa.Float(), nullable=True))
    op.create_index(
        "ix_events_org_call",
        "events",
        ["org_id", "call_id"],
        sqlite_where=sa.text("call_id IS NOT NULL"),
        postgresql_where=sa.text("call_id IS NOT NULL"),
    )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("client_capabilities", sa.Text(), nullable=True))
        batch.add_column(sa.Column("log_level", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("log_level")
        batch.drop_column("client_capabilities")
    op.drop_index("ix_events_org_call", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("call_latency_ms")
        batch.drop_column("round")
        batch.drop_column("call_id")
