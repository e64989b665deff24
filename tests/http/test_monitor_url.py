"""`km monitor --url` end to end: a stdio-only client configuration (the mcp SDK's stdio client)
talks to server-everything over Streamable HTTP and legacy SSE through km, recorded like stdio."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

KM = str(Path(sys.executable).parent / "km")


def _env(home: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("KM_")}, "KM_HOME": str(home)}


async def _use(home: Path, url: str, *extra: str) -> tuple[list[str], str]:
    params = StdioServerParameters(command=KM, args=["monitor", "--url", url, *extra], env=_env(home))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        result = await session.call_tool("echo", {"message": "over http"})
    return sorted(t.name for t in tools.tools), str(result)


def _km_json(home: Path, *args: str) -> list[dict]:  # type: ignore[type-arg]
    out = subprocess.run([KM, *args, "--json"], capture_output=True, text=True, env=_env(home), timeout=60)
    return [orjson.loads(line) for line in out.stdout.splitlines()]


def test_stdio_client_to_streamable_http_server(tmp_path: Path, everything_http: str) -> None:
    names, echoed = asyncio.run(_use(tmp_path, everything_http, "--header", "X-Test: yes"))
    assert "echo" in names and "over http" in echoed
    [session] = _km_json(tmp_path, "sessions")
    assert session["transport"] == "streamable_http" and session["command"] == [everything_http]
    events = _km_json(tmp_path, "events", "--limit", "1000")
    calls = [e for e in events if e["tool"] == "echo"]
    assert {e["kind"] for e in calls} == {"request", "response"}
    assert all(e["latency_ms"] is not None for e in calls if e["kind"] == "response")


def test_stdio_client_to_legacy_sse_server(tmp_path: Path, everything_sse: str) -> None:
    names, echoed = asyncio.run(_use(tmp_path, everything_sse))
    assert "echo" in names and "over http" in echoed
    [session] = _km_json(tmp_path, "sessions")
    assert session["transport"] == "sse"


def test_url_and_command_are_exclusive(tmp_path: Path) -> None:
    both = subprocess.run([KM, "monitor", "--url", "http://127.0.0.1:9/mcp", "--", "cat"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=30)  # fmt: skip
    assert both.returncode == 2 and "either" in both.stderr and both.stdout == ""
    bad = subprocess.run([KM, "monitor", "--url", "http://127.0.0.1:9/mcp", "--header", "nocolon"],
                         capture_output=True, text=True, env=_env(tmp_path), timeout=30)  # fmt: skip
    assert bad.returncode == 2 and "Name: value" in bad.stderr
