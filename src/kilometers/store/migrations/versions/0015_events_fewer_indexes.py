"""Fewer index writes per event (issues 11 and 17: the recording's and the ingest's cost).

Every stored event was written to nine B-trees. Two of them did not pay for their writes:

- ``ix_events_tool`` (``tool`` alone) is served by ``ix_events_org_tool_ts`` (revision 0012):
  every query that filters by tool also names the organization, and reads the newest rows first;
- ``ix_events_org_risk`` (``org_id, risk_score``) serves the findings, which read
  ``risk_score >= 0`` (or ``>= 1``): it becomes partial, ``WHERE risk_score IS NOT NULL``, so an
  event without a risk (most of them) is not written to it. Both databases prove that such a
  comparison implies the index's predicate.

On SQLite a database that has planner statistics gets them for the rebuilt index too (as in 0012).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

RISKY = sa.text("risk_score IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_events_tool", table_name="events")
    op.drop_index("ix_events_org_risk", table_name="events")
    op.create_index(
        "ix_events_org_risk", "events", ["org_id", "risk_score"], sqlite_where=RISKY, postgresql_where=RISKY
    )
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        analysed = conn.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
        if analysed is not None:
            op.execute("ANALYZE ix_events_org_risk")


def downgrade() -> None:
    op.drop_index("ix_events_org_risk", table_name="events")
    op.create_index("ix_events_org_risk", "events", ["org_id", "risk_score"])
    op.create_index("ix_events_tool", "events", ["tool"])
