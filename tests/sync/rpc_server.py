"""A raw JSON-RPC "MCP server" for the sync tests: answers every request line, exits on EOF.

Plain stdio and ``json``, no SDK: it starts in a few milliseconds, so tests can run many sessions.
Each ``tools/call`` result echoes the call's arguments (so payload sizes are under the test's control).
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if not isinstance(msg, dict) or "id" not in msg or "method" not in msg:
            continue  # notifications and responses need no answer
        if msg["method"] == "initialize":
            result: dict[str, object] = {
                "protocolVersion": "2025-06-18",
                "serverInfo": {"name": "rpc-test", "version": "1.0"},
                "capabilities": {"tools": {}},
            }
        elif msg["method"] == "tools/call":
            arguments = (msg.get("params") or {}).get("arguments")
            result = {"content": [{"type": "text", "text": json.dumps(arguments)}]}
        else:
            result = {}
        out.write(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
