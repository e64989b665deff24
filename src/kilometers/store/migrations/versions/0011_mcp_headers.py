"""The Streamable HTTP headers that mirror a request's body (MCP 2026-07-28: ``Mcp-Method``,
``Mcp-Name``, ``Mcp-Param-*``), kept on the request's event as JSON.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("mcp_headers", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("mcp_headers")
