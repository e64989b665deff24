"""Two events indexes for ten times the data (issue 17):

- ``(org_id, tool, ts_ns)``: Search filtered by a tool reads that tool's newest rows directly,
  instead of every row of the tool (``ix_events_tool``) sorted by time;
- ``ix_events_org_risky_ts`` (only events with findings) also holds ``risk_score``: SQLite then
  counts the Overview's findings from the index alone (it read every such row of the table too;
  PostgreSQL's index-only scan did not need it).

On SQLite a database that has planner statistics (``sqlite_stat1``, from an ``ANALYZE``) gets
them for the new index too: an index without statistics looks more selective to the planner
than the analysed ``(org_id, ts_ns)`` one, and it would take the plain newest-first reads onto
it. Without statistics at all, every index is judged alike and nothing needs doing.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


RISKY = sa.text("risk_score >= 1")


def _risky_index(columns: list[str]) -> None:
    op.drop_index("ix_events_org_risky_ts", table_name="events")
    op.create_index("ix_events_org_risky_ts", "events", columns, sqlite_where=RISKY, postgresql_where=RISKY)


def upgrade() -> None:
    op.create_index("ix_events_org_tool_ts", "events", ["org_id", "tool", "ts_ns"])
    _risky_index(["org_id", "ts_ns", "risk_score"])
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        analysed = conn.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
        if analysed is not None:
            op.execute("ANALYZE ix_events_org_tool_ts")
            op.execute("ANALYZE ix_events_org_risky_ts")


def downgrade() -> None:
    _risky_index(["org_id", "ts_ns"])
    op.drop_index("ix_events_org_tool_ts", table_name="events")
