"""Hour and day rollup tables (backfilled from the minute rollups); who created each API key;
a partial index on events with findings.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COUNTS = ("events", "requests", "errors", "bytes", "latency_sum")


def _create(name: str) -> None:
    op.create_table(
        name,
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("server", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=200), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "minute", "server", "method", "tool", "bin", name=f"pk_{name}"),
    )


def upgrade() -> None:
    for name, width in (("rollups_hour", 60), ("rollups_day", 1440)):
        _create(name)
        sums = ", ".join(f"SUM({c})" for c in COUNTS)
        op.execute(
            f"INSERT INTO {name} (org_id, minute, server, method, tool, bin, {', '.join(COUNTS)}) "
            f"SELECT org_id, (minute / {width}) * {width}, server, method, tool, bin, {sums} "
            f"FROM rollups GROUP BY org_id, (minute / {width}) * {width}, server, method, tool, bin"
        )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("created_by", sa.String(length=36), nullable=True))
    risky = sa.text("risk_score >= 1")
    op.create_index(
        "ix_events_org_risky_ts", "events", ["org_id", "ts_ns"], sqlite_where=risky, postgresql_where=risky
    )


def downgrade() -> None:
    op.drop_index("ix_events_org_risky_ts", table_name="events")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("created_by")
    op.drop_table("rollups_day")
    op.drop_table("rollups_hour")
