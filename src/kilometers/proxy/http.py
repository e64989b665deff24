"""The HTTP transport: a reverse proxy for remote MCP servers (Streamable HTTP and legacy HTTP+SSE).

:class:`HttpProxy` is a raw ASGI app (served by uvicorn in ``km proxy``). Every request is sent
to the same path on the upstream origin with httpx; the response's status, headers and body come
back unchanged, streamed chunk by chunk as they arrive (an SSE stream is never buffered whole).
Only hop-by-hop headers are dropped, and in a legacy SSE stream the ``endpoint`` event is
rewritten when it names the upstream's own origin, so that the client keeps talking to km.

Capture works on copies: the JSON-RPC body of a POST, a JSON response to it, and the ``data``
field of each SSE event are handed to the session's :class:`~kilometers.host.SessionHandle` with
``submit_message``, before the bytes are forwarded (so a request is always queued before its
answer). Nothing is re-encoded on the way through. Headers are never recorded, so neither
``Authorization`` nor cookies ever reach the store; only the 2026-07-28 ``Mcp-Method``,
``Mcp-Name`` and ``Mcp-Param-*`` headers of a POST go with its body to the recorder, which
checks them against it (:mod:`~kilometers.analysis.mcp_headers`).

Sessions (one :class:`~kilometers.model.Session` + SessionHandle each, tracked by
:class:`~kilometers.proxy.sessions.SessionTable`), see docs/http.md:

- Streamable HTTP with a session: one km session per ``Mcp-Session-Id``. The ``initialize``
  POST has no id yet; it is recorded once the response names one. The session ends when the
  client's DELETE succeeds, when the server answers 404 for it (expired), after
  ``idle_timeout`` without traffic, or when km stops.
- Stateless Streamable HTTP (no ``Mcp-Session-Id``, as in the 2026-07-28 protocol): one km
  session per client address and ``User-Agent``, ended after ``idle_timeout`` without traffic.
- Legacy HTTP+SSE (2024-11-05): one km session per ``GET`` SSE stream that starts with an
  ``endpoint`` event; POSTs to the announced endpoint belong to it. It ends with the stream
  (:mod:`~kilometers.proxy.legacy`).

Everything else is shared with the stdio transport: each session is opened on the process's
:class:`~kilometers.host.Host` (``ProxyOptions.open_session``), so it gets the same security
stage (analysis, redaction) as ``km monitor``, and every session shares the host's one store
engine, uploader thread and OpenTelemetry provider. In policy block mode, the session's
:class:`~kilometers.security.Gate` sees each POST before it is forwarded; a refused
``tools/call`` is answered with the gate's JSON-RPC error in the HTTP response of that POST
(Streamable HTTP), or as an event on the session's SSE stream with ``202 Accepted`` for the POST
(legacy SSE, where answers always travel on the stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from ..analysis.mcp_headers import mcp_headers
from ..jsonlimits import MAX_BODY_BYTES
from ..jsonrpc import may_call
from ..model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Session
from .asgi import Receive, Scope, Send, read_body, simple_response, wait_disconnect
from .encoding import IDENTITY, content_decoder, narrow_accept_encoding
from .legacy import LegacyStream, endpoint_target, rewrite_endpoint
from .sessions import RELEASE_AFTER, STREAMABLE_HTTP, WARNING_INTERVAL, LiveSession, SessionTable
from .sse import SSEEvent, SSEParser, encode_event
from .upstream import UpstreamError, UpstreamPool, UpstreamResponse

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .sessions import Recording

__all__ = ["HttpProxy", "LegacyStream", "ProxyOptions", "display_url", "guess_name"]

UPSTREAM_ERROR_CODE = -32000

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
"""Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1)."""
FIRST_EVENT_LIMIT = 1 << 16
"""Bytes of a session-less SSE stream held back while km looks for the legacy ``endpoint`` event."""
CREDENTIAL_PARAMS = ("key", "token", "secret", "password", "passwd", "auth", "sig", "signature", "credential")
"""Query parameters whose values are removed from the upstream URL km records (substring match)."""


def display_url(url: str) -> str:
    """The URL as km records it: without user:password and without credential-like query values."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(any(word in name.lower() for word in CREDENTIAL_PARAMS) for name, _ in pairs):
            query = urlencode(
                [
                    (name, "REDACTED" if any(w in name.lower() for w in CREDENTIAL_PARAMS) else value)
                    for name, value in pairs
                ]
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def guess_name(url: str) -> str:
    """A readable server name from its URL: ``https://mcp.example.com/mcp`` -> ``mcp.example.com``."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2] or "server"
    segments = [s for s in parts.path.split("/") if s and s.lower() not in ("mcp", "sse", "v1", "api")]
    return f"{host}/{segments[-1]}" if segments else host


# -- the proxy --------------------------------------------------------------------------------------


@dataclass
class ProxyOptions:
    upstream: str
    """The server's MCP endpoint URL (its origin is where every request goes, path unchanged)."""
    name: str | None = None
    open_session: Callable[[Session], Recording] | None = None
    """Called once per new km session: its recording, by the user's agent or on the process's
    host (``Host.open_session``: the host's shared sinks, the session's security stage and, in
    block mode, its gate; see agent/proxy.py). None: sessions are not recorded."""
    on_shutdown: Callable[[], None] | None = None
    """Called once at shutdown, after every session has been written out (``Host.close``: the
    shared sinks flush and close; uvicorn may end the process by re-raising its signal right
    after the ASGI shutdown)."""
    blocks: bool = False
    """A policy in ``block`` mode applies: every POST body that may hold a call goes through the
    session's gate (a call with no session id opens a session for it)."""
    idle_timeout: float = 600.0
    """Seconds without traffic after which a session with no open stream is ended."""
    max_sessions: int = 100
    """Live sessions at most (each has a recorder thread and its sinks): past it, the one idle
    longest is ended to make room."""
    verify: ssl.SSLContext | str | bool = True
    """TLS verification of the upstream: True (system CAs), a CA bundle path, a context or False."""
    connect_timeout: float = 10.0
    stop_timeout: float = 60.0


def _looks_like_jsonrpc(body: bytes) -> bool:
    return b'"jsonrpc"' in body


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def _is_sse(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() == b"text/event-stream"


class HttpProxy:
    """ASGI app: the reverse proxy. One instance per ``km proxy`` (one upstream)."""

    def __init__(self, options: ProxyOptions) -> None:
        self.options = options
        parts = urlsplit(options.upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {options.upstream!r}")
        self.origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self.origin_bytes = self.origin.encode()
        self.display_upstream = display_url(options.upstream)
        self.name = options.name or guess_name(options.upstream)
        self.sessions = SessionTable(
            self.display_upstream,
            self.name,
            options.open_session,
            idle_timeout=options.idle_timeout,
            max_sessions=options.max_sessions,
            stop_timeout=options.stop_timeout,
            warn=self._warn,
        )
        self.parts = parts
        self._client: UpstreamPool | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._next_warning = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def _make_client(self) -> UpstreamPool:
        parts = self.parts
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 80)
        assert parts.hostname is not None
        return UpstreamPool(scheme, parts.hostname, port, self.options.verify, self.options.connect_timeout)

    async def startup(self) -> None:
        if self._client is None:
            self._client = self._make_client()
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        self.sessions.end_all()
        if self._client is not None:
            self._client.close()
            self._client = None
        await asyncio.to_thread(self.sessions.join)
        if self.options.on_shutdown is not None:
            await asyncio.to_thread(self.options.on_shutdown)

    async def _reap(self) -> None:
        period = max(0.05, min(RELEASE_AFTER, self.options.idle_timeout) / 2)
        while True:
            await asyncio.sleep(period)
            self.sessions.reap_idle()

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ts = time.time_ns()
        if self._client is None:
            await self.startup()
        client = self._client
        assert client is not None
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        target = raw_path + b"?" + query if query else raw_path
        client_addr = scope.get("client")
        client_host = str(client_addr[0]) if client_addr else "unknown"

        session_id: bytes | None = None
        content_type = b""
        user_agent = b""
        host = b""
        dropped = set(HOP_BY_HOP)
        headers: list[tuple[bytes, bytes]] = []
        for name, value in scope["headers"]:
            if name == b"connection":
                dropped.update(t.strip().lower() for t in value.split(b","))
            elif name == b"mcp-session-id":
                session_id = value
            elif name == b"content-type":
                content_type = value
            elif name == b"user-agent":
                user_agent = value
            elif name == b"host":
                host = value
        for name, value in scope["headers"]:
            if name in dropped or name in (b"host", b"content-length", b"expect"):
                continue
            if name == b"accept-encoding":
                value = narrow_accept_encoding(value)
            headers.append((name, value))

        body = await read_body(receive)
        mcp = mcp_headers(scope["headers"])
        is_rpc = (
            method == "POST"
            and bool(body)
            and not raw_path.startswith(b"/.well-known/")
            and _looks_like_jsonrpc(body)
            and (not content_type or _is_json(content_type))
        )

        live: LiveSession | None = None
        if session_id is not None:
            key = ("sid", session_id.decode("latin-1"))
            if method == "DELETE":
                live = self.sessions.get(key)  # ending a session km never saw does not create one
            else:
                live = self.sessions.open(key, STREAMABLE_HTTP, client_host)
        elif is_rpc:
            live = self.sessions.legacy(target)

        # block mode: any POST body a server could read as a tools/call (whatever its content
        # type or how it is written) is decided by the gate before it is sent
        if (
            self.options.blocks
            and method == "POST"
            and may_call(body)
            and not raw_path.startswith(b"/.well-known/")
        ):
            if live is None:
                live = self.sessions.stateless(client_host, user_agent, ts)  # a call with no session id
            gate = live.gate
            if gate is not None:
                if gate.policy.block_changed_tools:
                    # the gate waits for the recorder (a tools/list just received): not on the loop
                    answer = await asyncio.to_thread(gate.check, body)
                else:
                    answer = gate.check(body)
                if answer is not None:
                    await self._answer_blocked(send, live, body, ts, answer, mcp)
                    return

        if is_rpc and live is not None:
            live.submit(CLIENT_TO_SERVER, body, ts, mcp)

        try:
            response = await client.request(method.encode(), target, headers, body)
        except UpstreamError as exc:
            if is_rpc and live is None:
                live = self.sessions.stateless(client_host, user_agent, ts)
                live.submit(CLIENT_TO_SERVER, body, ts, mcp)
            await self._upstream_failed(send, exc, body if is_rpc else None, live)
            return

        try:
            resp_sid = response.header(b"mcp-session-id")
            if live is None and is_rpc:
                if resp_sid:
                    live = self.sessions.open(
                        ("sid", resp_sid.decode("latin-1")), STREAMABLE_HTTP, client_host, ts
                    )
                else:
                    live = self.sessions.stateless(client_host, user_agent, ts)
                live.submit(CLIENT_TO_SERVER, body, ts, mcp)
            resp_type = response.header(b"content-type") or b""
            encoding = (response.header(b"content-encoding") or b"").strip().lower()
            out_headers = _response_headers(response)
            if _is_sse(resp_type):
                await self._stream_sse(
                    scope, receive, send, response, out_headers, live, session_id is None, host,
                    client_host, user_agent, encoding,
                )  # fmt: skip
            else:
                await self._forward_body(send, response, out_headers, live if is_rpc else None, encoding)
        except UpstreamError as exc:
            # the answer had started: the client sees the connection close before its end
            self._warn(f"km proxy: the upstream server {self.display_upstream} broke off an answer: {exc}")
            return
        finally:
            await response.aclose()

        if live is not None and session_id is not None:
            status = response.status
            if (
                (method == "DELETE" and 200 <= status < 300)
                or status == 404
                or self.sessions.was_ended(live.key)
            ):
                self.sessions.end(live, gone=True)

    async def _forward_body(
        self,
        send: Send,
        response: UpstreamResponse,
        headers: list[tuple[bytes, bytes]],
        live: LiveSession | None,
        encoding: bytes,
    ) -> None:
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        decode = content_decoder(encoding) if live is not None else None
        if decode is None:
            async for chunk in response.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        parts: list[bytes] = []
        size = 0  # decoded bytes so far; past MAX_BODY_BYTES, nothing more is decoded or kept
        held: bytes | None = None
        async for chunk in response.chunks():
            if held is not None:
                await send({"type": "http.response.body", "body": held, "more_body": True})
            held = chunk
            if size <= MAX_BODY_BYTES:
                part = decode.decode(chunk, MAX_BODY_BYTES + 1 - size)
                size += len(part)
                parts.append(part)
                if size > MAX_BODY_BYTES:
                    parts = []
        if live is not None and size > MAX_BODY_BYTES:
            live.submit_omitted(SERVER_TO_CLIENT, size, time.time_ns())
        elif live is not None and parts:
            # recorded before the last bytes reach the client, so the answer is queued before what follows
            data = parts[0] if len(parts) == 1 else b"".join(parts)
            if _looks_like_jsonrpc(data):
                live.submit(SERVER_TO_CLIENT, data, time.time_ns())
        await send({"type": "http.response.body", "body": held or b"", "more_body": False})

    async def _stream_sse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        response: UpstreamResponse,
        headers: list[tuple[bytes, bytes]],
        live: LiveSession | None,
        sessionless: bool,
        host: bytes,
        client_host: str,
        user_agent: bytes,
        encoding: bytes,
    ) -> None:
        decode = content_decoder(encoding)
        parser = SSEParser(MAX_BODY_BYTES)
        # A GET stream with no session: the first event says whether it is a legacy SSE session
        # (an ``endpoint`` event, rewritten if it names the upstream's origin) or a stateless one.
        wait_first = live is None and sessionless and decode is IDENTITY
        if wait_first:
            headers = [(k, v) for k, v in headers if k != b"content-length"]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if live is not None:
            live.streams += 1
        state: dict[str, Any] = {"live": live}

        async def pump() -> None:
            held: list[bytes] = []
            held_size = 0
            waiting = wait_first
            legacy: LegacyStream | None = None
            async for chunk in response.chunks():
                now = time.time_ns()
                if decode is None:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    continue
                events = [event for piece in decode.pieces(chunk) for event in parser.feed(piece)]
                if waiting:
                    held.append(chunk)
                    held_size += len(chunk)
                    if not events and held_size < FIRST_EVENT_LIMIT:
                        continue
                    waiting = False
                    data = b"".join(held)
                    held = []
                    first = events[0] if events else None
                    # offsets of the events are relative to the last chunk: make them relative to `data`
                    base = len(data) - len(chunk)
                    if first is not None and first.event == "endpoint":
                        end = base + first.end
                        data = rewrite_endpoint(data, end, first, scope, host, self.origin_bytes)
                        target = endpoint_target(first, scope, host, self.origin)
                        new = self.sessions.open_legacy(target, client_host)
                        legacy = new.legacy = LegacyStream(send, parser)
                    else:
                        new = self.sessions.stateless(client_host, user_agent)
                    new.streams += 1
                    state["live"] = new
                    self._capture_events(new, events, now)
                    if legacy is not None:
                        async with legacy.lock:
                            await legacy.write(data)
                    else:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                    continue
                current = state["live"]
                if current is not None and events:
                    self._capture_events(current, events, now)
                if legacy is not None:
                    await legacy.forward(chunk, events)
                else:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if held:
                await send({"type": "http.response.body", "body": b"".join(held), "more_body": True})

        pump_task = asyncio.ensure_future(pump())
        watch_task = asyncio.ensure_future(wait_disconnect(receive))
        try:
            done, _ = await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
            disconnected = watch_task in done
            for task in (pump_task, watch_task):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if pump_task.done() and not pump_task.cancelled():
                exc = pump_task.exception()
                if exc is not None and not isinstance(exc, UpstreamError):
                    raise exc
            if not disconnected:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            current = state["live"]
            if current is not None:
                current.streams -= 1
                current.last_active = time.monotonic()
                if current.legacy is not None:
                    current.legacy.open = False
                    self.sessions.end(current)  # a legacy session lives as long as its stream

    def _capture_events(self, live: LiveSession, events: list[SSEEvent], ts_ns: int) -> None:
        for event in events:
            if event.truncated:
                if event.event == "message" and live.first_sighting(event.id):
                    live.submit_omitted(SERVER_TO_CLIENT, event.size, ts_ns)
                continue
            if event.event != "message" or not event.data.strip():
                continue  # priming events (empty data, an id to resume from), other event types
            if live.first_sighting(event.id):
                live.submit(SERVER_TO_CLIENT, event.data, ts_ns)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now >= self._next_warning:  # once in a while, not once per request of a retrying client
            self._next_warning = now + WARNING_INTERVAL
            _log.warning(message)

    async def _answer_blocked(
        self, send: Send, live: LiveSession, body: bytes, ts: int, answer: bytes, mcp: dict[str, str]
    ) -> None:
        live.submit(CLIENT_TO_SERVER, body, ts, mcp)
        if not answer:  # a refused notification: nothing to answer
            await simple_response(send, 202, b"text/plain; charset=utf-8", b"Accepted")
            return
        live.submit(SERVER_TO_CLIENT, answer, time.time_ns())
        if live.legacy is not None:
            # legacy SSE: answers travel on the session's stream; the POST itself is just accepted
            await live.legacy.inject(encode_event(answer, event="message"))
            await simple_response(send, 202, b"text/plain; charset=utf-8", b"Accepted")
            return
        await simple_response(send, 200, b"application/json", answer)

    async def _upstream_failed(
        self, send: Send, exc: UpstreamError, body: bytes | None, live: LiveSession | None
    ) -> None:
        reason = f"km proxy: cannot reach the upstream server {self.display_upstream}: {exc}"
        self._warn(reason)
        status = 504 if exc.timeout else 502
        message_id: Any = None
        if body is not None:
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(body)
                if isinstance(parsed, dict):
                    message_id = parsed.get("id")
        if body is None or message_id is None:
            await simple_response(send, status, b"text/plain; charset=utf-8", reason.encode())
            return
        answer = orjson.dumps(
            {"jsonrpc": "2.0", "id": message_id, "error": {"code": UPSTREAM_ERROR_CODE, "message": reason}}
        )
        if live is not None:
            live.submit(SERVER_TO_CLIENT, answer, time.time_ns())
        await simple_response(send, status, b"application/json", answer)


# -- helpers ----------------------------------------------------------------------------------------


def _response_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    raw = response.headers
    dropped = HOP_BY_HOP
    for name, value in raw:
        if name == b"connection":
            dropped = dropped | {t.strip().lower() for t in value.split(b",")}
    return [(name, value) for name, value in raw if name not in dropped]
