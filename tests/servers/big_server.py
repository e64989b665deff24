"""A minimal JSON-RPC stdio server for large-message tests (no MCP SDK: no size limits of its own).

- ``test/hash`` answers with the sha256 and size of the raw line it received (without ``\\n``);
- ``test/make`` with ``params.size`` answers with a response line of exactly that many bytes
  (newline included), then sends a ``test/made`` notification holding that line's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys


def write(line: bytes) -> None:
    view = memoryview(line)
    while view:
        view = view[os.write(1, view) :]


def make(request_id: object, size: int) -> bytes:
    head = json.dumps({"jsonrpc": "2.0", "id": request_id, "result": {"data": ""}})[:-3].encode()
    tail = b'"}}\n'
    filler = b"0123456789abcdefghijklmnopqrstuvwxyz" * (size // 36 + 1)
    line = head + filler[: size - len(head) - len(tail)] + tail
    assert len(line) == size
    return line


def main() -> None:
    for raw in sys.stdin.buffer:
        line = raw.rstrip(b"\n")
        message = json.loads(line)
        if message.get("method") == "test/hash":
            digest = hashlib.sha256(line).hexdigest()
            result = {"sha256": digest, "size": len(line)}
            write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode() + b"\n")
        elif message.get("method") == "test/make":
            big = make(message["id"], message["params"]["size"])
            write(big)
            digest = hashlib.sha256(big).hexdigest()
            write(
                json.dumps({"jsonrpc": "2.0", "method": "test/made", "params": {"sha256": digest}}).encode()
                + b"\n"
            )


if __name__ == "__main__":
    main()
