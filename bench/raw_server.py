"""A minimal, fast MCP stdio server for benchmarks (not built on the SDK, on purpose).

It reads newline-delimited JSON-RPC with blocking ``os.read`` and answers with blocking
``os.write``, so its own cost per message is a few microseconds and what a benchmark sees
is the transport (and whatever sits between client and server), not SDK overhead.

- ``initialize``, ``ping``, ``tools/list``: minimal valid results;
- ``tools/call`` of ``echo``: a fixed-shape result of about 1 KB (the arguments are ignored);
- ``tools/call`` of ``big``: the ``text`` argument is sent back whole (for the large-message run);
- notifications get no answer; other requests get a ``-32601`` error.

Exits when stdin closes.
"""

from __future__ import annotations

import os
import sys

import orjson

RESULT_TEXT = (b"The quick brown fox jumps over the lazy dog. " * 21)[:929]
ECHO_HEAD = b'{"jsonrpc":"2.0","id":'
ECHO_TAIL = b',"result":{"content":[{"type":"text","text":"' + RESULT_TEXT + b'"}],"isError":false}}\n'
TOOLS = {
    "tools": [
        {"name": "echo", "description": "Fixed 1 KB answer", "inputSchema": {"type": "object"}},
        {"name": "big", "description": "Returns its text argument", "inputSchema": {"type": "object"}},
    ]
}


def _result(jsonrpc_id: object, result: object) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": jsonrpc_id, "result": result}) + b"\n"


def answer(line: bytes) -> bytes | None:
    message = orjson.loads(line)
    if "id" not in message:
        return None
    jsonrpc_id = message["id"]
    method = message.get("method")
    if method == "tools/call":
        params = message["params"]
        if params.get("name") == "big":
            text = params["arguments"]["text"]
            return _result(jsonrpc_id, {"content": [{"type": "text", "text": text}], "isError": False})
        return ECHO_HEAD + orjson.dumps(jsonrpc_id) + ECHO_TAIL
    if method == "initialize":
        return _result(
            jsonrpc_id,
            {
                "protocolVersion": message["params"].get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "km-bench-raw", "version": "1"},
            },
        )
    if method == "ping":
        return _result(jsonrpc_id, {})
    if method == "tools/list":
        return _result(jsonrpc_id, TOOLS)
    error = {"code": -32601, "message": f"Method not found: {method}"}
    return orjson.dumps({"jsonrpc": "2.0", "id": jsonrpc_id, "error": error}) + b"\n"


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main() -> int:
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    parts: list[bytes] = []
    while True:
        data = os.read(stdin, 1 << 16)
        if not data:
            return 0
        if b"\n" not in data:
            parts.append(data)
            continue
        lines = data.split(b"\n")
        if parts:
            parts.append(lines[0])
            lines[0] = b"".join(parts)
            parts = []
        tail = lines.pop()
        if tail:
            parts.append(tail)
        out = [reply for reply in map(answer, lines) if reply is not None]
        if out:
            write_all(stdout, b"".join(out))


if __name__ == "__main__":
    sys.exit(main())
