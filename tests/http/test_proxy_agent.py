"""``km proxy`` hands its sessions to the user's agent (issue 11), as ``km monitor`` does, and
records by itself when the agent cannot or goes away. Real processes: km proxy, its agent,
server-everything over Streamable HTTP, the MCP SDK client; the agent is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
from http_helpers import StartProxy, sdk_target

from km_helpers import KM, agents_under, km_env, km_events, km_sessions, wait_until


def _agent_status(home: Path) -> dict[str, Any] | None:
    proc = subprocess.run(
        [KM, "agent", "status", "--json"], env=km_env(home), capture_output=True, timeout=60, check=False
    )
    answers: list[dict[str, Any]] = json.loads(proc.stdout)
    assert len(answers) <= 1, answers
    return answers[0] if answers else None


def _stored_calls(home: Path) -> int:
    try:
        with sqlite3.connect(home / "km.db") as db:
            return int(db.execute("SELECT count(*) FROM events WHERE method = 'tools/call'").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _opens_the_store(pid: int, home: Path) -> bool:
    store = str(home / "km.db")
    return any(f.path.startswith(store) for f in psutil.Process(pid).open_files())


def _calls(events: list[dict[str, Any]]) -> Counter[tuple[str, Any]]:
    """How many times each echo call's (direction, text) is stored."""
    seen: Counter[tuple[str, Any]] = Counter()
    for e in events:
        payload = e.get("payload") or {}
        if e["direction"] == "client_to_server" and e["method"] == "tools/call":
            seen[("request", payload["params"]["arguments"]["message"])] += 1
        elif e["direction"] == "server_to_client" and e.get("request_event_id") and "result" in payload:
            content = payload["result"].get("content") or [{}]
            text = content[0].get("text", "")
            if text.startswith("Echo: "):
                seen[("answer", text.removeprefix("Echo: "))] += 1
    return seen


def test_km_proxy_sessions_are_recorded_by_the_agent(
    everything_http: str, km_proxy: StartProxy, km_home: Path
) -> None:
    """One recorder per user: km proxy starts the agent before it listens, hands each session to
    it and never opens the store itself; the agent's status lists the session while it is open."""
    from mcp import Client

    km = km_proxy(everything_http, "--name", "remote")
    status = _agent_status(km_home)
    assert status is not None, "km proxy starts the agent before it listens"
    seen_open: list[dict[str, Any]] = []

    async def scenario() -> None:
        async with Client(sdk_target(km.url(everything_http)), mode="legacy") as client:
            for i in range(5):
                result = await client.call_tool("echo", {"message": f"m{i}"})
                assert f"m{i}" in result.model_dump()["content"][0]["text"]
            opened = await asyncio.to_thread(
                wait_until, lambda: (_agent_status(km_home) or {}).get("sessions"), 30
            )
            seen_open.extend(opened)

    asyncio.run(scenario())
    assert [s["name"] for s in seen_open] == ["remote"]
    assert not _opens_the_store(km.proc.pid, km_home), "the agent writes the store, not km proxy"
    km.stop()
    (session,) = km_sessions(km_home)
    assert session["id"] == seen_open[0]["id"] and session["transport"] == "streamable_http"
    assert session["ended_at"] is not None
    calls = _calls(km_events(km_home))
    assert calls == Counter({(side, f"m{i}"): 1 for i in range(5) for side in ("request", "answer")})
    assert [p.pid for p in agents_under(km_home)] == [status["pid"]], "the agent outlives km proxy"


def test_agent_killed_mid_session_km_proxy_records_the_rest_once(
    everything_http: str, km_proxy: StartProxy, km_home: Path
) -> None:
    """SIGKILL of the agent in the middle of a session: km proxy's own host takes the session
    over, continues the agent's record of it, and stores what the agent had not, once."""
    from mcp import Client

    km = km_proxy(everything_http)
    killed = threading.Event()

    def kill_the_agent() -> None:
        wait_until(lambda: _stored_calls(km_home) >= 1, 60)  # the agent stored part of the session
        agent = psutil.Process(wait_until(lambda: _agent_status(km_home), 30)["pid"])
        agent.kill()
        agent.wait(30)
        killed.set()

    async def scenario() -> None:
        async with Client(sdk_target(km.url(everything_http)), mode="legacy") as client:
            for i in range(20):
                await client.call_tool("echo", {"message": f"before{i}"})
            await asyncio.to_thread(kill_the_agent)
            for i in range(20):
                result = await client.call_tool("echo", {"message": f"after{i}"})
                assert f"after{i}" in result.model_dump()["content"][0]["text"]  # forwarded throughout

    asyncio.run(scenario())
    assert killed.is_set()
    km.stop()
    assert b"recording without the agent" in km.stderr.data
    (session,) = km_sessions(km_home)  # continued under the agent's id
    assert session["ended_at"] is not None
    calls = _calls(km_events(km_home))
    texts = [f"{when}{i}" for when in ("before", "after") for i in range(20)]
    expected = {(side, text) for text in texts for side in ("request", "answer")}
    assert set(calls) == expected, sorted(expected - set(calls))[:5]
    assert set(calls.values()) == {1}, calls.most_common(3)
    assert session["event_count"] == len(km_events(km_home))


def test_without_the_agent_km_proxy_records_by_itself(
    everything_http: str, km_proxy: StartProxy, km_home: Path
) -> None:
    from mcp import Client

    km = km_proxy(everything_http, env=km_env(km_home, KM_AGENT="0"))

    async def scenario() -> None:
        async with Client(sdk_target(km.url(everything_http)), mode="legacy") as client:
            await client.call_tool("echo", {"message": "alone"})

    asyncio.run(scenario())
    km.stop()
    assert not agents_under(km_home)
    assert _calls(km_events(km_home)) == Counter({("request", "alone"): 1, ("answer", "alone"): 1})


def test_agent_killed_mid_session_km_monitor_url_records_the_rest_once(
    everything_http: str, km_home: Path
) -> None:
    """``km monitor --url`` (the bridge) through the agent: when the agent is killed, the child
    recorder takes the session's message frames over, resuming the agent's record."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=KM, args=["monitor", "--url", everything_http, "--name", "bridged"], env=km_env(km_home)
    )
    killed = threading.Event()

    def kill_the_agent() -> None:
        wait_until(lambda: _stored_calls(km_home) >= 1, 60)
        agent = psutil.Process(wait_until(lambda: _agent_status(km_home), 30)["pid"])
        agent.kill()
        agent.wait(30)
        killed.set()

    async def scenario() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            for i in range(20):
                await client.call_tool("echo", {"message": f"before{i}"})
            await asyncio.to_thread(kill_the_agent)
            for i in range(20):
                result = await client.call_tool("echo", {"message": f"after{i}"})
                assert f"after{i}" in str(result)

    asyncio.run(scenario())
    assert killed.is_set()
    (session,) = wait_until(lambda: [s for s in km_sessions(km_home) if s["ended_at"]], 60)
    assert session["name"] == "bridged" and session["transport"] == "streamable_http"
    calls = _calls(km_events(km_home))
    texts = [f"{when}{i}" for when in ("before", "after") for i in range(20)]
    assert set(calls) == {(side, text) for text in texts for side in ("request", "answer")}
    assert set(calls.values()) == {1}, calls.most_common(3)


def test_ended_sessions_give_back_their_threads_and_descriptors(
    everything_http: str, km_proxy: StartProxy, km_home: Path
) -> None:
    """Each session's link to the agent holds a connection, a shared count (memfd) and two
    threads while it is open; a long-running km proxy gives them back as sessions end."""
    import httpx

    km = km_proxy(everything_http)
    proc = psutil.Process(km.proc.pid)
    url = km.url(everything_http)
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    client_info = {"name": "t", "version": "1"}
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client_info}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    threads = proc.num_threads()  # no session yet
    with httpx.Client(timeout=60) as client:

        def session() -> None:
            answer = client.post(url, json=init, headers=headers)
            assert answer.status_code == 200
            sid = answer.headers["mcp-session-id"]
            client.delete(url, headers={**headers, "mcp-session-id": sid})

        session()  # (opens the keep-alive connections, to km and to the server)
        wait_until(lambda: proc.num_threads() <= threads, 60)
        fds = proc.num_fds()
        for _ in range(30):
            session()
        wait_until(lambda: proc.num_threads() <= threads and proc.num_fds() <= fds + 2, 60)
    km.stop()
