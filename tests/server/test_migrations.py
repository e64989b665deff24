"""The Alembic history produces exactly the schema in schema.py, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, UniqueConstraint

from kilometers.store import db, partitions
from kilometers.store.schema import metadata


def differences(conn: Connection) -> list[Any]:
    """The database's schema against schema.py, less what partitioning changes on PostgreSQL by
    design (migration 0009): the monthly partitions of events, and its unique key, which must
    carry the partition key ``ts_ns``."""
    found = compare_metadata(MigrationContext.configure(conn), metadata)
    if not partitions.partitioned(conn):
        return found

    def by_design(diff: Any) -> bool:
        obj = diff[1]
        table = getattr(obj, "table", obj)
        if re.fullmatch(r"events_(p\d{6}|default)", str(getattr(table, "name", ""))):
            return True
        columns = [c.name for c in getattr(obj, "columns", [])]
        return (
            isinstance(obj, UniqueConstraint)
            and table.name == "events"
            and columns
            in (
                ["org_id", "id", "ts_ns"],
                ["org_id", "id"],
            )
        )

    return [d for d in found if not (isinstance(d, tuple) and by_design(d))]


def test_migrations_match_the_schema(engine: Engine) -> None:
    assert db.current_revision(engine) == db.head_revision()
    with engine.connect() as conn:
        assert differences(conn) == []


def test_head_constant_matches_alembic() -> None:
    assert db.head_revision() == db.HEAD


def _open_at_once(url: str, workers: int, code: str | None = None) -> list[str]:
    """``workers`` threads (or, with ``code``, processes) opening the store at the same moment."""
    barrier = threading.Barrier(workers, timeout=60)

    def one(_: int) -> str:
        barrier.wait()
        if code is None:
            engine = db.open_store(url)
            engine.dispose()
            return "ok"
        proc = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120)
        return proc.stdout.strip() or proc.stderr

    pool = ThreadPoolExecutor(workers)
    try:  # a deadlock fails the test instead of hanging the run
        return [f.result(timeout=120) for f in [pool.submit(one, n) for n in range(workers)]]
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _at_head(url: str) -> None:
    engine = db.make_engine(url)
    assert db.current_revision(engine) == db.HEAD
    with engine.connect() as conn:
        assert differences(conn) == []
    engine.dispose()


def test_threads_migrating_one_fresh_store_at_once(store_url: str) -> None:
    """Alembic's context is module-global: one thread migrates, under a lock; the others wait."""
    assert _open_at_once(store_url, 8) == ["ok"] * 8
    _at_head(store_url)


def test_processes_migrating_one_fresh_store_at_once(store_url: str) -> None:
    """A client starting all its servers: each km process migrates by itself; one does, under a
    lock (flock beside a SQLite file, an advisory lock on PostgreSQL), the others wait for it."""
    code = "import sys; from kilometers.store import db; db.open_store(sys.argv[1]); print('ok')"
    assert _open_at_once(store_url, 6, code) == ["ok"] * 6
    _at_head(store_url)


def test_0006_keeps_pins_pinned_by_name(store_url: str) -> None:
    """Rows from before pins were keyed by identity keep their pins under a key made from their
    name and no ``info`` (the next session under that name takes them over); a downgrade keeps
    one row per name, the newest."""
    import hashlib

    from alembic import command
    from sqlalchemy import text

    engine = db.make_engine(store_url)
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0005")
        for server, data in (("filesystem", '{"pins": {"read_file": "ab"}}'), ("fs", "{}")):
            conn.execute(
                text("INSERT INTO pins (org_id, server, data, updated_ns) VALUES ('local', :s, :d, 1)"),
                {"s": server, "d": data},
            )
    db.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT server_key, server, info, data FROM pins ORDER BY server")).all()
    assert [tuple(r) for r in rows] == [
        (
            hashlib.sha256(b"name\0filesystem").hexdigest(),
            "filesystem",
            None,
            '{"pins": {"read_file": "ab"}}',
        ),
        (hashlib.sha256(b"name\0fs").hexdigest(), "fs", None, "{}"),
    ]
    with engine.begin() as conn:  # one server recorded under a name another server had too
        conn.execute(
            text("INSERT INTO pins (org_id, server_key, server, info, data, updated_ns) "
                 "VALUES ('local', :k, 'fs', '{}', '{\"new\": 1}', 2)"),
            {"k": "f" * 64},
        )  # fmt: skip
        command.downgrade(db._alembic_config(conn), "0005")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT server, data FROM pins ORDER BY server")).all()
    assert [tuple(r) for r in rows] == [("filesystem", '{"pins": {"read_file": "ab"}}'), ("fs", '{"new": 1}')]
    engine.dispose()


def test_0012_analyses_the_tool_index_of_an_analysed_sqlite_store(tmp_path: Any) -> None:
    """A SQLite store with planner statistics gets them for ``ix_events_org_tool_ts`` too, so the
    newest-first read of an organization stays on ``ix_events_org_ts``; one without statistics
    is left without (every index judged alike)."""
    from alembic import command
    from sqlalchemy import text

    def stat_of(engine: Engine) -> list[Any]:
        with engine.connect() as conn:
            if conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first() is None:
                return []
            return conn.execute(
                text("SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_events_org_tool_ts'")
            ).all()

    plain = db.make_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    analysed = db.make_engine(f"sqlite:///{tmp_path / 'analysed.db'}")
    for engine in (plain, analysed):
        with engine.begin() as conn:
            command.upgrade(db._alembic_config(conn), "0011")
    with analysed.begin() as conn:
        conn.execute(text("INSERT INTO sessions (org_id, id, started_ns) VALUES ('o', 's', 0)"))
        for i in range(200):  # one organization, two tools: org_id alone selects nothing
            conn.execute(
                text(
                    "INSERT INTO events (org_id, id, session_id, ts_ns, direction, kind, tool, size_bytes) "
                    "VALUES ('o', :id, 's', :ts, 'in', 'request', :tool, 1)"
                ),
                {"id": f"e{i}", "ts": i, "tool": ("a", "b")[i % 2]},
            )
        conn.execute(text("ANALYZE"))
    for engine in (plain, analysed):
        db.upgrade(engine)
    assert stat_of(plain) == []
    assert len(stat_of(analysed)) == 1
    newest = "SELECT * FROM events WHERE org_id = 'o' ORDER BY ts_ns DESC, id DESC LIMIT 101"
    with analysed.connect() as conn:
        used = " ".join(r[-1] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {newest}")))
    assert "ix_events_org_ts" in used, used
    for engine in (plain, analysed):
        engine.dispose()
