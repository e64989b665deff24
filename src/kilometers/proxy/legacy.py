"""The legacy HTTP+SSE transport (2024-11-05) as ``km proxy`` sees it: a GET stream that starts
with an ``endpoint`` event naming where the client POSTs, and answers that travel on the stream.

km rewrites that event when it names the upstream's own origin (so the client keeps talking to
km), works out the path the client will POST to, and can insert whole events of its own into the
stream (a blocking policy's answer) between two of the server's events.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin, urlsplit

from .asgi import Scope, Send
from .sse import SSEEvent, SSEParser


class LegacyStream:
    """The client side of a legacy SSE stream, so that km can insert whole events into it."""

    def __init__(self, send: Send, parser: SSEParser) -> None:
        self.send = send
        self.parser = parser
        self.lock = asyncio.Lock()
        self.pending: list[bytes] = []
        self.open = True

    async def write(self, chunk: bytes) -> None:
        await self.send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def inject(self, event: bytes) -> None:
        """Send ``event`` now if the stream is between two events, else right after the next one."""
        async with self.lock:
            if self.open and self.parser.at_boundary and not self.pending:
                await self.write(event)
            else:
                self.pending.append(event)

    async def forward(self, chunk: bytes, events: list[SSEEvent]) -> None:
        """Forward an upstream chunk; pending injected events go in at the last event boundary."""
        async with self.lock:
            if not self.pending:
                await self.write(chunk)
                return
            if events:
                cut = events[-1].end
                injected, self.pending = b"".join(self.pending), []
                await self.write(chunk[:cut] + injected + chunk[cut:])
            else:
                await self.write(chunk)
                if self.parser.at_boundary:
                    injected, self.pending = b"".join(self.pending), []
                    await self.write(injected)


def client_origin(scope: Scope, host: bytes) -> bytes:
    """The origin the client used to reach km (its ``Host`` header, else the listening address)."""
    scheme = str(scope.get("scheme", "http")).encode()
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}".encode() if server else b"127.0.0.1"
    return scheme + b"://" + host


def rewrite_endpoint(
    data: bytes, end: int, event: SSEEvent, scope: Scope, host: bytes, origin: bytes
) -> bytes:
    """Point an absolute endpoint URL on the upstream's ``origin`` at km instead (``data[:end]``
    holds the event)."""
    text = event.data.strip()
    if not text.startswith(origin):
        return data
    rest = text[len(origin) :]
    if rest[:1] not in (b"/", b"?", b""):
        return data  # another host that merely starts with the same characters
    ours = client_origin(scope, host)
    return data[:end].replace(origin, ours, 1) + data[end:]


def endpoint_target(event: SSEEvent, scope: Scope, host: bytes, origin: str) -> bytes:
    """The path and query the client will POST to, resolved as the client resolves the endpoint."""
    text = event.data.strip().decode("utf-8", "replace")
    if text.startswith(origin):
        text = text[len(origin) :] or "/"
    base = client_origin(scope, host).decode("latin-1") + (scope.get("raw_path") or b"/").decode("latin-1")
    resolved = urlsplit(urljoin(base, text))
    target = resolved.path or "/"
    if resolved.query:
        target += "?" + resolved.query
    return target.encode("latin-1")
