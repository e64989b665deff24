"""A minimal Streamable HTTP MCP "server" for bench/bench_http.py: fast, so the figures are km's.

    python bench/http_raw_server.py PORT

HTTP/1.1 keep-alive on 127.0.0.1:PORT, asyncio protocol, no framework. Every POST gets a JSON
answer (``Content-Type: application/json``) carrying the request's JSON-RPC id: ``initialize``
gets a small result and an ``Mcp-Session-Id``; anything else a fixed ~1 KB ``tools/call``
result. Notifications get ``202 Accepted``; DELETE gets 200. Prints ``ready`` when listening.

On the path ``/sse-mcp`` the answers come as a one-event SSE stream (``text/event-stream``,
chunked), as many servers send them, instead of JSON.
"""

from __future__ import annotations

import asyncio
import re
import sys

ID = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
TEXT = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 17)[:923]
RESULT = b'{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"' + TEXT.encode() + b'"}]}}'
INIT = (
    b'{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},'
    b'"serverInfo":{"name":"bench-raw-http","version":"1"}}}'
)


def response(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )  # fmt: skip


def sse_response(message: bytes, extra: bytes = b"") -> bytes:
    event = b"event: message\ndata: " + message + b"\n\n"
    chunk = f"{len(event):x}".encode() + b"\r\n" + event + b"\r\n0\r\n\r\n"
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"transfer-encoding: chunked\r\n" + extra + b"\r\n" + chunk
    )


class Handler(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if match:
                length = int(match.group(1))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.answer(head, body)

    def answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        if head.startswith(b"DELETE"):
            self.transport.write(response(b"200 OK", b""))
            return
        match = ID.search(body)
        if match is None:
            self.transport.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
            return
        if b'"initialize"' in body:
            self.transport.write(
                response(b"200 OK", INIT % match.group(1), b"mcp-session-id: bench-session\r\n")
            )
        else:
            self.transport.write(response(b"200 OK", RESULT % match.group(1)))


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Handler, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
