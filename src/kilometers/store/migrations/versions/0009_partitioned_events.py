"""PostgreSQL: the events table becomes range-partitioned by ``ts_ns``, one partition per month
(see kilometers/store/partitions.py). SQLite keeps the plain table (nothing to do).

An installation holding data is converted in this one transaction: the table is renamed aside,
the partitioned table created with the same columns, sequence and indexes, a partition made for
every month that holds events (and the months ahead), the rows copied, the old table dropped.
PostgreSQL's DDL is transactional: if the step is interrupted, nothing changed, and running
`km db upgrade` again starts it over. Ingestion waits meanwhile (the table is locked); see
docs/deploy.md for the time it takes.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import time

from alembic import op
from sqlalchemy import text

from kilometers.store import partitions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_events_org_session_ts": "(org_id, session_id, ts_ns)",
    "ix_events_org_ts": "(org_id, ts_ns)",
    "ix_events_method": "(method)",
    "ix_events_tool": "(tool)",
    "ix_events_org_risk": "(org_id, risk_score)",
    "ix_events_org_risky_ts": "(org_id, ts_ns) WHERE risk_score >= 1",
}


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql" or partitions.partitioned(conn):
        return
    sequence = conn.execute(text("SELECT pg_get_serial_sequence('events', 'seq')")).scalar()
    op.execute("ALTER TABLE events RENAME TO events_unpartitioned")
    op.execute("ALTER TABLE events_unpartitioned RENAME CONSTRAINT uq_events_org_id TO uq_events_org_id_old")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_old")
    op.execute(
        "CREATE TABLE events (LIKE events_unpartitioned INCLUDING DEFAULTS, "
        "CONSTRAINT pk_events PRIMARY KEY (seq, ts_ns), "
        "CONSTRAINT uq_events_org_id UNIQUE (org_id, id, ts_ns)) PARTITION BY RANGE (ts_ns)"
    )
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON events {columns}")
    op.execute("CREATE TABLE events_default PARTITION OF events DEFAULT")
    now = time.time_ns()
    utc = "to_timestamp(ts_ns / 1e9) AT TIME ZONE 'UTC'"
    months = {
        (int(year), int(month))
        for year, month in conn.execute(
            text(
                f"SELECT DISTINCT extract(year FROM {utc}), extract(month FROM {utc}) "
                "FROM events_unpartitioned"
            )
        )
    }
    partitions.create(conn, {m for m in months if partitions.in_window(m, now)} | set(partitions.ahead(now)))
    op.execute("INSERT INTO events SELECT * FROM events_unpartitioned")
    if sequence:
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY events.seq")
    op.execute("DROP TABLE events_unpartitioned")


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql" or not partitions.partitioned(conn):
        return
    sequence = conn.execute(text("SELECT pg_get_serial_sequence('events', 'seq')")).scalar()
    op.execute("ALTER TABLE events RENAME TO events_partitioned")
    op.execute("ALTER TABLE events_partitioned RENAME CONSTRAINT uq_events_org_id TO uq_events_org_id_old")
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_old")
    op.execute(
        "CREATE TABLE events (LIKE events_partitioned INCLUDING DEFAULTS, PRIMARY KEY (seq), "
        "CONSTRAINT uq_events_org_id UNIQUE (org_id, id))"
    )
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON events {columns}")
    op.execute("INSERT INTO events SELECT * FROM events_partitioned")
    if sequence:
        op.execute(f"ALTER SEQUENCE {sequence} OWNED BY events.seq")
    op.execute("DROP TABLE events_partitioned")
