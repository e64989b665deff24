"""The org's hour rollups without the server/method/tool split (``rollups_org_hour``), backfilled
from ``rollups_hour``: the series of a statistics window in hour buckets reads these (ten times
the data, issue 17). A week at 10M events is ~7,400 rows instead of ~25,000. Without rowid on
SQLite: a window's rows are one contiguous read in key order.

The backfill sums the hour table (not the events), so it takes a few seconds whatever the number
of events; from then on every batch adds to the new table with the others.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COUNTS = ("events", "requests", "errors", "bytes", "latency_sum")


def upgrade() -> None:
    op.create_table(
        "rollups_org_hour",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "minute", "bin", name="pk_rollups_org_hour"),
        sqlite_with_rowid=False,
    )
    sums = ", ".join(f"SUM({c})" for c in COUNTS)
    op.execute(
        f"INSERT INTO rollups_org_hour (org_id, minute, bin, {', '.join(COUNTS)}) "
        f"SELECT org_id, minute, bin, {sums} FROM rollups_hour GROUP BY org_id, minute, bin"
    )


def downgrade() -> None:
    op.drop_table("rollups_org_hour")
