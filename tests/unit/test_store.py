"""The recorder and the SQLite store sink, with a real SQLite database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Event, Session
from kilometers.recorder import Recorder
from kilometers.store import db, queries
from kilometers.store.writer import StoreSink


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _record(url: str, chunks: list[tuple[str, bytes]]) -> Session:
    session = Session(command=["srv", "--flag"], cwd="/tmp", name="srv")
    recorder = Recorder(Capture(session), [StoreSink(url)])
    recorder.start()
    for i, (direction, data) in enumerate(chunks):
        recorder.submit(direction, data, 1_000_000_000 + i * 1_000_000)  # type: ignore[arg-type]
    recorder.stop(exit_code=0, timeout=30)
    return session


def test_every_message_is_stored_and_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'km.db'}"
    chunks = []
    for i in range(2000):
        chunks.append(
            (C2S, _line({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "t"}}))
        )
        chunks.append((S2C, _line({"jsonrpc": "2.0", "id": i, "result": {"content": [{"type": "text"}]}})))
    session = _record(url, chunks)
    engine = db.open_store(url)
    [stored] = queries.list_sessions(engine)
    assert stored.id == session.id and stored.event_count == 4000 and stored.dropped_events == 0
    assert stored.exit_code == 0 and stored.ended_ns is not None and stored.command == ["srv", "--flag"]
    events = queries.list_events(engine, queries.EventFilter(session_id=session.id), limit=10_000)
    assert len(events) == 4000
    responses = [e for e in events if e.kind == "response"]
    assert all(e.request_event_id and e.latency_ms == 1.0 for e in responses)
    from kilometers.store import rollups

    local = rollups.stats(engine, "local", 0, 2 * 10**18, "day")  # km ui's charts read these rollups
    assert local["totals"]["events"] == 4000 and local["by_tool"][0]["calls"] == 2000
    [row] = queries.stats(engine, queries.EventFilter(session_id=session.id))
    assert (row.method, row.tool, row.count, row.errors) == ("tools/call", "t", 2000, 0)
    again = queries.get_event(engine, events[1].id[:30])
    assert again == events[1]
    assert queries.paired_event(engine, events[1]) == events[0]
    assert queries.paired_event(engine, events[0]) == events[1]


def test_store_schema_is_migrated_with_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'km.db'}"
    engine = db.open_store(url)
    assert db.current_revision(engine) == db.head_revision()
    db.ensure_current(engine)
    with sqlite3.connect(tmp_path / "km.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_out_of_date_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(db.SchemaOutOfDate, match="km db upgrade"):
        db.ensure_current(engine)


def test_store_on_a_path_that_is_a_file_counts_losses(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    session = _record(f"sqlite:///{blocker / 'km.db'}", [(C2S, _line({"jsonrpc": "2.0", "method": "n"}))] * 5)
    err = capfd.readouterr()
    assert err.out == ""
    assert err.err.count("cannot write the event store") == 1
    assert session.dropped_events == 5
    assert session.event_count == 5


def test_many_processes_opening_a_new_store_at_once(tmp_path: Path) -> None:
    """A client starting all its servers on first use: every km process gets a migrated store."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = f"from kilometers.store import db; db.open_store({url!r}); print('ok')"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [out.strip() for out, _ in results] == [b"ok"] * 6, [err for _, err in results]


def _event(session: Session, i: int, **fields: object) -> Event:
    return Event(session.id, 1_000_000_000 + i, C2S, "request", 100, '{"x":1}', method="m", **fields)  # type: ignore[arg-type]


def _counts(db_file: Path) -> tuple[int, int, int, int, int]:
    """(events, minute, hour, day and org hour rollup events) in a store."""
    with sqlite3.connect(db_file) as conn:
        return (
            conn.execute("SELECT count(*) FROM events").fetchone()[0],
            *(
                conn.execute(f"SELECT coalesce(sum(events), 0) FROM {t}").fetchone()[0]
                for t in ("rollups", "rollups_hour", "rollups_day", "rollups_org_hour")
            ),
        )


def test_an_empty_batch_writes_nothing_and_says_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    session = Session(command=["srv"], cwd="/tmp", name="srv")
    sink = StoreSink(f"sqlite:///{tmp_path / 'km.db'}")
    sink.on_session_start(session)
    sink.on_events(session, [])
    sink.on_events(session, [_event(session, 1)])
    sink.close()
    assert capfd.readouterr().err == ""
    assert sink.lost_events == 0
    assert _counts(tmp_path / "km.db") == (1, 1, 1, 1, 1)


def test_a_batch_is_stored_whole_or_not_at_all(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """One transaction per batch: a batch that fails part way (here its third event repeats the
    id of one already stored) leaves no events, no rollups and no counts, and is counted lost."""
    session = Session(command=["srv"], cwd="/tmp", name="srv")
    sink = StoreSink(f"sqlite:///{tmp_path / 'km.db'}")
    first = _event(session, 0)
    session.event_count = 1
    sink.on_events(session, [first])
    session.event_count = 4
    sink.on_events(session, [_event(session, 1), _event(session, 2), _event(session, 3, id=first.id)])
    sink.close()
    assert capfd.readouterr().err.count("cannot write the event store") == 1
    assert sink.lost_events == 3
    assert _counts(tmp_path / "km.db") == (1, 1, 1, 1, 1)
    with sqlite3.connect(tmp_path / "km.db") as conn:
        assert conn.execute("SELECT event_count FROM sessions").fetchone()[0] == 1


def test_rollups_of_many_batches_add_up_per_minute_hour_and_day(tmp_path: Path) -> None:
    session = Session(command=["srv"], cwd="/tmp", name="srv")
    sink = StoreSink(f"sqlite:///{tmp_path / 'km.db'}")
    minute = 60_000_000_000
    for _ in range(5):  # each batch spans two minutes of one hour; the same minutes again and again
        sink.on_events(session, [_event(session, i * minute // 2, is_error=i == 3) for i in range(4)])
    sink.close()
    assert _counts(tmp_path / "km.db") == (20, 20, 20, 20, 20)
    with sqlite3.connect(tmp_path / "km.db") as conn:
        minutes = conn.execute(
            "SELECT events, requests, errors, bytes FROM rollups ORDER BY minute"
        ).fetchall()
        hours = conn.execute("SELECT events, requests, errors, bytes FROM rollups_hour").fetchall()
        org_hours = conn.execute("SELECT events, requests, errors, bytes FROM rollups_org_hour").fetchall()
    assert minutes == [(10, 10, 0, 1000), (10, 10, 5, 1000)]
    assert hours == org_hours == [(20, 20, 5, 2000)]
