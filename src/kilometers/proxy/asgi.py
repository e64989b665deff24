"""The few ASGI pieces ``km proxy`` uses: the types and small helpers for bodies and answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def read_body(receive: Receive) -> bytes:
    """The whole request body (up to a client's disconnect)."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client has gone."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def simple_response(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    """A whole answer of km's own (not forwarded)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
