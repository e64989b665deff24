"""An ``(org_id, tool, ts_ns)`` index on events: Search filtered by a tool reads that tool's
newest rows directly, instead of every row of the tool (``ix_events_tool``) sorted by time.

On SQLite a database that has planner statistics (``sqlite_stat1``, from an ``ANALYZE``) gets
them for the new index too: an index without statistics looks more selective to the planner
than the analysed ``(org_id, ts_ns)`` one, and it would take the plain newest-first reads onto
it. Without statistics at all, every index is judged alike and nothing needs doing.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_org_tool_ts", "events", ["org_id", "tool", "ts_ns"])
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        analysed = conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
        if analysed is not None:
            op.execute("ANALYZE ix_events_org_tool_ts")


def downgrade() -> None:
    op.drop_index("ix_events_org_tool_ts", table_name="events")
