"""An HTTP MCP upstream whose answers are gzip bombs: ~300 KB on the wire, 300 MB inflated.

``POST /json`` answers ``application/json``, ``POST /sse`` one ``text/event-stream`` event; both
carry ``Content-Encoding: gzip`` and ``X-Body-Sha256`` (the digest of the bytes sent, which the
client must receive unchanged through km). Run: ``python gzip_bomb.py --port N``.
"""

from __future__ import annotations

import argparse
import hashlib
import zlib
from typing import Any

import uvicorn

INFLATED_MB = 300


def bomb(prefix: bytes, suffix: bytes) -> bytes:
    """gzip of ``prefix + "A" * 300 MB + suffix``, compressed piecewise (never inflated here)."""
    z = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    parts = [z.compress(prefix)]
    block = b"A" * (1 << 20)
    parts.extend(z.compress(block) for _ in range(INFLATED_MB))
    parts.append(z.compress(suffix))
    parts.append(z.flush())
    return b"".join(parts)


BODIES = {
    "/json": (b"application/json", bomb(b'{"jsonrpc":"2.0","id":1,"result":{"pad":"', b'"}}')),
    "/sse": (b"text/event-stream", bomb(b'data: {"jsonrpc":"2.0","id":1,"result":{"pad":"', b'"}}\n\n')),
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    content_type, body = BODIES.get(scope["path"], (b"text/plain", b""))
    status = 200 if body else 404
    headers = [
        (b"content-type", content_type),
        (b"content-encoding", b"gzip"),
        (b"content-length", str(len(body)).encode()),
        (b"x-body-sha256", hashlib.sha256(body).hexdigest().encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
