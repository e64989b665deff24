"""A real remote MCP server for the HTTP tests, built with the `mcp` SDK and served by uvicorn.

    python upstream.py --port N [--transport streamable|sse] [--stateless] [--json]
                       [--auth TOKEN] [--absolute-endpoint] [--certfile F --keyfile F]

- ``streamable`` (default): the SDK's Streamable HTTP app at ``/mcp``; ``--stateless`` serves
  without sessions (the 2026-07-28 protocol is negotiated by clients in ``auto`` mode), ``--json``
  answers POSTs with JSON instead of SSE.
- ``sse``: the SDK's legacy HTTP+SSE app (``GET /sse``, ``POST /messages/``). With
  ``--absolute-endpoint`` its ``endpoint`` event names the absolute URL on this server's origin
  (as some servers do), so that km has to rewrite it.
- ``--auth TOKEN``: every MCP request needs ``Authorization: Bearer TOKEN``; otherwise 401 with
  ``WWW-Authenticate`` pointing at ``/.well-known/oauth-protected-resource`` (served without auth,
  as OAuth's protected-resource metadata is). Answers also set a cookie, to check that neither
  header nor cookie is ever stored.
"""

from __future__ import annotations

import argparse
import sys
from typing import Annotated, Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

server = MCPServer("km-test-upstream")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def regional(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str) -> str:
    """A tool whose `region` argument is mirrored in the Mcp-Param-Region header (2026-07-28)."""
    return f"{region}:{text}"


@server.tool()
async def slow(steps: int, ctx: Context) -> str:
    """Reports progress `steps` times, then answers."""
    import anyio

    for i in range(1, steps + 1):
        await anyio.sleep(0.05)
        await ctx.report_progress(i, steps, f"step {i}")
    return f"done after {steps} steps"


@server.resource("test://static")
def static_resource() -> str:
    """A static resource."""
    return "static content"


@server.prompt()
def greeting(name: str) -> str:
    """A greeting prompt."""
    return f"Hello {name}"


class BearerAuth:
    """Requires ``Authorization: Bearer TOKEN`` except on ``/.well-known/``; sets a cookie on answers."""

    def __init__(self, app: ASGIApp, token: str, origin: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.origin = origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/.well-known/oauth-protected-resource"):
            body = (
                b'{"resource":"' + self.origin.encode() + b'/mcp","authorization_servers":["'
                + self.origin.encode() + b'"],"bearer_methods_supported":["header"]}'
            )  # fmt: skip
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        auth = dict(scope["headers"]).get(b"authorization")
        if auth != self.expected:
            body = b'{"error":"invalid_token","error_description":"a bearer token is required"}'
            challenge = (
                b'Bearer error="invalid_token", resource_metadata="'
                + self.origin.encode() + b'/.well-known/oauth-protected-resource"'
            )  # fmt: skip
            headers = [
                (b"content-type", b"application/json"),
                (b"www-authenticate", challenge),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 401, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = (b"set-cookie", b"upstream_sid=cookie-secret-42")
                message["headers"] = [*message.get("headers", []), cookie]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class AbsoluteEndpoint:
    """Rewrites the legacy SSE ``endpoint`` event to an absolute URL on this server's origin."""

    def __init__(self, app: ASGIApp, origin: str) -> None:
        self.app = app
        self.origin = origin.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def rewrite(message: Message) -> None:
            if message["type"] == "http.response.body":
                body: bytes = message.get("body", b"")
                if b"event: endpoint" in body:
                    message["body"] = body.replace(b"data: /", b"data: " + self.origin + b"/", 1)
            await send(message)

        await self.app(scope, receive, rewrite)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=["streamable", "sse"], default="streamable")
    parser.add_argument("--stateless", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--auth")
    parser.add_argument("--absolute-endpoint", action="store_true")
    parser.add_argument("--sse-path", default="/sse")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    scheme = "https" if args.certfile else "http"
    origin = f"{scheme}://127.0.0.1:{args.port}"
    app: Any
    if args.transport == "sse":
        app = server.sse_app(sse_path=args.sse_path)
        if args.absolute_endpoint:
            app = AbsoluteEndpoint(app, origin)
    else:
        app = server.streamable_http_app(stateless_http=args.stateless, json_response=args.json)
    if args.auth:
        app = BearerAuth(app, args.auth, origin)
    print(f"upstream listening on {origin}", file=sys.stderr, flush=True)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
    )


if __name__ == "__main__":
    main()
