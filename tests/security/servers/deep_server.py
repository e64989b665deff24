"""A raw JSON-RPC MCP server whose answers nest as deep as asked (no SDK: libraries refuse such
JSON, which is the point). ``initialize`` answers with ``capabilities.experimental`` nested
``argv[1]`` levels (default 0: flat); ``tools/call`` returns ``structuredContent`` nested
``arguments.depth`` levels. Every answer is written as one line, built as text."""

from __future__ import annotations

import json
import re
import sys


def nest(levels: int) -> str:
    """``levels`` arrays inside each other, with a string holding brackets and quotes innermost."""
    return "[" * levels + json.dumps('x]"[{') + "]" * levels


def answer(message: dict[str, object], caps_depth: int) -> str | None:
    if "id" not in message or not isinstance(message.get("method"), str):
        return None
    head = '{"jsonrpc":"2.0","id":' + json.dumps(message["id"]) + ',"result":'
    method = message["method"]
    params = message.get("params")
    if method == "initialize":
        info = '{"name":"deep-server","version":"1.0"}'
        caps = '{"tools":{},"experimental":{"deep":' + nest(caps_depth) + "}}"
        return (
            head + '{"protocolVersion":"2025-06-18","serverInfo":' + info + ',"capabilities":' + caps + "}}"
        )
    if method == "tools/call" and isinstance(params, dict):
        arguments = params.get("arguments")
        levels = arguments.get("depth", 0) if isinstance(arguments, dict) else 0
        content = '[{"type":"text","text":"nested ' + str(levels) + '"}]'
        return head + '{"content":' + content + ',"structuredContent":{"value":' + nest(levels) + "}}}"
    return head + "{}}"


def main() -> None:
    caps_depth = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # deeper than json's own limit: a call, read by hand
            found = re.search(rb'"id":(\d+).*?"depth":(\d+)', line)
            if found is None:
                continue
            arguments = {"depth": int(found[2])}
            message = {"id": int(found[1]), "method": "tools/call", "params": {"arguments": arguments}}
        if isinstance(message, dict):
            reply = answer(message, caps_depth)
            if reply is not None:
                sys.stdout.write(reply + "\n")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
