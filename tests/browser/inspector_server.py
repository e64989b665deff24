"""A stdio MCP-style tool server for the inspector's browser test. Every request gets a tool result
repeating its `text` argument; a request with `_meta.progressToken` first gets two progress
notifications; the tool `screenshot` answers with a 1x1 PNG image and two lines of text."""

import json
import sys

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def send(message: dict) -> None:  # type: ignore[type-arg]
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message or "method" not in message:
        continue
    params = message.get("params", {})
    token = params.get("_meta", {}).get("progressToken")
    if token is not None:
        for done in (1, 2):
            send({"jsonrpc": "2.0", "method": "notifications/progress",
                  "params": {"progressToken": token, "progress": done, "total": 2}})  # fmt: skip
    if params.get("name") == "screenshot":
        content = [{"type": "text", "text": "first line\nsecond line"},
                   {"type": "image", "data": PNG, "mimeType": "image/png"}]  # fmt: skip
    else:
        content = [{"type": "text", "text": f"you said: {params.get('arguments', {}).get('text', '')}"}]
    send({"jsonrpc": "2.0", "id": message["id"], "result": {"content": content, "isError": False}})
