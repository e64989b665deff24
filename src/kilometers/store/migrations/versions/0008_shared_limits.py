"""Limits shared by every `km serve` process: the per-key token buckets of the rate limit
(``rate_buckets``), and on PostgreSQL a trigger that announces every change to API keys,
memberships and organizations on the ``km_auth`` channel, so that each process drops its cached
key lookups the moment a key is revoked, a member removed or a limit changed (whoever made the
change: the API, `km admin` or SQL).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

AUTH_TABLES = ("api_keys", "memberships", "organizations")


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION km_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN PERFORM pg_notify('km_auth', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table in AUTH_TABLES:
        op.execute(
            f"CREATE TRIGGER km_auth_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION km_auth_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in AUTH_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS km_auth_changed ON {table}")
        op.execute("DROP FUNCTION IF EXISTS km_auth_changed()")
    op.drop_table("rate_buckets")
