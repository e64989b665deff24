"""The bridge: a stdio MCP client talks to a remote (HTTP) MCP server through km.

``km monitor --url URL`` speaks newline-delimited JSON-RPC on its stdin/stdout, like any stdio
server, and is an HTTP client of the remote server: Streamable HTTP (POST per message, answers
as JSON or SSE, the GET stream for server-initiated messages, ``Mcp-Session-Id``,
``MCP-Protocol-Version``, ``Last-Event-ID`` resumption, the ``Mcp-Method``/``Mcp-Name``/
``Mcp-Param-*`` headers of the 2026-07-28 protocol, DELETE at the end) or the legacy HTTP+SSE
transport (GET the SSE stream, POST to its ``endpoint``).

Transport choice (``transport="auto"``): a URL whose path ends in ``/sse`` is legacy SSE; any
other starts as Streamable HTTP and, as the MCP specification's backwards-compatibility rule
says, falls back to legacy SSE when the first POST is refused with a 4xx (other than 401/403)
and a GET of the URL opens an SSE stream that announces an endpoint.

Every message is recorded as it is read: the client's lines are handed to the recorder before
they are sent, the server's messages before they are written to stdout. Message bytes are
never re-encoded, except that line breaks in a server's (pretty-printed) JSON are turned into
spaces so that each message stays one line on stdout. Headers given with ``--header`` (e.g.
``Authorization``) are sent on every request and never recorded.

When a request cannot be delivered (the server is unreachable, answers 401, an SSE stream ends
without the answer...), the client gets a JSON-RPC error for it saying what happened, so it
never waits forever.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from ..jsonlimits import MAX_BODY_BYTES
from ..jsonrpc import PROTOCOL_VERSION_META_KEY, LineFramer
from ..model import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from .encoding import IDENTITY, content_decoder
from .sessions import SSE, STREAMABLE_HTTP
from .sse import SSEEvent, SSEParser
from .upstream import upstream_ssl_context

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from typing import Protocol

    from .sessions import Recording

    class BridgeRecording(Recording, Protocol):
        """A bridged session's recording (a SessionHandle, or an AgentLink to the user's agent)."""

        def update_session(self, **details: object) -> None: ...


READ_SIZE = 1 << 16
BRIDGE_ERROR_CODE = -32000
RESUME_ATTEMPTS = 3
DEFAULT_RETRY_MS = 1000
FINISH_SECONDS = 1.0
"""After the client closes stdin: how long answers still in flight are awaited."""
NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_HEADER_SAFE = re.compile(r"^[\x20-\x7E]*$")
_B64 = re.compile(r"^=\?base64\?.*\?=$")
_HEADER_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def remember_missing_sniffio() -> None:
    """httpcore imports the optional ``sniffio`` package on every request (four times); when it is
    not installed, each attempt searches ``sys.path`` again, about 0.2 ms each on these machines.
    Record its absence once, as the import system allows (a ``None`` entry in ``sys.modules``)."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def guess_transport(url: str) -> str:
    """``sse`` for a URL whose path ends in ``/sse``, else ``streamable_http``."""
    return SSE if urlsplit(url).path.rstrip("/").endswith("/sse") else STREAMABLE_HTTP


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``("Name", "value")``; raises ValueError with a message for a user."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or not _HEADER_TOKEN.fullmatch(name):
        raise ValueError(f"expected a header as 'Name: value', got {text!r}")
    return name, value.strip()


def encode_header_value(value: str) -> str:
    """The MCP header-value codec: plain printable ASCII as is, anything else as ``=?base64?...?=``."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _B64.fullmatch(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def _one_line(data: bytes) -> bytes:
    """A JSON text on one line (raw CR/LF can only be whitespace between JSON tokens)."""
    if b"\n" in data or b"\r" in data:
        data = data.replace(b"\r", b" ").replace(b"\n", b" ")
    return data.strip()


def _header_paths(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """``x-mcp-header`` annotations reachable through ``properties`` only: (argument path, header token)."""
    found: list[tuple[tuple[str, ...], str]] = []
    if not isinstance(schema, dict):
        return found
    token = schema.get("x-mcp-header")
    if path and isinstance(token, str) and _HEADER_TOKEN.fullmatch(token):
        found.append((path, token))
    props = schema.get("properties")
    if isinstance(props, dict):
        for name, sub in props.items():
            found.extend(_header_paths(sub, (*path, str(name))))
    return found


class UpstreamError(Exception):
    """A message could not be delivered; the text is meant for the user."""


class Bridge:
    def __init__(
        self,
        url: str,
        headers: Mapping[str, str],
        recording: BridgeRecording,
        stdin_fd: int,
        stdout_fd: int,
        *,
        transport: str = "auto",
        verify: bool | str = True,
    ) -> None:
        self.url = url
        self.headers = dict(headers)
        self.recording = recording
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.mode = guess_transport(url) if transport == "auto" else transport
        self.auto = transport == "auto" and self.mode == STREAMABLE_HTTP
        self.gate = recording.gate
        self.verify = verify
        self.session_id: str | None = None
        self.protocol_version: str | None = None
        self.modern = False
        self.endpoint: str | None = None
        self._endpoint_ready: asyncio.Event | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._initialize_ids: set[str] = set()
        self._tool_headers: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self._list_ids: set[str] = set()
        self._get_stream: asyncio.Task[None] | None = None
        self._first_post = True
        self._stdout_open = True
        self._set_transport(self.mode)

    # -- recording and output --------------------------------------------------------------------

    def _set_transport(self, mode: str) -> None:
        self.mode = mode
        self.recording.update_session(transport=mode)

    def _to_client(self, data: bytes) -> None:
        """Record one server message, then write it to stdout as one line."""
        line = _one_line(data)
        if not line:
            return
        self.recording.submit_message(SERVER_TO_CLIENT, line, time.time_ns())
        self._learn(line)
        if not self._stdout_open:
            return
        view = memoryview(line + b"\n")
        try:
            while view:
                view = view[os.write(self.stdout_fd, view) :]
        except OSError:
            self._stdout_open = False  # the client went away; keep recording until stdin closes

    def _error_to_client(self, message_id: Any, text: str, code: int = BRIDGE_ERROR_CODE) -> None:
        _log.error(f"km: {text}")
        if message_id is None:
            return
        self._to_client(
            orjson.dumps({"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": text}})
        )

    def _learn(self, line: bytes) -> None:
        """Negotiated details the HTTP transport needs, from answers to initialize and tools/list."""
        if not self._initialize_ids and not self._list_ids:
            return
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict) or "id" not in message:
            return
        key = repr(message.get("id"))
        result = message.get("result")
        if key in self._initialize_ids:
            self._initialize_ids.discard(key)
            if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
                self.protocol_version = result["protocolVersion"]
        elif key in self._list_ids:
            self._list_ids.discard(key)
            tools = result.get("tools") if isinstance(result, dict) else None
            for tool in tools if isinstance(tools, list) else []:
                if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                    paths = _header_paths(tool.get("inputSchema"))
                    if paths:
                        self._tool_headers[tool["name"]] = paths
                    else:
                        self._tool_headers.pop(tool["name"], None)

    # -- run -------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[bytes | None] = asyncio.Queue()
        reader = threading.Thread(target=self._read_stdin, args=(loop, lines), name="km-stdin", daemon=True)
        reader.start()
        stop = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, stop.set)
        remember_missing_sniffio()
        self._client = httpx.AsyncClient(
            # only codings km inflates itself, in bounded steps (see _read_body)
            headers={"Accept-Encoding": "gzip, deflate", **self.headers},
            verify=self.verify if isinstance(self.verify, bool) else upstream_ssl_context(self.verify),
            timeout=httpx.Timeout(None, connect=10.0),
            follow_redirects=True,
        )
        try:
            stopper = asyncio.ensure_future(stop.wait())
            while True:
                getter = asyncio.ensure_future(lines.get())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                line = getter.result()
                if line is None:
                    break
                await self._from_client(line)
            stopper.cancel()
            await self._finish()
        finally:
            await self._client.aclose()
        return 0

    def _read_stdin(self, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[bytes | None]) -> None:
        framer = LineFramer()
        while True:
            try:
                data = os.read(self.stdin_fd, READ_SIZE)
            except OSError:
                data = b""
            if not data:
                rest = framer.flush()
                if rest is not None and rest.strip():
                    loop.call_soon_threadsafe(lines.put_nowait, rest)
                loop.call_soon_threadsafe(lines.put_nowait, None)
                return
            for line in framer.feed(data):
                if line.strip():
                    loop.call_soon_threadsafe(lines.put_nowait, line)

    async def _finish(self) -> None:
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=FINISH_SECONDS)
        for task in list(self._tasks) + ([self._get_stream] if self._get_stream else []):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.mode == STREAMABLE_HTTP and self.session_id is not None and self._client is not None:
            # end the session on the server, as a Streamable HTTP client does when it closes
            with contextlib.suppress(httpx.HTTPError):
                await self._client.delete(self.url, headers=self._base_headers(), timeout=5.0)

    # -- client messages -------------------------------------------------------------------------

    async def _from_client(self, line: bytes) -> None:
        ts = time.time_ns()
        try:
            message: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None
        single = message if isinstance(message, dict) else None
        is_request = single is not None and isinstance(single.get("method"), str) and "id" in single
        self.recording.submit_message(CLIENT_TO_SERVER, line, ts)
        gate = self.gate
        if gate is not None:
            # policy block mode, as for a stdio server: a refused call is answered here
            if gate.policy.block_changed_tools:  # it waits for the recorder: not on the event loop
                answer = await asyncio.to_thread(gate.check, line)
            else:
                answer = gate.check(line)
            if answer is not None:
                if answer:
                    self._to_client(answer)
                return
        if single is not None:
            method = single.get("method")
            if method == "initialize" and "id" in single:
                self._initialize_ids.add(repr(single["id"]))
            elif method == "tools/list" and "id" in single:
                self._list_ids.add(repr(single["id"]))
            params = single.get("params")
            meta = params.get("_meta") if isinstance(params, dict) else None
            if isinstance(meta, dict) and isinstance(meta.get(PROTOCOL_VERSION_META_KEY), str):
                self.modern = True
                self.protocol_version = meta[PROTOCOL_VERSION_META_KEY]
            if self.modern and method == "notifications/cancelled" and isinstance(params, dict):
                # 2026-07-28 HTTP has no client notifications: closing the request's stream cancels it
                task = self._in_flight.get(repr(params.get("requestId")))
                if task is not None:
                    task.cancel()
                    return
        message_id = single.get("id") if single is not None and "id" in single else None
        if is_request and not self._first_post:
            task = asyncio.ensure_future(self._deliver(line, single, message_id))
            key = repr(message_id)
            self._in_flight[key] = task
            self._tasks.add(task)

            def done(t: asyncio.Task[None], key: str = key) -> None:
                self._tasks.discard(t)
                if self._in_flight.get(key) is t:
                    del self._in_flight[key]

            task.add_done_callback(done)
        else:
            # notifications, answers to the server, and the very first message (the transport is
            # settled by it) are sent in order
            await self._deliver(line, single, message_id)
            if single is not None and single.get("method") == "notifications/initialized":
                self._start_get_stream()

    async def _deliver(self, line: bytes, message: dict[str, Any] | None, message_id: Any) -> None:
        try:
            if self.mode == SSE:
                await self._post_legacy(line, message_id)
            else:
                await self._post(line, message, message_id)
        except UpstreamError as exc:
            self._error_to_client(message_id, str(exc))
        except httpx.HTTPError as exc:
            self._error_to_client(message_id, f"cannot reach the MCP server at {self._shown_url()}: {exc!r}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a client waiting on a bug of ours
            self._error_to_client(message_id, f"internal error in the km bridge: {exc!r}")

    def _shown_url(self) -> str:
        from .http import display_url

        return display_url(self.url)

    # -- Streamable HTTP -------------------------------------------------------------------------

    def _base_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    def _message_headers(self, message: dict[str, Any] | None) -> dict[str, str]:
        headers = self._base_headers()
        headers["Accept"] = "application/json, text/event-stream"
        headers["Content-Type"] = "application/json"
        if message is None:
            return headers
        method = message.get("method")
        if method == "initialize":
            headers.pop("MCP-Protocol-Version", None)
        if not self.modern or not isinstance(method, str):
            return headers
        headers["Mcp-Method"] = method
        params = message.get("params")
        if not isinstance(params, dict):
            return headers
        meta = params.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get(PROTOCOL_VERSION_META_KEY), str):
            headers["MCP-Protocol-Version"] = meta[PROTOCOL_VERSION_META_KEY]
        key = NAME_PARAMS.get(method)
        if key is not None and isinstance(params.get(key), str):
            headers["Mcp-Name"] = encode_header_value(params[key])
        if method == "tools/call" and isinstance(params.get("name"), str):
            arguments = params.get("arguments")
            for path, token in self._tool_headers.get(params["name"], []):
                value: Any = arguments
                for step in path:
                    value = value.get(step) if isinstance(value, dict) else None
                if isinstance(value, bool):
                    headers[f"Mcp-Param-{token}"] = "true" if value else "false"
                elif isinstance(value, str | int | float):
                    headers[f"Mcp-Param-{token}"] = encode_header_value(str(value))
        return headers

    async def _post(self, line: bytes, message: dict[str, Any] | None, message_id: Any) -> None:
        assert self._client is not None
        first, self._first_post = self._first_post, False
        async with self._client.stream(
            "POST", self.url, content=line, headers=self._message_headers(message)
        ) as response:
            sid = response.headers.get("mcp-session-id")
            if sid:
                self.session_id = sid
            status = response.status_code
            ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if (
                first
                and self.auto
                and 400 <= status < 500
                and status not in (401, 403)
                and await self._fall_back_to_sse()
            ):
                await self._post_legacy(line, message_id)
                return
            if ctype == "text/event-stream":
                await self._read_post_stream(response, message_id)
                return
            body = await _read_body(response)
            if status == 202 or (not body and 200 <= status < 300):
                return
            if status == 404 and self.session_id is not None and "mcp-session-id" not in response.headers:
                self.session_id = None
            if (ctype == "application/json" or ctype.endswith("+json")) and b'"jsonrpc"' in body:
                self._to_client(body)
                return
            if status >= 400:
                raise UpstreamError(self._http_error_text(response, body))

    def _http_error_text(self, response: httpx.Response, body: bytes) -> str:
        text = f"the MCP server at {self._shown_url()} answered HTTP {response.status_code}"
        if response.reason_phrase:
            text += f" {response.reason_phrase}"
        detail = body[:300].decode("utf-8", "replace").strip()
        if detail:
            text += f": {detail}"
        if response.status_code == 401:
            challenge = response.headers.get("www-authenticate")
            text += (
                f" (WWW-Authenticate: {challenge})" if challenge else ""
            ) + ". Pass credentials with --header 'Authorization: Bearer <token>'."
        return text

    async def _read_post_stream(self, response: httpx.Response, message_id: Any) -> None:
        parser = SSEParser()
        retry_ms: int | None = None
        answered = False
        with contextlib.suppress(httpx.HTTPError):
            async for chunk in response.aiter_raw():
                for event in parser.feed(chunk):
                    if event.retry is not None:
                        retry_ms = event.retry
                    if self._deliver_event(event, message_id):
                        answered = True
        if answered or message_id is None:
            return
        if parser.last_event_id:
            await self._resume(parser.last_event_id, retry_ms, message_id)
            return
        raise UpstreamError("the server's SSE stream ended without an answer to this request")

    def _deliver_event(self, event: SSEEvent, message_id: Any) -> bool:
        """Write a stream's message event to the client; True if it answered ``message_id``."""
        if event.event != "message" or not event.data.strip():
            return False
        self._to_client(event.data)
        if message_id is None:
            return False
        try:
            message = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            return False
        return (
            isinstance(message, dict)
            and "method" not in message
            and message.get("id") == message_id
            and ("result" in message or "error" in message)
        )

    async def _resume(self, last_event_id: str, retry_ms: int | None, message_id: Any) -> None:
        """Resume a request's stream with ``Last-Event-ID`` until its answer arrives."""
        assert self._client is not None
        failures = 0
        while failures < RESUME_ATTEMPTS:
            await asyncio.sleep((retry_ms if retry_ms is not None else DEFAULT_RETRY_MS) / 1000)
            headers = self._base_headers()
            headers["Accept"] = "text/event-stream"
            headers["Last-Event-ID"] = last_event_id
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code != 200:
                        failures += 1
                        continue
                    parser = SSEParser()
                    async for chunk in response.aiter_raw():
                        for event in parser.feed(chunk):
                            if event.retry is not None:
                                retry_ms = event.retry
                            if self._deliver_event(event, message_id):
                                return
                    if parser.last_event_id:
                        last_event_id = parser.last_event_id
                        failures = 0
                    else:
                        failures += 1
            except httpx.HTTPError:
                failures += 1
        raise UpstreamError("the server's SSE stream ended and could not be resumed; no answer arrived")

    def _start_get_stream(self) -> None:
        if self.mode == STREAMABLE_HTTP and self.session_id is not None and self._get_stream is None:
            self._get_stream = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        """The GET stream for server-initiated messages, resumed with Last-Event-ID when it drops."""
        assert self._client is not None
        last_event_id = ""
        retry_ms: int | None = None
        failures = 0
        while failures < 2:
            headers = self._base_headers()
            headers["Accept"] = "text/event-stream"
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                async with self._client.stream("GET", self.url, headers=headers) as response:
                    if response.status_code == 405:
                        return  # the server offers no GET stream
                    if response.status_code != 200:
                        failures += 1
                    else:
                        failures = 0
                        parser = SSEParser()
                        async for chunk in response.aiter_raw():
                            for event in parser.feed(chunk):
                                if event.retry is not None:
                                    retry_ms = event.retry
                                self._deliver_event(event, None)
                        last_event_id = parser.last_event_id or last_event_id
            except httpx.HTTPError:
                failures += 1
            await asyncio.sleep((retry_ms if retry_ms is not None else DEFAULT_RETRY_MS) / 1000)

    # -- legacy HTTP+SSE -------------------------------------------------------------------------

    async def _fall_back_to_sse(self) -> bool:
        """Try the legacy transport on the same URL; True if its stream announced an endpoint."""
        try:
            await self._open_legacy(self.url)
        except (UpstreamError, httpx.HTTPError):
            return False
        self._set_transport(SSE)
        return True

    async def _open_legacy(self, url: str) -> None:
        ready = self._endpoint_ready = asyncio.Event()
        failure: list[str] = []
        self._get_stream = asyncio.ensure_future(self._legacy_stream(url, failure))
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({waiter, self._get_stream}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiter.cancel()
            self._get_stream = None
            raise UpstreamError(failure[0] if failure else "the SSE stream announced no endpoint")

    async def _legacy_stream(self, url: str, failure: list[str]) -> None:
        assert self._client is not None and self._endpoint_ready is not None
        headers = {"Accept": "text/event-stream"}
        try:
            async with self._client.stream("GET", url, headers=headers) as response:
                ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if response.status_code != 200 or ctype != "text/event-stream":
                    body = await _read_body(response)
                    failure.append(self._http_error_text(response, body))
                    return
                parser = SSEParser()
                async for chunk in response.aiter_raw():
                    for event in parser.feed(chunk):
                        if event.event == "endpoint" and self.endpoint is None:
                            self.endpoint = urljoin(url, event.text.strip())
                            self._endpoint_ready.set()
                        else:
                            self._deliver_event(event, None)
        except httpx.HTTPError as exc:
            failure.append(f"cannot open the SSE stream at {self._shown_url()}: {exc!r}")
            return
        if self._endpoint_ready.is_set():
            _log.warning("km: the server closed its SSE stream; the session is over")

    async def _post_legacy(self, line: bytes, message_id: Any) -> None:
        assert self._client is not None
        self._first_post = False
        if self.endpoint is None:
            if self._get_stream is None:
                await self._open_legacy(self.url)
            elif self._endpoint_ready is not None:
                await self._endpoint_ready.wait()
        assert self.endpoint is not None
        if self._get_stream is not None and self._get_stream.done():
            raise UpstreamError("the server's SSE stream is closed; restart the client to reconnect")
        async with self._client.stream(
            "POST", self.endpoint, content=line, headers={"Content-Type": "application/json"}
        ) as response:
            body = await _read_body(response)
        if response.status_code >= 400:
            raise UpstreamError(self._http_error_text(response, body))


async def _read_body(response: httpx.Response) -> bytes:
    """The body, decoded; a compressed one is inflated to MAX_BODY_BYTES at most (a gzip bomb
    is refused with UpstreamError, never inflated whole)."""
    encoding = response.headers.get("content-encoding", "").strip().lower().encode()
    decoder = content_decoder(encoding)
    if decoder is None:
        raise UpstreamError(
            f"the server answered with Content-Encoding {encoding.decode()!r}, which km cannot decode"
        )
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        part = decoder.decode(chunk, MAX_BODY_BYTES + 1 - size)
        size += len(part)
        if size > MAX_BODY_BYTES and decoder is not IDENTITY:
            raise UpstreamError(
                f"the server's answer is over {MAX_BODY_BYTES} bytes once decompressed; km does not "
                "inflate more (a gzip bomb?), so this request got no answer"
            )
        parts.append(part)
    return b"".join(parts)


def run_bridge(
    url: str,
    headers: Mapping[str, str],
    recording: BridgeRecording,
    stdin_fd: int | None = None,
    stdout_fd: int | None = None,
    *,
    transport: str = "auto",
    verify: bool | str = True,
) -> int:
    """Relay a stdio client (``stdin_fd``/``stdout_fd``) to the MCP server at ``url`` until the
    client closes stdin; returns the exit code. ``recording``: the session handed to the user's
    agent, or opened on the process's :class:`~kilometers.host.Host` (its gate applies in block
    mode); the caller closes it."""
    bridge = Bridge(
        url,
        headers,
        recording,
        sys.stdin.fileno() if stdin_fd is None else stdin_fd,
        sys.stdout.fileno() if stdout_fd is None else stdout_fd,
        transport=transport,
        verify=verify,
    )
    return asyncio.run(bridge.run())
