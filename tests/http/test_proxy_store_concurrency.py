"""A fresh (or old) store under ``km proxy`` when many clients arrive at the same moment.

Each HTTP session used to migrate the store from its own recorder thread, and Alembic's
``context`` is module-global: eight first requests at once left the store half-migrated (tables
made, no revision) and every later ``km sessions`` failed. ``km proxy`` now opens and migrates
the store once at start-up, and migration is serialised across threads and processes
(kilometers.store.db). These tests do NOT pre-migrate the store (the ``km_proxy`` fixture does).
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from http_helpers import KmProxy

from kilometers.store import db

from km_helpers import km_sessions

CLIENTS = 8
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
VERSION = "2025-06-18"


def _init(n: int) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": f"client-{n}", "version": "1"},
        },
    }


def first_use_at_once(url: str, clients: int = CLIENTS) -> list[str]:
    """``clients`` MCP sessions whose first request (initialize, no session id) is sent at the
    same moment; each then calls a tool and ends its session. Returns the session ids."""
    barrier = threading.Barrier(clients, timeout=60)

    def client(n: int) -> str:
        with httpx.Client(timeout=60) as http:
            barrier.wait()
            r = http.post(url, json=_init(n), headers=MCP_HEADERS)
            assert r.status_code == 200, r.text
            sid = r.headers["mcp-session-id"]
            headers = {**MCP_HEADERS, "Mcp-Session-Id": sid, "MCP-Protocol-Version": VERSION}
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            r = http.post(url, json=initialized, headers=headers)
            assert r.status_code == 202, r.text
            call = {"method": "tools/call", "params": {"name": "echo", "arguments": {"message": f"m{n}"}}}
            r = http.post(url, json={"jsonrpc": "2.0", "id": 2, **call}, headers=headers)
            assert r.status_code == 200 and f"m{n}" in r.text, r.text
            assert http.delete(url, headers=headers).status_code == 200
            return sid

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(client, range(clients)))


def stored_revision(home: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(home / "km.db") as conn:
        return [tuple(row) for row in conn.execute("SELECT version_num FROM alembic_version")]


def assert_all_recorded(km: KmProxy, home: Path) -> None:
    code = km.stop()
    err = km.stderr.data.decode(errors="replace")
    assert code in (0, -signal.SIGTERM), err  # uvicorn re-raises the SIGTERM it handled
    assert "cannot write the event store" not in err and "Traceback" not in err, err
    assert stored_revision(home) == [(db.HEAD,)]
    sessions = km_sessions(home)  # fails on a half-migrated store
    clients = sorted(s["client"]["name"] for s in sessions if s["client"])
    assert clients == sorted(f"client-{n}" for n in range(CLIENTS)), sessions
    assert all(s["ended_at"] and s["event_count"] >= 5 for s in sessions), sessions


def test_fresh_store_first_used_by_many_clients_at_once(everything_http: str, km_home: Path) -> None:
    assert not (km_home / "km.db").exists()
    km = KmProxy(km_home, everything_http)
    try:
        first_use_at_once(km.url(everything_http))
    finally:
        km.stop()
    assert_all_recorded(km, km_home)


def test_old_store_upgraded_by_many_clients_at_once(everything_http: str, km_home: Path) -> None:
    from alembic import command

    engine = db.make_engine(f"sqlite:///{km_home / 'km.db'}")
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0001")
    engine.dispose()
    assert stored_revision(km_home) == [("0001",)]
    km = KmProxy(km_home, everything_http)
    try:
        first_use_at_once(km.url(everything_http))
    finally:
        km.stop()
    assert_all_recorded(km, km_home)


def test_km_proxy_migrates_the_store_at_start_up(everything_http: str, km_home: Path) -> None:
    km = KmProxy(km_home, everything_http)  # returns once km says it is listening
    try:
        assert stored_revision(km_home) == [(db.HEAD,)]  # before any client came
    finally:
        km.stop()


def test_km_proxy_reports_a_store_it_cannot_open_and_still_forwards(
    everything_http: str, km_home: Path
) -> None:
    from alembic import command

    engine = db.make_engine(f"sqlite:///{km_home / 'km.db'}")
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0001")
        conn.exec_driver_sql("DELETE FROM alembic_version")
        conn.exec_driver_sql("DROP TABLE users")  # half-migrated, in no revision's shape
    engine.dispose()
    km = KmProxy(km_home, everything_http)
    try:
        [line] = [x for x in km.stderr.data.decode().splitlines() if "cannot open the store" in x]
        assert (
            line.startswith("km proxy: cannot open the store sqlite:///") and "move the store aside" in line
        )
        r = httpx.post(km.url(everything_http), json=_init(0), headers=MCP_HEADERS, timeout=60)
        assert r.status_code == 200 and "mcp-session-id" in r.headers
    finally:
        km.stop()
    assert stored_revision(km_home) == []  # left as it was, for the user to move aside
