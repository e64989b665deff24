"""Realistic sessions and events in the wire shapes of `km sessions --json` / `km events --json`."""

from __future__ import annotations

from typing import Any

import orjson

from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Session

BASE_NS = 1_790_000_000_000_000_000  # 2026-09-21


def session_batch(
    n_calls: int = 3,
    tool: str = "read_file",
    name: str = "filesystem",
    start_ns: int = BASE_NS,
    error_every: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A session whose events came through the real capture core."""
    session = Session(command=["npx", "server"], cwd="/home/dev", name=name, started_ns=start_ns)
    cap = Capture(session)
    events = []
    ts = start_ns
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"clientInfo": {"name": "claude"}}}
    events += cap.feed(CLIENT_TO_SERVER, orjson.dumps(init) + b"\n", ts)
    result = {"serverInfo": {"name": name}, "protocolVersion": "2025-11-25", "capabilities": {}}
    events += cap.feed(
        SERVER_TO_CLIENT, orjson.dumps({"jsonrpc": "2.0", "id": 0, "result": result}) + b"\n", ts + 10**6
    )
    for i in range(1, n_calls + 1):
        ts += 10**9
        call = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": tool, "arguments": {"path": f"/home/dev/file{i}.txt"}}}  # fmt: skip
        events += cap.feed(CLIENT_TO_SERVER, orjson.dumps(call) + b"\n", ts)
        if error_every and i % error_every == 0:
            reply = {"jsonrpc": "2.0", "id": i, "error": {"code": -32603, "message": "disk on fire"}}
        else:
            reply = {
                "jsonrpc": "2.0",
                "id": i,
                "result": {"content": [{"type": "text", "text": f"contents {i}"}]},
            }
        events += cap.feed(SERVER_TO_CLIENT, orjson.dumps(reply) + b"\n", ts + (i % 7 + 1) * 10**6)
    session.ended_ns = ts + 10**9
    session.exit_code = 0
    return session.to_dict(), [e.to_dict() for e in events]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
