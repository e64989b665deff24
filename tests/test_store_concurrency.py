"""One store, many km processes and threads opening it for the first time at once.

Alembic's ``context`` is module-global, and the sqlite3 module commits each CREATE TABLE at
once: threads migrating one store together used to leave it half-migrated (tables made, no
revision), and every later km command failed on it. Migration is now serialised across threads
(a lock) and processes (an ``flock`` beside a SQLite store, an advisory lock on PostgreSQL), and
runs in one transaction. ``km proxy``'s side is in tests/http/test_proxy_store_concurrency.py.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from alembic import command

from kilometers.store import db

from km_helpers import ECHO_SERVER, KM, PYTHON, KmProcess, km_env, km_sessions

MONITORS = 8


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _revisions(store: Path) -> list[str]:
    with sqlite3.connect(store) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def _tables(store: Path) -> set[str]:
    with sqlite3.connect(store) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _at_revision(store: Path, revision: str) -> None:
    engine = db.make_engine(f"sqlite:///{store}")
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), revision)
    engine.dispose()


def _km(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KM, *args], env=km_env(home), capture_output=True, text=True, timeout=120, check=False
    )


def test_threads_opening_a_fresh_store_at_once_all_get_it_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'km.db'}"
    barrier = threading.Barrier(MONITORS, timeout=60)

    def open_it(_: int) -> str | None:
        barrier.wait()
        engine = db.open_store(url)
        try:
            return db.current_revision(engine)
        finally:
            engine.dispose()

    with ThreadPoolExecutor(MONITORS) as pool:
        assert list(pool.map(open_it, range(MONITORS))) == [db.HEAD] * MONITORS
    assert _revisions(tmp_path / "km.db") == [db.HEAD]
    # the lock file beside the store is not taken for one of the store's own files (km.db*)
    assert {p.name for p in tmp_path.glob("km.db*")} <= {"km.db", "km.db-wal", "km.db-shm"}


@pytest.mark.parametrize("recorder_process", ["1", "0"], ids=["recorder-process", "in-process"])
def test_many_km_monitors_on_one_fresh_store(km_home: Path, recorder_process: str) -> None:
    """Eight ``km monitor`` processes (a client starting all its servers) on a store that does not
    exist yet, started at the same moment: every session stored, the schema at head, no errors.
    Each process's host (in the recorder process, or in km's own) opens the store at start-up."""
    barrier = threading.Barrier(MONITORS, timeout=60)
    env = km_env(km_home, KM_RECORDER_PROCESS=recorder_process)

    def monitor(n: int) -> tuple[int, bytes, bytes]:
        barrier.wait()
        km = KmProcess(km_home, [PYTHON, ECHO_SERVER], ["--name", f"echo-{n}"], env=env)
        try:
            km.write(
                _line({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": f"client-{n}", "version": "1"}}})
                + _line({"jsonrpc": "2.0", "method": "notifications/initialized"})
                + _line({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                         "params": {"name": "echo", "arguments": {"text": f"hello {n}"}}})
            )  # fmt: skip
            out = km.stdout.wait_for(lambda data: data.count(b"\n") >= 2, timeout=60)
            assert [orjson.loads(line)["id"] for line in out.splitlines()] == [0, 1]
            return km.finish(60)
        finally:
            km.cleanup()

    with ThreadPoolExecutor(MONITORS) as pool:
        results = list(pool.map(monitor, range(MONITORS)))
    for code, _, err in results:
        assert code == 0 and b"km:" not in err and b"Traceback" not in err, err.decode(errors="replace")
    assert _revisions(km_home / "km.db") == [db.HEAD]
    sessions = km_sessions(km_home)
    assert sorted(s["name"] for s in sessions) == sorted(f"echo-{n}" for n in range(MONITORS))
    assert all(s["exit_code"] == 0 and s["event_count"] >= 5 for s in sessions), sessions


def test_a_store_left_half_migrated_by_an_older_km_is_repaired(km_home: Path) -> None:
    """What eight threads left behind: the first revision's tables, an empty alembic_version."""
    store = km_home / "km.db"
    _at_revision(store, "0001")
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM alembic_version")
        conn.execute(
            "INSERT INTO organizations (id, name, plan, created_ns) VALUES ('o1', 'kept', 'free', 1)"
        )
    done = _km(km_home, "sessions", "--json")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert _revisions(store) == [db.HEAD]
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT name FROM organizations").fetchall() == [("kept",)]


def test_a_half_migrated_store_that_matches_no_revision_is_reported(km_home: Path) -> None:
    store = km_home / "km.db"
    _at_revision(store, "0001")
    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM alembic_version")
        conn.execute("DROP TABLE users")  # cut short in the middle of the first revision
    before = _tables(store)
    failed = _km(km_home, "sessions")
    assert failed.returncode == 1 and failed.stdout == ""
    [line] = failed.stderr.splitlines()
    assert (
        line.startswith(f"km: cannot open the store sqlite:///{store}: ") and "move the store aside" in line
    )
    assert _tables(store) == before and _revisions(store) == []  # nothing was changed


def test_a_failed_migration_leaves_the_store_as_it_was(km_home: Path) -> None:
    """The sqlite3 module commits each CREATE TABLE by itself: a migration failing half-way used
    to keep the tables of the steps before, so that every later attempt failed on them."""
    store = km_home / "km.db"
    _at_revision(store, "0001")
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE pins (x INTEGER)")  # in the way of revision 0003
    failed = _km(km_home, "db", "upgrade")
    assert failed.returncode == 1
    [line] = failed.stderr.splitlines()
    assert line.startswith("km: cannot migrate the store") and "pins" in line
    assert _revisions(store) == ["0001"] and "web_sessions" not in _tables(store)  # 0002 undone
    with sqlite3.connect(store) as conn:
        conn.execute("DROP TABLE pins")
    done = _km(km_home, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert _revisions(store) == [db.HEAD]


def test_a_process_migrates_a_store_once(tmp_path: Path) -> None:
    """What ``km proxy``'s sessions get once it migrated the store at start-up: an open store,
    with no migration (not even the revision read) of their own."""
    store = tmp_path / "km.db"
    db.open_store(f"sqlite:///{store}").dispose()
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0004'")  # a marker, not a real state
    db.open_store(f"sqlite:///{store}").dispose()
    assert _revisions(store) == ["0004"]  # not looked at again
    store.rename(tmp_path / "old.db")  # a new file at the same path is another store: migrated
    db.open_store(f"sqlite:///{store}").dispose()
    assert _revisions(store) == [db.HEAD]


def test_a_store_migrated_apart_never_loads_alembic_here(tmp_path: Path) -> None:
    """The agent lives for hours: a store that is behind is migrated by a short-lived child
    (upgrade_apart), so that Alembic's ~10 MB never stay in the agent."""
    url = f"sqlite:///{tmp_path / 'km.db'}"
    check = (
        "import sys; from kilometers.store import db; db.upgrade_apart(sys.argv[1]); "
        "print(db.current_revision(db.make_engine(sys.argv[1])), 'alembic' in sys.modules)"
    )
    out = subprocess.run([PYTHON, "-c", check, url], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == [db.HEAD, "False"]


def test_a_store_that_cannot_be_migrated_apart_is_reported_where_it_is_opened(tmp_path: Path) -> None:
    bad = tmp_path / "km.db"
    bad.write_bytes(b"this is not a database" * 100)
    url = f"sqlite:///{bad}"
    db.upgrade_apart(url)  # says nothing itself: the opening does
    with pytest.raises(Exception, match="not a database"):
        db.open_store(url)
    assert bad.read_bytes() == b"this is not a database" * 100
