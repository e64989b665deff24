"""Security analysis: risk score, level and findings on events; pinned tool definitions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("risk_score", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("risk_level", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("findings", sa.Text(), nullable=True))
    op.create_index("ix_events_org_risk", "events", ["org_id", "risk_score"])
    op.create_table(
        "pins",
        sa.Column("org_id", sa.String(length=36), server_default="local", nullable=False),
        sa.Column("server", sa.String(length=200), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "server", name="pk_pins"),
    )


def downgrade() -> None:
    op.drop_table("pins")
    op.drop_index("ix_events_org_risk", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("findings")
        batch.drop_column("risk_level")
        batch.drop_column("risk_score")
