"""A minimal stdio MCP-style tool server for the browser tests: answers every request with a tool
result that repeats the call's `text` argument (so untrusted text travels back as a result)."""

import json
import sys

for line in sys.stdin:
    message = json.loads(line)
    if "id" in message and "method" in message:
        text = message.get("params", {}).get("arguments", {}).get("text", "")
        result = {"content": [{"type": "text", "text": f"you said: {text}"}], "isError": False}
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}) + "\n")
        sys.stdout.flush()
