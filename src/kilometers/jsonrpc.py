"""Sans-IO capture core: framing, classification and correlation of JSON-RPC messages.

Nothing here does IO. A transport feeds raw bytes per direction with the time they were
read; :class:`Capture` returns :class:`~kilometers.model.Event` objects and keeps the
session's negotiated details up to date. Every transport (stdio, HTTP, replay) reuses it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .jsonlimits import loads_message, too_deep, value_too_deep
from .model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Direction, Event, Kind, Message, Session

PROTOCOL_VERSION_META_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_META_KEY = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_META_KEY = "io.modelcontextprotocol/serverInfo"

CANCELLED = "notifications/cancelled"

MAX_PENDING_REQUESTS = 100_000
"""Unanswered requests remembered for correlation; the oldest are forgotten beyond this."""

UNPARSEABLE_RULE = "jsonrpc.unparseable_request"
"""The finding on an ``invalid`` event that still reads as a request (see :func:`recover`)."""
_SCORE = {"medium": 40, "high": 70}


class LineFramer:
    """Splits a byte stream into newline-delimited frames, with no limit on a frame's size."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every frame completed by them (without the ``\\n``)."""
        if b"\n" not in data:
            if data:
                self._parts.append(data)
            return []
        lines = data.split(b"\n")
        if self._parts:
            self._parts.append(lines[0])
            lines[0] = b"".join(self._parts)
            self._parts = []
        tail = lines.pop()
        if tail:
            self._parts.append(tail)
        return lines

    def flush(self) -> bytes | None:
        """The trailing partial frame at end of stream, if any."""
        if not self._parts:
            return None
        rest = b"".join(self._parts)
        self._parts = []
        return rest

    @property
    def pending_bytes(self) -> int:
        return sum(len(p) for p in self._parts)


@dataclass(slots=True)
class Filters:
    """Which messages are recorded. Forwarding is never affected."""

    exclude_ping: bool = False
    include_methods: list[str] = field(default_factory=list)
    exclude_methods: list[str] = field(default_factory=list)

    def records(self, method: str | None) -> bool:
        if method is None:
            return True
        if self.exclude_ping and method == "ping":
            return False
        if self.include_methods and not any(fnmatch.fnmatchcase(method, p) for p in self.include_methods):
            return False
        return not any(fnmatch.fnmatchcase(method, p) for p in self.exclude_methods)


@dataclass(slots=True)
class _Pending:
    event_id: str
    ts_ns: int
    method: str
    tool: str | None
    resource_uri: str | None
    prompt_name: str | None
    recorded: bool


def _id_key(direction: Direction, jsonrpc_id: Any) -> tuple[str, str]:
    if isinstance(jsonrpc_id, str):
        return (direction, "s" + jsonrpc_id)
    return (direction, "n" + repr(jsonrpc_id))


def _opposite(direction: Direction) -> Direction:
    return SERVER_TO_CLIENT if direction == CLIENT_TO_SERVER else CLIENT_TO_SERVER


def classify(message: Any) -> Kind:
    """JSON-RPC 2.0 kind of one decoded message."""
    if not isinstance(message, dict):
        return "invalid"
    if isinstance(message.get("method"), str):
        return "request" if "id" in message else "notification"
    if "id" in message:
        if "error" in message:
            return "error"
        if "result" in message:
            return "response"
    return "invalid"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _kept(value: Any) -> bool:
    """A session detail (client, server, capabilities) is kept when it is an object within the limit."""
    return isinstance(value, dict) and not value_too_deep(value)


# -- lines that are not strict JSON ----------------------------------------------------------------

_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|(.))", re.DOTALL)
_FIELD = {
    key: re.compile(rf'"{key}"\s*:\s*(?:"([^"]*)"|(-?\d+))', re.IGNORECASE)
    for key in ("method", "name", "id")
}


def may_call(data: bytes) -> bool:
    """False only when ``data`` cannot carry a ``tools/call`` however a server reads it: it does
    not spell the method and has no escape that could (the gate's fast path)."""
    return b"tools/call" in data or b"\\" in data


def recover(line: bytes) -> Any:
    """The message a lenient server reads from a line that is not strict JSON (``orjson``
    refuses it): invalid UTF-8 replaced, lone surrogates, ``NaN``/``Infinity`` and raw control
    characters accepted. None when even that fails (or when it nests too deeply)."""
    if too_deep(line):
        return None
    try:
        return json.loads(line.decode("utf-8", "replace"), strict=False)
    except (ValueError, RecursionError):
        return None


def unescaped(line: bytes) -> str:
    """The text of a line with its JSON escapes resolved (``tools\\/call`` reads ``tools/call``):
    what a line that no parser accepts may still spell."""
    text = line.decode("utf-8", "replace")
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else m[2], text)


def _clean(value: Any) -> str | None:
    """A recovered string km can store (lone surrogates replaced), or None."""
    return value.encode("utf-8", "replace").decode() if isinstance(value, str) else None


def recovered_fields(line: bytes) -> tuple[str | None, str | None, Any]:
    """(method, tool, JSON-RPC id) of a line that is not strict JSON, as far as they can be read:
    from :func:`recover`, else off its unescaped text."""
    message = recover(line)
    if isinstance(message, list):
        message = next((m for m in message if isinstance(m, dict) and "method" in m), None)
    if isinstance(message, dict):
        params = message.get("params")
        method = _clean(message.get("method"))
        tool = _clean(params.get("name")) if method == "tools/call" and isinstance(params, dict) else None
        jsonrpc_id = message.get("id")
    else:
        text = unescaped(line)
        found = {key: pattern.search(text) for key, pattern in _FIELD.items()}
        method = found["method"][1] if found["method"] else None
        tool = found["name"][1] if method == "tools/call" and found["name"] else None
        jsonrpc_id = None
        if found["id"]:
            jsonrpc_id = found["id"][1] if found["id"][1] is not None else int(found["id"][2])
    if isinstance(jsonrpc_id, str):
        jsonrpc_id = _clean(jsonrpc_id)
    elif isinstance(jsonrpc_id, bool) or not isinstance(jsonrpc_id, int):
        jsonrpc_id = None
    return method, tool, jsonrpc_id


class Capture:
    """Turns the bytes of one session into events. Not thread-safe: feed it from one thread."""

    def __init__(
        self,
        session: Session,
        filters: Filters | None = None,
        payload_limit: int = 0,
    ) -> None:
        self.session = session
        self.filters = filters or Filters()
        self.payload_limit = payload_limit
        self.session_changed = False
        """Set when initialize/discover filled in session details; the caller resets it."""
        self._framers = {CLIENT_TO_SERVER: LineFramer(), SERVER_TO_CLIENT: LineFramer()}
        self._pending: dict[tuple[str, str], _Pending] = {}

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, direction: Direction, data: bytes, ts_ns: int) -> list[Event]:
        events: list[Event] = []
        for line in self._framers[direction].feed(data):
            self._decode(direction, line, ts_ns, events)
        return events

    def finish(self, ts_ns: int) -> list[Event]:
        """End of both streams: a trailing partial line becomes an ``invalid`` event."""
        events: list[Event] = []
        for direction, framer in self._framers.items():
            rest = framer.flush()
            if rest is not None:
                events.append(self._invalid(direction, rest, ts_ns))
        return events

    def feed_message(self, direction: Direction, line: bytes, ts_ns: int) -> list[Event]:
        """Feed one already-framed message (HTTP bodies, SSE data fields, replay files)."""
        events: list[Event] = []
        self._decode(direction, line, ts_ns, events)
        return events

    # -- decoding ------------------------------------------------------------------------------

    def _decode(self, direction: Direction, line: bytes, ts_ns: int, out: list[Event]) -> None:
        try:
            # over the limit: its bytes were forwarded untouched, what is kept is the marker
            message, deep = loads_message(line)
        except orjson.JSONDecodeError:
            out.append(self._invalid(direction, line, ts_ns))
            return
        if isinstance(message, list):
            if not message:
                out.append(self._invalid(direction, line, ts_ns))
                return
            for element in message:
                if deep and value_too_deep(element):
                    self._over_deep(direction, element, len(line), ts_ns, out)
                    continue
                text = orjson.dumps(element).decode()
                self._message(direction, element, text, len(text), ts_ns, out)
            return
        if deep:
            self._over_deep(direction, message, len(line), ts_ns, out)
            return
        text = line.decode()
        self._message(direction, message, text.rstrip(), len(line), ts_ns, out)

    def _over_deep(self, direction: Direction, message: Any, size: int, ts_ns: int, out: list[Event]) -> None:
        """A message nested deeper than MAX_DEPTH: classified, correlated and filtered like any
        other (its id only when it is a plain value), kept as the marker with its finding."""
        if isinstance(message, dict) and isinstance(message.get("id"), (dict, list)):
            message["id"] = None
        first = len(out)
        self._message(direction, message, "null", size, ts_ns, out)
        for event in out[first:]:
            event.omit_payload()

    def _invalid(self, direction: Direction, line: bytes, ts_ns: int) -> Event:
        size = len(line)
        raw, truncated = line, False
        if self.payload_limit and size > self.payload_limit:
            raw, truncated = line[: self.payload_limit], True
        text = raw.decode("utf-8", "backslashreplace")
        event = self._event(direction, ts_ns, Message(orjson.dumps(text).decode(), text, "invalid", size))
        event.truncated = truncated
        if b'"' in line:  # it may still read as a request to a lenient server
            self._recovered(event, line)
        return event

    def _recovered(self, event: Event, line: bytes) -> None:
        """Fill in the method, tool and id an ``invalid`` line still shows, with a finding."""
        method, tool, jsonrpc_id = recovered_fields(line)
        if method is None:
            return
        event.method, event.tool, event.jsonrpc_id = method, tool, jsonrpc_id
        if event.message is not None:
            event.message.method, event.message.tool, event.message.jsonrpc_id = method, tool, jsonrpc_id
        severity = "high" if method == "tools/call" else "medium"
        what = f"tools/call of {tool!r}" if tool is not None else method
        message = (
            f"{what} is not a valid JSON-RPC line (not strict JSON, or no final newline); "
            "a lenient server may still run it"
        )
        finding = {"rule": UNPARSEABLE_RULE, "severity": severity, "path": "", "message": message}
        event.risk = {"score": _SCORE[severity], "level": severity, "findings": [finding]}
        if jsonrpc_id is not None:  # its answer (the gate's error or the server's) is correlated
            self._remember(
                event.direction, jsonrpc_id, _Pending(event.id, event.ts_ns, method, tool, None, None, True)
            )

    def _remember(self, direction: Direction, jsonrpc_id: Any, pending: _Pending) -> None:
        if len(self._pending) >= MAX_PENDING_REQUESTS:
            self._pending.pop(next(iter(self._pending)))
        self._pending[_id_key(direction, jsonrpc_id)] = pending

    def _message(
        self, direction: Direction, value: Any, text: str, size: int, ts_ns: int, out: list[Event]
    ) -> None:
        """One decoded message: classified, its fields read once into a :class:`Message`, then
        correlated and filtered into an event."""
        kind = classify(value)
        if kind == "invalid":
            self._append(out, self._event(direction, ts_ns, Message(text, value, "invalid", size)))
            return
        message = Message(text, value, kind, size, value.get("id"))
        if kind in ("request", "notification"):
            self._request(direction, message, ts_ns, out)
        else:
            self._response(direction, message, ts_ns, out)

    def _event(self, direction: Direction, ts_ns: int, m: Message) -> Event:
        return Event(
            self.session.id,
            ts_ns,
            direction,
            m.kind,
            m.size,
            m.text,
            jsonrpc_id=m.jsonrpc_id,
            method=m.method,
            tool=m.tool,
            resource_uri=m.resource_uri,
            prompt_name=m.prompt_name,
            message=m,
        )

    def _request(self, direction: Direction, m: Message, ts_ns: int, out: list[Event]) -> None:
        method: str = m.value["method"]
        m.method = method
        params = m.value.get("params")
        if isinstance(params, dict):
            if method == "tools/call":
                m.tool = _str_or_none(params.get("name"))
            elif method == "prompts/get":
                m.prompt_name = _str_or_none(params.get("name"))
            elif method.startswith("resources/"):
                m.resource_uri = _str_or_none(params.get("uri"))
            elif method == CANCELLED and "requestId" in params:
                # the canceller sent the request: the same direction
                cancelled = self._pending.get(_id_key(direction, params["requestId"]))
                m.cancels = cancelled.event_id if cancelled is not None else None
            if direction == CLIENT_TO_SERVER:
                self._learn_from_request(method, params)
        event = self._event(direction, ts_ns, m)
        recorded = self.filters.records(method)
        if m.kind == "request":
            self._remember(
                direction,
                m.jsonrpc_id,
                _Pending(event.id, ts_ns, method, m.tool, m.resource_uri, m.prompt_name, recorded),
            )
        if recorded:
            self._append(out, event)

    def _response(self, direction: Direction, m: Message, ts_ns: int, out: list[Event]) -> None:
        pending = self._pending.pop(_id_key(_opposite(direction), m.jsonrpc_id), None)
        if pending is not None:
            m.method, m.tool = pending.method, pending.tool
            m.resource_uri, m.prompt_name = pending.resource_uri, pending.prompt_name
        event = self._event(direction, ts_ns, m)
        if pending is not None:
            event.request_event_id = pending.event_id
            event.latency_ms = round((ts_ns - pending.ts_ns) / 1e6, 3)
        if m.kind == "error":
            error = m.value.get("error")
            if isinstance(error, dict):
                code = error.get("code")
                event.error_code = code if isinstance(code, int) else None
                event.error_message = _str_or_none(error.get("message"))
            event.is_error = True
        else:
            result = m.value.get("result")
            if isinstance(result, dict):
                if result.get("isError") is True:
                    event.is_error = True
                if pending is not None and direction == SERVER_TO_CLIENT:
                    self._learn_from_result(pending.method, result)
        if pending is None or pending.recorded:
            self._append(out, event)

    def _append(self, out: list[Event], event: Event) -> None:
        truncate_payload(event, self.payload_limit)
        out.append(event)

    # -- session details -------------------------------------------------------------------------

    def _learn_from_request(self, method: str, params: dict[str, Any]) -> None:
        s = self.session
        if method == "initialize":
            if _kept(params.get("clientInfo")):
                s.client = params["clientInfo"]
                self.session_changed = True
            if s.protocol_version is None and isinstance(params.get("protocolVersion"), str):
                s.protocol_version = params["protocolVersion"]
                self.session_changed = True
            return
        meta = params.get("_meta")
        if not isinstance(meta, dict):
            return
        version = meta.get(PROTOCOL_VERSION_META_KEY)
        if isinstance(version, str) and version != s.protocol_version:
            s.protocol_version = version
            self.session_changed = True
        client = meta.get(CLIENT_INFO_META_KEY)
        if s.client is None and _kept(client):
            s.client = client
            self.session_changed = True

    def _learn_from_result(self, method: str, result: dict[str, Any]) -> None:
        s = self.session
        if method == "initialize":
            if _kept(result.get("serverInfo")):
                s.server = result["serverInfo"]
            if isinstance(result.get("protocolVersion"), str):
                s.protocol_version = result["protocolVersion"]
            if _kept(result.get("capabilities")):
                s.capabilities = result["capabilities"]
            self.session_changed = True
        elif method == "server/discover":
            meta = result.get("_meta")
            if isinstance(meta, dict) and _kept(meta.get(SERVER_INFO_META_KEY)):
                s.server = meta[SERVER_INFO_META_KEY]
            if _kept(result.get("capabilities")):
                s.capabilities = result["capabilities"]
            self.session_changed = True


def truncate_payload(event: Event, limit: int) -> None:
    """Keep at most ``limit`` bytes of the stored payload (cut on a UTF-8 boundary)."""
    if limit and event.payload is not None and len(event.payload) > limit // 4:
        encoded = event.payload.encode()
        if len(encoded) > limit:
            event.payload = encoded[:limit].decode("utf-8", "ignore")
            event.truncated = True
            event.message = None  # no longer what the payload holds


def feed_all(capture: Capture, chunks: Iterable[tuple[Direction, bytes, int]]) -> list[Event]:
    """Convenience for tests and replay: feed many chunks, then finish."""
    events: list[Event] = []
    last = 0
    for direction, data, ts_ns in chunks:
        events.extend(capture.feed(direction, data, ts_ns))
        last = ts_ns
    events.extend(capture.finish(last))
    return events
