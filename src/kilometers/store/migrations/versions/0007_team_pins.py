"""Team-wide pins: the tool definitions each developer's km was shown, per server identity
(``team_tools``, ``team_servers``), the key pair that signs an organization's approved pin set
(``pin_signing_keys``), and the organization setting ``redact_pii``.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("redact_pii", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "team_servers",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("server_key", sa.String(length=64), nullable=False),
        sa.Column("server", sa.String(length=200), nullable=False),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.Column("approved", sa.Text(), nullable=True),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("approved_ns", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("org_id", "server_key", name="pk_team_servers"),
    )
    op.create_table(
        "team_tools",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("server_key", sa.String(length=64), nullable=False),
        sa.Column("tool", sa.String(length=200), nullable=False),
        sa.Column("reporter", sa.String(length=320), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("first_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_ns", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("org_id", "server_key", "tool", "reporter", "sha256", name="pk_team_tools"),
    )
    op.create_table(
        "pin_signing_keys",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id"),
    )


def downgrade() -> None:
    op.drop_table("pin_signing_keys")
    op.drop_table("team_tools")
    op.drop_table("team_servers")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("redact_pii")
