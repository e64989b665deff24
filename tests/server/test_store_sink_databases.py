"""The store sink's prepared statements on both databases it may write: SQLite and PostgreSQL."""

from __future__ import annotations

from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Event, Session
from kilometers.store import db, queries, rollups
from kilometers.store.writer import StoreSink


def test_batches_rollups_and_counts_on_either_database(store_url: str) -> None:
    session = Session(command=["srv"], cwd="/tmp", name="srv")
    sink = StoreSink(store_url)
    sink.on_session_start(session)
    minute = 60_000_000_000
    for b in range(3):
        batch = []
        for i in range(4):
            ts = (10 + i) * minute + b * 1_000_000_000  # every batch adds to the same 4 minutes
            request = Event(session.id, ts, C2S, "request", 100, '{"id":1}', method="tools/call", tool="t")
            batch.append(request)
            batch.append(
                Event(
                    session.id,
                    ts + 2_000_000,
                    S2C,
                    "error" if i == 3 else "response",
                    50,
                    None,
                    method="tools/call",
                    tool="t",
                    latency_ms=2.0,
                    is_error=i == 3,
                    request_event_id=request.id,
                )
            )
        session.event_count += len(batch)
        session.error_count += 1
        sink.on_events(session, batch)
    sink.on_session_end(session)
    sink.close()
    assert sink.lost_events == 0
    engine = db.open_store(store_url)
    try:
        [stored] = queries.list_sessions(engine)
        assert (stored.event_count, stored.error_count, stored.dropped_events) == (24, 3, 0)
        events = queries.list_events(engine, queries.EventFilter(session_id=session.id), limit=100)
        assert len(events) == 24
        stats = rollups.stats(engine, "local", 0, 100 * minute, "minute")
        assert stats["totals"]["events"] == 24 and stats["totals"]["calls"] == 12
        assert stats["totals"]["errors"] == 3 and stats["totals"]["bytes"] == 12 * 150
        assert [s["events"] for s in stats["series"]] == [6, 6, 6, 6]
        assert stats["by_tool"][0]["server"] == "srv" and stats["by_tool"][0]["p50_ms"] is not None
        day = rollups.stats(engine, "local", 0, 100 * minute, "day")
        assert day["totals"]["events"] == 24
    finally:
        engine.dispose()
