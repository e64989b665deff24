"""Sans-IO capture core: framing, classification and correlation of JSON-RPC messages.

Nothing here does IO. A transport feeds raw bytes per direction with the time they were
read; :class:`Capture` returns :class:`~kilometers.model.Event` objects and keeps the
session's negotiated details up to date. Every transport (stdio, HTTP, replay) reuses it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
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
CLIENT_CAPABILITIES_META_KEY = "io.modelcontextprotocol/clientCapabilities"
LOG_LEVEL_META_KEY = "io.modelcontextprotocol/logLevel"
SUBSCRIPTION_ID_META_KEY = "io.modelcontextprotocol/subscriptionId"
"""On each notification of a ``subscriptions/listen`` stream: that request's JSON-RPC id."""

CANCELLED = "notifications/cancelled"
PROGRESS = "notifications/progress"
LISTEN = "subscriptions/listen"
INPUT_REQUIRED = "input_required"
"""The ``resultType`` of a multi-round call's interim result (2026-07-28): the server asks for
input (``inputRequests``) and/or hands the client an opaque ``requestState`` to send back."""
TASK = "task"
"""The ``resultType`` of a result that started a task (the tasks extension)."""
REQUEST_STATE_HASH_PREFIX = "sha256:"
"""What a stored ``requestState`` starts with unless the user keeps them (``keep_request_state``)."""

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
    call_id: str | None = None
    """The logical call this request belongs to (a multi-round retry, a task's request)."""
    round: int | None = None
    progress: tuple[str, str] | None = None
    """The key of the progress token this request set, forgotten with its answer."""


@dataclass(slots=True)
class _Call:
    """A multi-round call waiting for the client's retry (its last result was ``input_required``)."""

    event_id: str
    """Its first request."""
    ts_ns: int
    method: str
    tool: str | None
    round: int
    state: str | None
    """The hash of the ``requestState`` the server handed out last."""
    inputs: frozenset[str]
    """The keys of the ``inputRequests`` the server asked last."""


def hash_request_state(state: str) -> str:
    """What km stores of an opaque ``requestState``: ``sha256:`` and the hex digest of its UTF-8."""
    return REQUEST_STATE_HASH_PREFIX + hashlib.sha256(state.encode("utf-8", "replace")).hexdigest()


def _put(links: dict[Any, Any], key: Any, value: Any) -> None:
    """Remember a link; the oldest are forgotten beyond MAX_PENDING_REQUESTS."""
    if len(links) >= MAX_PENDING_REQUESTS:
        links.pop(next(iter(links)))
    links[key] = value


def _value_key(value: Any) -> str | None:
    """A progress token, task id or subscription id as a dict key (strings and numbers apart)."""
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "n" + repr(value)
    return None


def _task_id(value: Any) -> str | None:
    """The task id a result, request or notification carries (``taskId``, or ``task.taskId``)."""
    if not isinstance(value, dict):
        return None
    task = value.get("task")
    found = task.get("taskId") if isinstance(task, dict) else value.get("taskId")
    return found if isinstance(found, str) else None


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
        keep_request_state: bool = False,
    ) -> None:
        self.session = session
        self.filters = filters or Filters()
        self.payload_limit = payload_limit
        self.keep_request_state = keep_request_state
        """Store a multi-round call's ``requestState`` as sent (else as its hash: it is opaque and
        may hold whatever the server keeps between rounds)."""
        self.session_changed = False
        """Set when initialize/discover filled in session details; the caller resets it."""
        self._framers = {CLIENT_TO_SERVER: LineFramer(), SERVER_TO_CLIENT: LineFramer()}
        self._pending: dict[tuple[str, str], _Pending] = {}
        # links of one logical call: open multi-round calls (by first request, by requestState
        # hash), tasks (by task id), progress tokens and subscriptions (by direction and value)
        self._calls: dict[str, _Call] = {}
        self._call_states: dict[str, str] = {}
        self._tasks: dict[str, str] = {}
        self._progress: dict[tuple[str, str], str] = {}
        self._subscriptions: dict[tuple[str, str], str] = {}

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
        state = params.get("requestState") if isinstance(params, dict) else None
        if isinstance(state, str):
            state = self._seal_state(m, params, state)
        event = self._event(direction, ts_ns, m)
        pending = _Pending(event.id, ts_ns, method, m.tool, m.resource_uri, m.prompt_name, True)
        if isinstance(params, dict):
            self._link_request(direction, m, params, state, event, pending)
        recorded = pending.recorded = self.filters.records(method)
        if m.kind == "request":
            self._remember(direction, m.jsonrpc_id, pending)
        if recorded:
            self._append(out, event)

    def _seal_state(self, m: Message, holder: dict[str, Any], state: str) -> str:
        """The hash of a ``requestState``; unless kept, it replaces the state in what is stored
        (the forwarded bytes are never changed)."""
        digest = hash_request_state(state)
        if not self.keep_request_state:
            holder["requestState"] = digest
            with contextlib.suppress(orjson.JSONEncodeError):  # too deep: only its marker is kept
                m.text = orjson.dumps(m.value).decode()
        return digest

    def _link_request(
        self,
        direction: Direction,
        m: Message,
        params: dict[str, Any],
        state: str | None,
        event: Event,
        pending: _Pending,
    ) -> None:
        """Link a request or notification to the logical call it belongs to (``event.call_id``)."""
        method = m.method or ""
        meta = params.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        if m.cancels is not None:  # the logical call: a cancelled retry cancels its whole call
            cancelled = self._pending.get(_id_key(direction, params["requestId"]))
            event.call_id = cancelled.call_id if cancelled and cancelled.round is not None else m.cancels
        elif method == PROGRESS:  # sent by whoever received the request that set the token
            token = _value_key(params.get("progressToken"))
            if token is not None:
                event.call_id = self._progress.get((_opposite(direction), token))
        elif method.startswith(("tasks/", "notifications/tasks")):
            task = _task_id(params)
            if task is not None:
                event.call_id = self._tasks.get(task)
        elif SUBSCRIPTION_ID_META_KEY in meta:
            subscription = _value_key(meta[SUBSCRIPTION_ID_META_KEY])
            if subscription is not None:
                event.call_id = self._subscriptions.get((_opposite(direction), subscription))
        elif m.kind == "request" and (state is not None or "inputResponses" in params):
            call = self._retried_call(m, params, state)
            if call is not None:
                event.call_id, event.round = call.event_id, call.round + 1
        if m.kind != "request":
            return
        pending.call_id, pending.round = event.call_id, event.round
        token = _value_key(meta.get("progressToken"))
        if token is not None:  # progress of a retry is the call's progress
            pending.progress = (direction, token)
            _put(self._progress, pending.progress, event.call_id if event.round is not None else event.id)
        if method == LISTEN:
            subscription = _value_key(m.jsonrpc_id)
            if subscription is not None:
                _put(self._subscriptions, (direction, subscription), event.id)

    def _retried_call(self, m: Message, params: dict[str, Any], state: str | None) -> _Call | None:
        """The open multi-round call a request retries: the one that handed out its
        ``requestState``, else the newest of the same method and tool that asked for (one of)
        the inputs it answers."""
        if state is not None:
            call_id = self._call_states.get(state)
            if call_id is not None and call_id in self._calls:
                return self._calls[call_id]
        answers = params.get("inputResponses")
        keys = frozenset(answers) if isinstance(answers, dict) else frozenset()
        for call in reversed(self._calls.values()):
            if call.method == m.method and call.tool == m.tool and (keys & call.inputs or not call.inputs):
                return call
        return None

    def _response(self, direction: Direction, m: Message, ts_ns: int, out: list[Event]) -> None:
        pending = self._pending.pop(_id_key(_opposite(direction), m.jsonrpc_id), None)
        if pending is not None:
            m.method, m.tool = pending.method, pending.tool
            m.resource_uri, m.prompt_name = pending.resource_uri, pending.prompt_name
        result = m.value.get("result")
        state = result.get("requestState") if isinstance(result, dict) else None
        if isinstance(state, str) and isinstance(result, dict):
            state = self._seal_state(m, result, state)
        event = self._event(direction, ts_ns, m)
        if pending is not None:
            event.request_event_id = pending.event_id
            event.latency_ms = round((ts_ns - pending.ts_ns) / 1e6, 3)
            event.call_id, event.round = pending.call_id, pending.round
            if pending.progress is not None:
                self._progress.pop(pending.progress, None)
            self._link_result(pending, result, state, event)
        if m.kind == "error":
            error = m.value.get("error")
            if isinstance(error, dict):
                code = error.get("code")
                event.error_code = code if isinstance(code, int) else None
                event.error_message = _str_or_none(error.get("message"))
            event.is_error = True
        elif isinstance(result, dict):
            if result.get("isError") is True:
                event.is_error = True
            if pending is not None and direction == SERVER_TO_CLIENT:
                self._learn_from_result(pending.method, result)
        if pending is None or pending.recorded:
            self._append(out, event)

    def _link_result(self, pending: _Pending, result: Any, state: str | None, event: Event) -> None:
        """A multi-round call goes on (``input_required``) or ends; a task starts."""
        kind = result.get("resultType") if isinstance(result, dict) else None
        call_id = pending.call_id if pending.round is not None else None
        if kind == INPUT_REQUIRED:
            assert isinstance(result, dict)
            call_id = call_id or pending.event_id
            event.call_id, event.round = call_id, pending.round or 1
            call = self._calls.pop(call_id, None)
            if call is not None and call.state is not None:
                self._call_states.pop(call.state, None)
            asked = result.get("inputRequests")
            call = _Call(
                call_id,
                call.ts_ns if call is not None else pending.ts_ns,
                pending.method,
                pending.tool,
                event.round,
                state,
                frozenset(asked) if isinstance(asked, dict) else frozenset(),
            )
            _put(self._calls, call_id, call)
            if state is not None:
                _put(self._call_states, state, call_id)
            return
        if call_id is not None:  # the answer to a retry: the call is over
            call = self._calls.pop(call_id, None)
            if call is not None:
                if call.state is not None:
                    self._call_states.pop(call.state, None)
                event.call_latency_ms = round((event.ts_ns - call.ts_ns) / 1e6, 3)
        task = _task_id(result) if kind == TASK or (isinstance(result, dict) and "task" in result) else None
        if task is not None:
            _put(self._tasks, task, pending.call_id or pending.event_id)

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
            if _kept(params.get("capabilities")):
                s.client_capabilities = params["capabilities"]
                self.session_changed = True
            return
        if method == "logging/setLevel":
            self._learn_log_level(params.get("level"))
        meta = params.get("_meta")
        if not isinstance(meta, dict):
            return
        # 2026-07-28: no handshake, each request says who the client is and what it can do
        version = meta.get(PROTOCOL_VERSION_META_KEY)
        if isinstance(version, str) and version != s.protocol_version:
            s.protocol_version = version
            self.session_changed = True
        client = meta.get(CLIENT_INFO_META_KEY)
        if s.client is None and _kept(client):
            s.client = client
            self.session_changed = True
        capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY)
        if capabilities != s.client_capabilities and _kept(capabilities):
            s.client_capabilities = capabilities
            self.session_changed = True
        if LOG_LEVEL_META_KEY in meta:
            self._learn_log_level(meta[LOG_LEVEL_META_KEY])

    def _learn_log_level(self, level: Any) -> None:
        if isinstance(level, str) and len(level) <= 32 and level != self.session.log_level:
            self.session.log_level = level
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
            return
        if method == "server/discover":
            if _kept(result.get("capabilities")):
                s.capabilities = result["capabilities"]
            self.session_changed = True
        # 2026-07-28: servers stamp who they are on every result
        meta = result.get("_meta")
        server = meta.get(SERVER_INFO_META_KEY) if isinstance(meta, dict) else None
        if server is not None and server != s.server and _kept(server):
            s.server = server
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
