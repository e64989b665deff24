"""Retention: drop each organization's data older than its ``retention_days``, in bulk.

One DELETE per table and organization, driven by the (org_id, time) indexes; the server runs
it periodically and `km admin prune` runs it on demand. On PostgreSQL, where events are
partitioned by month (:mod:`kilometers.store.partitions`), a month whose events have all expired
is dropped whole first, and the partitions ahead are created; the DELETE then only trims the
months that straddle an organization's cutoff.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, and_, delete, or_, select

from ..store import partitions
from ..store.rollups import trim_rollups
from ..store.schema import events, organizations, rate_buckets, sessions

DAY_NS = 86_400 * 10**9
IDLE_BUCKET_SECONDS = 3600.0
"""Rate-limit buckets unused this long are removed (any burst refills well within it)."""


def apply_retention(engine: Engine, now_ns: int | None = None, org_id: str | None = None) -> dict[str, int]:
    """Delete expired data; returns events removed per organization name."""
    now_ns = now_ns or time.time_ns()
    query = select(organizations.c.id, organizations.c.name, organizations.c.retention_days).where(
        organizations.c.retention_days.is_not(None)
    )
    if org_id is not None:
        query = query.where(organizations.c.id == org_id)
    removed: dict[str, int] = {}
    with engine.connect() as conn:
        orgs = conn.execute(query).all()
        everyone = conn.execute(select(organizations.c.id, organizations.c.retention_days)).all()
    partitions.create_ahead(engine, now_ns)
    with engine.begin() as conn:  # a bucket idle this long is full again: same as no row
        conn.execute(delete(rate_buckets).where(rate_buckets.c.updated < time.time() - IDLE_BUCKET_SECONDS))
    with engine.begin() as conn:
        if partitions.partitioned(conn):
            cutoffs = {oid: None if days is None else now_ns - int(days) * DAY_NS for oid, days in everyone}
            if org_id is not None:  # only this organization's expired data may go
                cutoffs = {oid: c if oid == org_id else None for oid, c in cutoffs.items()}
            dropped = partitions.drop_expired(conn, cutoffs)
        else:
            dropped = {}
    for oid, name, days in orgs:
        cutoff = now_ns - int(days) * DAY_NS
        with engine.begin() as conn:
            n = conn.execute(delete(events).where(events.c.org_id == oid, events.c.ts_ns < cutoff)).rowcount
            trim_rollups(conn, oid, cutoff // (60 * 10**9))
            ended_before = and_(sessions.c.ended_ns.is_not(None), sessions.c.ended_ns < cutoff)
            never_ended = and_(sessions.c.ended_ns.is_(None), sessions.c.started_ns < cutoff - 30 * DAY_NS)
            conn.execute(delete(sessions).where(sessions.c.org_id == oid, or_(ended_before, never_ended)))
        removed[name] = n + dropped.get(oid, 0)
    return removed
