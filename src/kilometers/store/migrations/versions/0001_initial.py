"""Sessions and events.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SeqType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("transport", sa.String(32), nullable=False, server_default="stdio"),
        sa.Column("command", sa.Text, nullable=False, server_default="[]"),
        sa.Column("cwd", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("host", sa.String(255)),
        sa.Column("started_ns", sa.BigInteger, nullable=False),
        sa.Column("ended_ns", sa.BigInteger),
        sa.Column("exit_code", sa.Integer),
        sa.Column("client", sa.Text),
        sa.Column("server", sa.Text),
        sa.Column("protocol_version", sa.String(32)),
        sa.Column("capabilities", sa.Text),
        sa.Column("event_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dropped_events", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_sessions_started", "sessions", ["started_ns"])
    op.create_table(
        "events",
        sa.Column("seq", SeqType, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("direction", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("jsonrpc_id", sa.Text),
        sa.Column("method", sa.String(200)),
        sa.Column("tool", sa.String(200)),
        sa.Column("resource_uri", sa.Text),
        sa.Column("prompt_name", sa.String(200)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("is_error", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error_code", sa.Integer),
        sa.Column("error_message", sa.Text),
        sa.Column("truncated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("request_event_id", sa.String(36)),
        sa.Column("payload", sa.Text),
    )
    op.create_index("ix_events_session_ts", "events", ["session_id", "ts_ns"])
    op.create_index("ix_events_ts", "events", ["ts_ns"])
    op.create_index("ix_events_method", "events", ["method"])
    op.create_index("ix_events_tool", "events", ["tool"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("sessions")
