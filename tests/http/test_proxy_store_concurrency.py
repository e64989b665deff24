"""A fresh (or old) store under ``km proxy`` when many MCP clients arrive at the same moment.

Each HTTP session used to migrate the store from its own recorder thread, and Alembic's
``context`` is module-global: eight first requests at once left the store half-migrated (tables
made, no revision) and every later ``km sessions`` failed. ``km proxy`` now opens and migrates
the store once at start-up, on its one :class:`~kilometers.host.Host`, whose sinks every session
shares (and migration is serialised across processes too: kilometers.store.db). These tests do
NOT pre-migrate the store (the ``km_proxy`` fixture does).
"""

from __future__ import annotations

import signal
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from http_helpers import KmProxy, free_port, sdk_target, wait_port

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


def first_use_at_once(url: str, clients: int = CLIENTS, hold: Callable[[], object] | None = None) -> None:
    """``clients`` real MCP SDK clients (Streamable HTTP) whose first request (initialize, no
    session id yet) is sent at the same moment; each calls a tool, then (after ``hold()``
    returns, on a thread) ends its session (DELETE)."""
    import anyio
    from mcp import Client
    from mcp_types import Implementation

    barrier = threading.Barrier(clients, timeout=60)

    def client(n: int) -> None:
        async def scenario() -> None:
            barrier.wait()
            info = Implementation(name=f"client-{n}", version="1")
            async with Client(sdk_target(url), mode="legacy", client_info=info) as session:
                result = await session.call_tool("echo", {"message": f"m{n}"})
                assert f"m{n}" in str(result.model_dump()), result
                if hold is not None:
                    await anyio.to_thread.run_sync(hold)

        anyio.run(scenario)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))


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


def _threads(prefix: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith(prefix))


def test_one_host_serves_every_http_session(
    everything_http: str, km_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``km proxy`` runs, in this process: with eight sessions open at once there is one
    store engine, one uploader thread and one OpenTelemetry provider (each session has only its
    own recorder thread), and the host's close ends and flushes every session still open."""
    import uvicorn

    from kilometers import config
    from kilometers.export.otel import OtelSink
    from kilometers.host import Host
    from kilometers.proxy.http import HttpProxy, ProxyOptions
    from kilometers.sync.sink import UploaderSink

    nowhere = f"http://127.0.0.1:{free_port()}"  # the uploader and the exporter only have to exist
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", nowhere)
    settings = config.Settings(
        db_url=f"sqlite:///{km_home / 'km.db'}", api_url=nowhere, api_key="km_test_key", otel=True
    )
    uploaders, exporters = _threads("km-uploader"), _threads("OtelBatch")
    host = Host(settings, server_side=True).start()
    assert stored_revision(km_home) == [(db.HEAD,)]  # migrated at start-up, before any session
    app = HttpProxy(
        ProxyOptions(upstream=everything_http, open_session=host.open_session, on_shutdown=host.close)
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    )
    serving = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    serving.start()
    arrived = threading.Barrier(CLIENTS + 1, timeout=120)
    closed = threading.Event()

    def hold() -> None:
        arrived.wait()
        closed.wait(120)

    url = f"http://127.0.0.1:{port}{urlsplit(everything_http).path}"
    clients = threading.Thread(target=first_use_at_once, args=(url, CLIENTS, hold), name="test-clients")
    try:
        wait_port(port)
        clients.start()
        arrived.wait()  # every client called its tool; all eight sessions are open
        sessions = host.sessions
        assert len(sessions) == CLIENTS
        assert host.store is not None and host.store.open() is host.store.open()  # one engine
        for handle in sessions:
            sinks = handle.recorder.sinks
            assert [type(s) for s in sinks] == [type(s) for s in host.sinks]
            assert all(a is b for a, b in zip(sinks, host.sinks, strict=True))  # the host's own
        assert [type(s) for s in host.sinks] == [type(host.store), UploaderSink, OtelSink]
        assert _threads("km-uploader") == uploaders + 1
        assert _threads("OtelBatch") == exporters + 1
        assert _threads("km-recorder") >= CLIENTS
        host.close()  # with the eight sessions still open
        assert host.sessions == [] and _threads("km-uploader") == uploaders
    finally:
        closed.set()
        if clients.is_alive():
            clients.join(120)
        server.should_exit = True
        serving.join(60)
    stored = km_sessions(km_home)
    assert sorted(s["client"]["name"] for s in stored) == sorted(f"client-{n}" for n in range(CLIENTS))
    # initialize, its answer, notifications/initialized, tools/call and its answer: all flushed
    assert all(s["ended_at"] and s["event_count"] >= 5 for s in stored), stored
