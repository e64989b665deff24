"""The shared shapes: one event and one session, used by the store, the CLI's ``--json`` and every sink.

An :class:`Event` is one JSON-RPC message seen on the wire (or one element of a batch).
Its ``payload`` is kept as the JSON text it arrived as (already valid JSON, so it is
never re-encoded on the hot path); :meth:`Event.to_dict` parses it for output.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import uuid_utils

from . import jsonlimits
from .directions import CLIENT_TO_SERVER as CLIENT_TO_SERVER
from .directions import SERVER_TO_CLIENT as SERVER_TO_CLIENT
from .directions import Direction as Direction

Kind = Literal["request", "notification", "response", "error", "invalid"]

TOO_DEEP_SCORE = 40
"""The risk score of the ``payload.too_deep`` finding (medium, on km's one scale)."""
DIRECTIONS: tuple[Direction, ...] = (CLIENT_TO_SERVER, SERVER_TO_CLIENT)
KINDS: tuple[Kind, ...] = ("request", "notification", "response", "error", "invalid")
Level = Literal["none", "low", "medium", "high", "critical"]
LEVELS: tuple[Level, ...] = ("none", "low", "medium", "high", "critical")
"""Risk levels in order (the one scale: kilometers.analysis.findings)."""
ERROR_NAMES: dict[int, str] = {
    -32700: "parse_error",
    -32600: "invalid_request",
    -32601: "method_not_found",
    -32602: "invalid_params",
    -32603: "internal_error",
    -32020: "header_mismatch",
    -32021: "missing_required_client_capability",
    -32022: "unsupported_protocol_version",
}
"""Names of the JSON-RPC error codes JSON-RPC 2.0 and MCP 2026-07-28 define (as the SDK names them)."""


LIST_METHODS = frozenset({"tools/list", "resources/list", "resources/templates/list", "prompts/list"})
"""The list methods whose results may carry cache hints (``ttlMs``, ``cacheScope``)."""


def new_id() -> str:
    """A time-ordered, globally unique id (UUIDv7) so that uploads can be idempotent."""
    return str(uuid_utils.uuid7())


def format_ts(ts_ns: int) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-27T22:34:35.123456Z``."""
    dt = datetime.fromtimestamp(ts_ns // 1000 / 1_000_000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> int:
    """Inverse of :func:`format_ts` (accepts any ISO 8601 form); returns ns since the epoch."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000) * 1000


def now_ns() -> int:
    return time.time_ns()


@dataclass(slots=True, eq=False)
class Message:
    """One JSON-RPC message (or one element of a batch) decoded once, at capture.

    It travels with its :class:`Event` (``Event.message``) through the engine's steps (the
    security stage, plugin detectors) to the sinks, so nothing downstream parses the payload
    again. It is never stored: the recorder drops it once the batch has been through the sinks.
    While ``text`` is the event's payload (the same object: :meth:`Event.decoded`), ``value``
    is that payload decoded; whatever replaces the payload (redaction, truncation, a marker)
    either updates both or leaves the message stale, and a stale one is never used."""

    text: str
    """The payload as stored: the message's own text for a single message (never re-encoded),
    compact JSON for a batch element, a JSON string holding the raw line for an invalid one."""
    value: Any
    """``text`` decoded: the JSON-RPC object (a str for an invalid line)."""
    kind: Kind
    size: int
    """Bytes on the wire (for a batch element: of its compact JSON)."""
    jsonrpc_id: Any = None
    method: str | None = None
    tool: str | None = None
    resource_uri: str | None = None
    prompt_name: str | None = None
    cancels: str | None = None
    """On a ``notifications/cancelled``: the event id of the request it cancels (engine pairing)."""


@dataclass(slots=True)
class Event:
    session_id: str
    ts_ns: int
    direction: Direction
    kind: Kind
    size_bytes: int
    payload: str | None
    """The message as JSON text; for ``invalid`` messages a JSON string holding the raw line."""
    id: str = field(default_factory=new_id)
    jsonrpc_id: Any = None
    method: str | None = None
    tool: str | None = None
    resource_uri: str | None = None
    prompt_name: str | None = None
    latency_ms: float | None = None
    error_code: int | None = None
    error_message: str | None = None
    is_error: bool = False
    """True for JSON-RPC errors and for tool results with ``isError: true``."""
    truncated: bool = False
    request_event_id: str | None = None
    """On a response: the id of the request event it answers."""
    call_id: str | None = None
    """The event id of the request that opened the logical call this event belongs to: on every
    round of a multi-round (``input_required``) call after the first request, on a task's
    requests, responses and notifications, on a request's progress and cancellation
    notifications, and on the notifications of a ``subscriptions/listen`` subscription."""
    round: int | None = None
    """The round of a multi-round call this request or response belongs to (1 for the first
    ``input_required`` result, 2 for the client's retry and its answer...); None otherwise."""
    call_latency_ms: float | None = None
    """On the final response of a multi-round call: from its first request to this answer."""
    mcp_headers: dict[str, str] | None = None
    """On a request over Streamable HTTP: the headers that mirror its body (``mcp-method``,
    ``mcp-name``, ``mcp-param-*``; names lower-cased, values decoded and redacted like the
    payload), checked against it (:mod:`kilometers.analysis.mcp_headers`)."""
    risk: dict[str, Any] | None = None
    """``{"score", "level", "findings"}`` from the security analysis (None: nothing found)."""
    message: Message | None = field(default=None, repr=False, compare=False)
    """The decoded message, transient (never stored; see :class:`Message` and :meth:`decoded`)."""

    def decoded(self) -> Message | None:
        """The message decoded at capture while it still holds this event's payload; None once the
        payload was cut, replaced or dropped (or for an event that was not captured, e.g. read
        back from a store)."""
        message = self.message
        return message if message is not None and message.text is self.payload else None

    @property
    def payload_omitted(self) -> bool:
        """The payload is the marker kept for one nested too deep (:meth:`omit_payload`)."""
        findings = (self.risk or {}).get("findings") or []
        return any(isinstance(f, dict) and f.get("rule") == jsonlimits.TOO_DEEP_RULE for f in findings)

    def omit_payload(self) -> None:
        """Keep the marker in place of a payload nested too deep, and add its finding to ``risk``."""
        marker = jsonlimits.too_deep_marker(self.size_bytes)
        self.payload = orjson.dumps(marker).decode()
        if self.message is not None:  # what travels on is the marker, not the message
            self.message = dataclasses.replace(self.message, text=self.payload, value=marker)
        self.truncated = False
        risk = self.risk or {}
        findings = list(risk.get("findings") or [])
        if not self.payload_omitted:
            findings.append(jsonlimits.too_deep_finding())
        score = risk.get("score") or 0
        if score >= TOO_DEEP_SCORE:
            self.risk = {"score": score, "level": risk.get("level"), "findings": findings}
        else:
            self.risk = {"score": TOO_DEEP_SCORE, "level": "medium", "findings": findings}

    def list_cache(self) -> dict[str, Any] | None:
        """The cache hints of a list result (2026-07-28): ``{"ttl_ms", "scope"}`` from its
        ``ttlMs`` and ``cacheScope`` (either may be None); None for anything else or without them."""
        if self.kind != "response" or self.method not in LIST_METHODS or self.payload is None:
            return None
        message = self.decoded()
        try:
            value = message.value if message is not None else jsonlimits.loads(self.payload)
        except (jsonlimits.JsonLimitError, orjson.JSONDecodeError):
            return None
        result = value.get("result") if isinstance(value, dict) else None
        if not isinstance(result, dict):
            return None
        ttl, scope = result.get("ttlMs"), result.get("cacheScope")
        ttl = ttl if isinstance(ttl, int | float) and not isinstance(ttl, bool) else None
        scope = scope if isinstance(scope, str) else None
        return {"ttl_ms": ttl, "scope": scope} if ttl is not None or scope is not None else None

    def to_dict(self) -> dict[str, Any]:
        payload: Any = None
        if self.payload is not None:
            try:
                payload = jsonlimits.loads(self.payload)
            except jsonlimits.JsonLimitError:
                if not self.truncated:  # never handed on: nothing downstream could encode it
                    omitted = dataclasses.replace(self)
                    omitted.omit_payload()
                    return omitted.to_dict()
                payload = self.payload  # a truncated payload is kept as text
            except orjson.JSONDecodeError:
                payload = self.payload
        error = None
        if self.error_code is not None or self.error_message is not None:
            error = {"code": self.error_code, "message": self.error_message}
        return {
            "id": self.id,
            "session_id": self.session_id,
            "ts": format_ts(self.ts_ns),
            "direction": self.direction,
            "kind": self.kind,
            "jsonrpc_id": self.jsonrpc_id,
            "method": self.method,
            "tool": self.tool,
            "resource_uri": self.resource_uri,
            "prompt_name": self.prompt_name,
            "latency_ms": self.latency_ms,
            "size_bytes": self.size_bytes,
            "is_error": self.is_error,
            "error": error,
            "error_name": ERROR_NAMES.get(self.error_code) if self.error_code is not None else None,
            "truncated": self.truncated,
            "request_event_id": self.request_event_id,
            "call_id": self.call_id,
            "round": self.round,
            "call_latency_ms": self.call_latency_ms,
            "mcp_headers": self.mcp_headers,
            "risk": self.risk or {"score": 0, "level": "none", "findings": []},
            "payload": payload,
        }


@dataclass(slots=True)
class Session:
    """One ``km monitor`` run: a client talking to one server."""

    command: list[str]
    cwd: str
    id: str = field(default_factory=new_id)
    name: str | None = None
    transport: str = "stdio"
    pid: int | None = None
    started_ns: int = field(default_factory=now_ns)
    ended_ns: int | None = None
    exit_code: int | None = None
    client: dict[str, Any] | None = None
    server: dict[str, Any] | None = None
    protocol_version: str | None = None
    capabilities: dict[str, Any] | None = None
    client_capabilities: dict[str, Any] | None = None
    """What the client declared: ``initialize``'s capabilities or (2026-07-28) a request's
    ``io.modelcontextprotocol/clientCapabilities`` ``_meta`` (the latest one)."""
    log_level: str | None = None
    """The log level the client asked for (``logging/setLevel`` or a request's
    ``io.modelcontextprotocol/logLevel`` ``_meta``, the latest one)."""
    event_count: int = 0
    error_count: int = 0
    dropped_events: int = 0
    server_side: bool = field(default=False, compare=False)
    """km answers the client in the server's place (``km proxy``): its OpenTelemetry export also
    records the server-side metrics. Not stored."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "transport": self.transport,
            "started_at": format_ts(self.started_ns),
            "ended_at": format_ts(self.ended_ns) if self.ended_ns is not None else None,
            # from the microseconds started_at and ended_at show, so an export/import keeps it exact
            "duration_ms": (
                (self.ended_ns // 1000 - self.started_ns // 1000) / 1000
                if self.ended_ns is not None
                else None
            ),
            "command": self.command,
            "cwd": self.cwd,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "client": self.client,
            "server": self.server,
            "protocol_version": self.protocol_version,
            "capabilities": self.capabilities,
            "client_capabilities": self.client_capabilities,
            "log_level": self.log_level,
            "event_count": self.event_count,
            "error_count": self.error_count,
            "dropped_events": self.dropped_events,
        }

    def replace(self, **changes: Any) -> Session:
        return dataclasses.replace(self, **changes)
