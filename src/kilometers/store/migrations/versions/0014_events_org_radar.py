"""The protocol radar from an index of the few messages it counts (issue 17, ten times the data).

The radar (the Overview's panel, ``GET /api/v1/radar``) counts, per session of the last 30 days,
the messages that show a deprecated feature: ``initialize``, ``ping``, sampling, roots, logging,
client progress. It used to find them through ``(org_id, session_id, ts_ns)``, reading every
event of every session in the window: 9.8 s at 10M events on SQLite, and the dashboard asked for
it on every Overview load. ``ix_events_org_radar`` holds only those messages (a partial index),
with the columns the count needs, so the radar reads a few index entries per session and no
rows; other inserts do not touch it.

On SQLite a database that has planner statistics gets them for the new index too (as in 0012).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# as kilometers.store.schema.RADAR_METHODS on the day of this revision (a migration keeps its own copy)
METHODS = (
    "initialize",
    "logging/setLevel",
    "notifications/message",
    "notifications/progress",
    "notifications/roots/list_changed",
    "ping",
    "roots/list",
    "sampling/createMessage",
)
WHERE = sa.text("method IN (" + ", ".join(f"'{m}'" for m in METHODS) + ")")


def upgrade() -> None:
    op.create_index(
        "ix_events_org_radar",
        "events",
        ["org_id", "method", "session_id", "direction", "kind"],
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        analysed = conn.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
        if analysed is not None:
            op.execute("ANALYZE ix_events_org_radar")


def downgrade() -> None:
    op.drop_index("ix_events_org_radar", table_name="events")
