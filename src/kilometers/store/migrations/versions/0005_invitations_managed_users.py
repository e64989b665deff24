"""Invitations (memberships waiting for the user to accept) and the organization that created
each user in Settings (``users.managed_by``).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("managed_by", sa.String(length=36), nullable=True))
    op.create_table(
        "invitations",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("invited_by", sa.String(length=200), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "user_id", name="pk_invitations"),
    )
    op.create_index("ix_invitations_user", "invitations", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_invitations_user", table_name="invitations")
    op.drop_table("invitations")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("managed_by")
