"""Concurrent batches that share rollup rows and event ids, posted at the same moment to two real
`km serve` processes on one database (SQLite and PostgreSQL): none fails (no deadlock), every
event is stored exactly once, and the rollups, session counters and usage count exactly what was
stored (issue "Past one machine", item 3)."""

from __future__ import annotations

import os
import threading
from contextlib import ExitStack
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine, func, select

from kilometers.server import tenancy
from kilometers.store import rollups
from kilometers.store.schema import events, org_usage, sessions
from kilometers.store.schema import rollups as rollups_minute

from factory import bearer, session_batch
from km_helpers import km_serve

CALLS = 300
"""Calls per session: 602 events a batch, over ~5 minutes."""


def _twin(session: dict[str, Any], sent: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Another session that carries the same event ids and times as ``sent``, in reverse order:
    the batches conflict on every event, each one locking them in the opposite order."""
    other, _ = session_batch(1, name=name)
    return {"session": other, "events": [{**e, "session_id": other["id"]} for e in reversed(sent)]}


def _rollup_table(engine: Engine, org_id: str, table: Any) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.org_id == org_id)).mappings().all()
    return {tuple(r[k] for k in rollups.KEY): tuple(r[c] for c in rollups.COUNTS) for r in rows}


def test_concurrent_batches_sharing_rollups_and_events_store_each_event_once(
    store_url: str, engine: Engine
) -> None:
    org = tenancy.create_org(engine, "busy", "unlimited")
    key = tenancy.create_key(engine, org, "ingest")
    bodies: list[dict[str, Any]] = []
    for n in range(3):  # the same server, tools, minutes and latencies: the same rollup rows
        session, sent = session_batch(CALLS, name="filesystem", error_every=5 + n)
        bodies += [{"session": session, "events": sent}] * 2  # each re-sent at the same moment
    for _ in range(2):
        session, sent = session_batch(CALLS, name="filesystem")
        bodies += [{"session": session, "events": sent}, _twin(session, sent, "filesystem")]
    posted = {(e["id"], e["ts"]) for b in bodies for e in b["events"]}
    encoded = [orjson.dumps(b) for b in bodies]
    start = threading.Barrier(len(encoded))
    answers: list[httpx.Response] = []

    with ExitStack() as stack:  # two processes on one database
        bases = [stack.enter_context(km_serve(store_url, env=dict(os.environ))) for _ in range(2)]

        def post(i: int) -> None:
            with httpx.Client(base_url=bases[i % 2], timeout=120) as client:
                start.wait()
                answers.append(client.post("/api/v1/events/batch", content=encoded[i], headers=bearer(key)))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(len(encoded))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    failed = [f"{a.status_code} {a.text[:300]}" for a in answers if a.status_code != 200]
    assert len(answers) == len(encoded) and not failed, failed
    results = [a.json() for a in answers]
    assert all(r["errors"] == [] for r in results)
    accepted = sum(r["accepted"] for r in results)
    assert accepted + sum(r["duplicates"] for r in results) == sum(len(b["events"]) for b in bodies)
    with engine.connect() as conn:
        stored = conn.execute(select(events).where(events.c.org_id == org.id)).mappings().all()
        counted = conn.execute(
            select(func.sum(sessions.c.event_count), func.sum(sessions.c.error_count)).where(
                sessions.c.org_id == org.id
            )
        ).one()
        used = conn.execute(select(func.sum(org_usage.c.events)).where(org_usage.c.org_id == org.id)).scalar()
    assert len(stored) == len(posted) == accepted == used  # exactly once
    assert len({r["id"] for r in stored}) == len(stored)
    assert tuple(counted) == (len(stored), sum(1 for r in stored if r["is_error"]))

    # the rollups hold exactly what the stored events add up to, at every level
    expected = rollups.rollup_rows(org.id, "filesystem", [dict(r) for r in stored])
    for table, width in rollups.LEVELS:
        merged = rollups.coarsen(expected, width)
        want = {tuple(r[k] for k in rollups.KEY): tuple(r[c] for c in rollups.COUNTS) for r in merged}
        got = _rollup_table(engine, org.id, table)
        assert got.keys() == want.keys(), table.name
        for k, counts in want.items():
            assert got[k][:4] == counts[:4], (table.name, k)
            assert abs(got[k][4] - counts[4]) < 1e-6 * max(1.0, counts[4]), (table.name, k)
    assert sum(v[0] for v in _rollup_table(engine, org.id, rollups_minute).values()) == len(stored)
