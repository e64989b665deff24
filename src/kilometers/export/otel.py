"""OpenTelemetry export following the semantic conventions for MCP (``docs/gen-ai/mcp.md`` of
the GenAI semantic conventions): one CLIENT span per request named ``{mcp.method.name} {target}``,
the ``mcp.client.operation.duration`` histogram (and ``mcp.server.operation.duration`` for
``km proxy``, which answers the client in the server's place) and the session duration.

Configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, protocol
``http/protobuf`` or ``grpc``) and ``OTEL_SERVICE_NAME``. Spans are batched and exported on
the SDK's own thread with a bounded queue and short timeouts: a slow, absent or wrong collector
drops telemetry and costs one km line on stderr, never the proxy's speed, and at most
:data:`SHUTDOWN_SECONDS` at the end of a session. A ``traceparent`` (``tracestate``,
``baggage``) in the request's ``params._meta`` makes the span a child of the caller's trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..log import once
from ..model import Event, Session
from ..sinks import Sink

_log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 1.0
"""The most a session's end waits for the last spans and metrics to be flushed."""
MAX_PENDING = 10_000
EXPORT_TIMEOUT = 3.0
"""Seconds per export request when ``OTEL_EXPORTER_OTLP_TIMEOUT`` is not set."""
DURATION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
"""The conventions' explicit bucket boundaries (seconds) for every MCP duration histogram."""
PROTOCOLS = ("http/protobuf", "grpc")
METRIC_KEYS = (
    "mcp.method.name",
    "error.type",
    "gen_ai.prompt.name",
    "gen_ai.tool.name",
    "rpc.response.status_code",
    "gen_ai.operation.name",
    "mcp.protocol.version",
    "network.protocol.name",
    "network.transport",
    "server.address",
    "server.port",
)
"""The attributes of ``mcp.client.operation.duration`` (high-cardinality ones stay on spans)."""
SESSION_KEYS = ("mcp.protocol.version", "network.protocol.name", "network.transport", "server.address",
                "server.port")  # fmt: skip
CANCELLED = "cancelled"
UNANSWERED = "unanswered"


# -- configuration ----------------------------------------------------------------------------------


def _protocol() -> str:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    ).strip()
    if protocol not in PROTOCOLS:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not one of {', '.join(PROTOCOLS)}")
    return protocol


def _checked_url(variable: str, value: str, grpc: bool) -> str:
    """``value`` if it is a usable collector address, else a ValueError naming ``variable``."""
    text = value.strip()
    parts = urlsplit(text if "://" in text or not grpc else f"//{text}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
        ok = bool(parts.hostname) and not any(c.isspace() for c in text)
    except ValueError:
        ok = False
    if not ok or (parts.scheme and parts.scheme not in ("http", "https")):
        what = "an http:// or https:// URL" if not grpc else "a host:port or http(s):// URL"
        raise ValueError(f"{variable}={value!r} is not {what}")
    return text


def endpoint(signal: str = "traces") -> str:
    """The collector address ``signal`` (traces, metrics) is sent to, checked: a bad
    ``OTEL_EXPORTER_OTLP_*ENDPOINT`` raises ValueError (km says so in one line and goes on)."""
    grpc = _protocol() == "grpc"
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    if os.environ.get(specific):
        return _checked_url(specific, os.environ[specific], grpc)
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if base:
        url = _checked_url("OTEL_EXPORTER_OTLP_ENDPOINT", base, grpc)
    else:
        url = "http://localhost:4317" if grpc else "http://localhost:4318"
    return url if grpc else f"{url.rstrip('/')}/v1/{signal}"


def _exporters() -> tuple[Any, Any]:
    grpc = _protocol() == "grpc"
    spans_at, metrics_at = endpoint("traces"), endpoint("metrics")
    timeout = None if os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT") else EXPORT_TIMEOUT
    if grpc:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    return (
        OTLPSpanExporter(endpoint=spans_at, timeout=timeout),
        OTLPMetricExporter(endpoint=metrics_at, timeout=timeout),
    )


# -- failures: one km line, not the SDK's retry log ------------------------------------------------

_reported = threading.Event()


def _reason(text: str) -> str:
    if found := re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text):
        return found.group(1).strip()
    if found := re.search(r"code: (\d{3})", text):
        return f"HTTP status {found.group(1)}"
    return text[:200]


class _FailureLine(logging.Handler):
    """Takes the SDK's log records off stderr (a collector that is down logs every retry of
    every batch); the first export failure becomes one km line."""

    def __init__(self, where: str) -> None:
        super().__init__(logging.WARNING)
        self.where = where

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if ("export" in text or "dropping" in text) and not _reported.is_set():
            _reported.set()
            _log.warning(f"km: OpenTelemetry export to {self.where} failed ({_reason(text)}); spans and "
                         "metrics are dropped, traffic is unaffected (check OTEL_EXPORTER_OTLP_ENDPOINT)",
                         extra=once("otel-export"))  # fmt: skip


def _bounded(work: Callable[[], object], name: str) -> bool:
    """Run ``work`` on a thread of its own and wait for it at most SHUTDOWN_SECONDS, and no longer
    once an export failed (the SDK would go on retrying); True if it finished."""
    done = threading.Event()

    def run() -> None:
        try:
            work()
        except Exception:  # pragma: no cover - reported by the SDK's log records
            pass
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    deadline = time.monotonic() + SHUTDOWN_SECONDS
    while not done.wait(0.01) and not _reported.is_set() and time.monotonic() < deadline:
        pass
    return done.is_set()


def _quiet_sdk(where: str) -> None:
    logger = logging.getLogger("opentelemetry")
    if not any(isinstance(h, _FailureLine) for h in logger.handlers):
        logger.addHandler(_FailureLine(where))
        logger.propagate = False


# -- attributes --------------------------------------------------------------------------------------


def error_type(response: Event) -> str | None:
    if response.kind == "error":
        return str(response.error_code) if response.error_code is not None else "_OTHER"
    if response.is_error:
        return "tool_error"
    return None


def span_name(request: Event) -> str:
    target = request.tool or request.prompt_name
    return f"{request.method} {target}" if target else str(request.method)


def session_attributes(session: Session) -> dict[str, Any]:
    """What the conventions record of the connection: transport, protocol, the real server."""
    attrs: dict[str, Any] = {"network.transport": "pipe" if session.transport == "stdio" else "tcp"}
    if session.protocol_version:
        attrs["mcp.protocol.version"] = session.protocol_version
    if session.transport != "stdio" and session.command:  # --url and km proxy: the upstream's URL
        attrs["network.protocol.name"] = "http"
        parts = urlsplit(session.command[0])
        try:
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
        except ValueError:
            port = None
        if parts.hostname:
            attrs["server.address"] = parts.hostname
            if port:
                attrs["server.port"] = port
    return attrs


def attributes(
    request: Event,
    response: Event | None,
    session: Session,
    payloads: bool,
    ended: str | None = None,
    arguments: str | None = None,
) -> dict[str, Any]:
    """A span's attributes; ``response`` None: the request ``ended`` (cancelled, unanswered).
    ``arguments``: the call's arguments as JSON, read when the request went by (:func:`arguments_of`)."""
    attrs: dict[str, Any] = {"mcp.method.name": request.method or "", "mcp.session.id": session.id}
    attrs.update(session_attributes(session))
    if request.jsonrpc_id is not None:
        attrs["jsonrpc.request.id"] = str(request.jsonrpc_id)
    if request.tool:
        attrs["gen_ai.tool.name"] = request.tool
        attrs["gen_ai.operation.name"] = "execute_tool"
    if request.prompt_name:
        attrs["gen_ai.prompt.name"] = request.prompt_name
    if request.resource_uri:
        attrs["mcp.resource.uri"] = request.resource_uri
    err = error_type(response) if response is not None else ended
    if err is not None:
        attrs["error.type"] = err
    if response is not None and response.kind == "error" and response.error_code is not None:
        attrs["rpc.response.status_code"] = str(response.error_code)
    if payloads and request.method == "tools/call":  # opt-in; payloads reaching sinks are redacted
        if arguments is not None:
            attrs["gen_ai.tool.call.arguments"] = arguments
        if response is not None and err is None:  # the result of a call that succeeded
            result = _member(response, "result")
            omitted = _member(response, "km_omitted")
            if result is None and omitted:  # not kept (too deep, too large): say so, not nothing
                result = {"km_omitted": omitted}
            if result is not None:
                attrs["gen_ai.tool.call.result"] = orjson.dumps(result).decode()
    return attrs


def arguments_of(request: Event) -> str | None:
    """A ``tools/call`` request's arguments as JSON (None when its payload is not at hand)."""
    params = _member(request, "params")
    if isinstance(params, dict) and "arguments" in params:
        return orjson.dumps(params["arguments"]).decode()
    return None


def legacy_attributes(request: Event, response: Event | None) -> dict[str, Any]:
    """The names of the JSON-RPC/RPC conventions km's spans used to be read by (``rpc.*``)."""
    attrs: dict[str, Any] = {"rpc.system": "jsonrpc", "rpc.method": request.method or "",
                             "rpc.jsonrpc.version": "2.0"}  # fmt: skip
    if request.jsonrpc_id is not None:
        attrs["rpc.jsonrpc.request_id"] = attrs["mcp.request.id"] = str(request.jsonrpc_id)
    if response is not None and response.kind == "error":
        if response.error_code is not None:
            attrs["rpc.jsonrpc.error_code"] = response.error_code
        if response.error_message:
            attrs["rpc.jsonrpc.error_message"] = response.error_message
    return attrs


def round_attributes(answer: Event) -> dict[str, Any]:
    """The ``mcp.round`` span event of one round of a multi-round call, from its answer."""
    attrs: dict[str, Any] = {"mcp.round.number": answer.round or 1}
    if answer.jsonrpc_id is not None:
        attrs["jsonrpc.request.id"] = str(answer.jsonrpc_id)
    if answer.latency_ms is not None:
        attrs["mcp.round.latency_ms"] = answer.latency_ms
    result = _member(answer, "result")
    kind = result.get("resultType") if isinstance(result, dict) else None
    if isinstance(kind, str):
        attrs["mcp.result.type"] = kind
    elif answer.kind == "error":
        attrs["error.type"] = str(answer.error_code)
    return attrs


def _member(event: Event, key: str) -> Any:
    """``message[key]`` of an event's message as decoded at capture (and redacted by the stage);
    None when its payload is cut, omitted, dropped or not an object. Never parses the payload."""
    decoded = event.decoded()
    if decoded is None or event.truncated:
        return None
    message = decoded.value
    return message.get(key) if isinstance(message, dict) else None


def trace_carrier(request: Event) -> dict[str, str]:
    """The W3C trace context a request carries in ``params._meta`` (``traceparent``...)."""
    params = _member(request, "params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return {}
    return {k: v for k in ("traceparent", "tracestate", "baggage") if isinstance(v := meta.get(k), str)}


@dataclass(slots=True)
class _Call:
    """A request waiting for its answer: the event and what its span needs of its message, read
    while the batch's decoded messages are at hand (they are dropped after each batch)."""

    request: Event
    carrier: dict[str, str]
    arguments: str | None


@dataclass(slots=True)
class _MultiRound:
    """A multi-round (``input_required``) call between its rounds: its first request, and each
    round's answer so far (the whole call becomes one span when its final answer comes)."""

    first: _Call
    rounds: list[tuple[int, dict[str, Any]]]
    """(time, attributes) of each round's ``mcp.round`` event, read while its message is decoded."""


class OtelSink(Sink):
    name = "opentelemetry"

    def __init__(
        self,
        payloads: bool = False,
        span_exporter: Any = None,
        metric_exporter: Any = None,
        legacy_names: bool = False,
    ) -> None:
        """A session that km answers in the server's place (``km proxy``: ``Session.server_side``)
        also records ``mcp.server.operation.duration`` and ``mcp.server.session.duration``."""
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind

        if span_exporter is None or metric_exporter is None:
            default_spans, default_metrics = _exporters()
            span_exporter = span_exporter or default_spans
            metric_exporter = metric_exporter or default_metrics
        _quiet_sdk(str(getattr(span_exporter, "_endpoint", None) or "the collector"))
        self._span_exporter, self._metric_exporter = span_exporter, metric_exporter
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "kilometers")})
        # no atexit flush: close() bounds the wait, an exit hook would wait again, unbounded
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(span_exporter, max_queue_size=4096, schedule_delay_millis=1000)
        )
        self.meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[PeriodicExportingMetricReader(metric_exporter, export_interval_millis=10_000)],
            shutdown_on_exit=False,
        )
        self.tracer = self.tracer_provider.get_tracer("kilometers")
        meter = self.meter_provider.get_meter("kilometers")

        def histogram(name: str, description: str) -> Any:
            return meter.create_histogram(
                name, unit="s", description=description, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
            )

        self.durations = [
            histogram("mcp.client.operation.duration", "Duration of MCP requests, as seen by km")
        ]
        self.session_durations = [histogram("mcp.client.session.duration", "Duration of MCP sessions")]
        self.server_durations = [
            *self.durations,
            histogram("mcp.server.operation.duration", "Duration of MCP requests"),
        ]
        self.server_session_durations = [
            *self.session_durations,
            histogram("mcp.server.session.duration", "Duration of MCP sessions"),
        ]
        self.kind = SpanKind.CLIENT
        self.payloads = payloads
        self.legacy_names = legacy_names
        self._open: dict[str, dict[str, _Call]] = {}
        """Session id -> its requests awaiting an answer, by event id (the engine pairs answers
        and cancellations with their request's event id: ``request_event_id``,
        ``Message.cancels``). One provider serves every session of a process, each on its own
        recorder thread."""
        self._multi: dict[str, dict[str, _MultiRound]] = {}
        """Session id -> its multi-round calls between rounds, by the call's id (its first
        request's event id, the engine's ``call_id``)."""
        self._lock = threading.Lock()

    def _calls_between_rounds(self, session: Session) -> dict[str, _MultiRound]:
        found = self._multi.get(session.id)
        if found is None:
            with self._lock:
                found = self._multi.setdefault(session.id, {})
        return found

    def _answered(self, session: Session, call: _Call, response: Event) -> None:
        """An answer: a span, unless it is one round of a multi-round call (``round`` set): an
        ``input_required`` round (no ``call_latency_ms`` yet) waits for the call's final answer,
        and the final answer ends one span from the first request, with an event per round."""
        if response.round is None or response.call_id is None:
            self._span(session, call, response, response.ts_ns)
            return
        multi = self._calls_between_rounds(session)
        ongoing = multi.get(response.call_id)
        if response.kind == "response" and response.call_latency_ms is None:
            if ongoing is None:
                if len(multi) >= MAX_PENDING:
                    multi.pop(next(iter(multi)))
                ongoing = multi[response.call_id] = _MultiRound(call, [])
            ongoing.rounds.append((response.ts_ns, round_attributes(response)))
            return
        multi.pop(response.call_id, None)
        if ongoing is None:
            self._span(session, call, response, response.ts_ns)
            return
        self._span(
            session,
            ongoing.first,
            response,
            response.ts_ns,
            rounds=[*ongoing.rounds, (response.ts_ns, round_attributes(response))],
        )

    def _pending(self, session: Session) -> dict[str, _Call]:
        found = self._open.get(session.id)
        if found is None:
            with self._lock:
                found = self._open.setdefault(session.id, {})
        return found

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        pending = self._pending(session)
        for e in events:
            if e.kind == "request":
                if len(pending) >= MAX_PENDING:
                    pending.pop(next(iter(pending)))
                arguments = arguments_of(e) if self.payloads and e.method == "tools/call" else None
                pending[e.id] = _Call(e, trace_carrier(e), arguments)
            elif e.kind in ("response", "error") and e.request_event_id:
                call = pending.pop(e.request_event_id, None)
                if call is not None:
                    self._answered(session, call, e)
            elif e.kind == "notification" and e.method == "notifications/cancelled":
                decoded = e.decoded()
                call = pending.pop(decoded.cancels or "", None) if decoded is not None else None
                if call is not None:
                    params = _member(e, "params")
                    reason = params.get("reason") if isinstance(params, dict) else None
                    self._span(session, call, None, e.ts_ns, CANCELLED,
                               reason if isinstance(reason, str) else None)  # fmt: skip

    def on_session_end(self, session: Session) -> None:
        end = session.ended_ns or time.time_ns()
        with self._lock:
            pending = self._open.pop(session.id, {})
            between = self._multi.pop(session.id, {})
        for call in list(pending.values()):
            ongoing = between.pop(call.request.call_id or "", None)
            first, rounds = (ongoing.first, ongoing.rounds) if ongoing is not None else (call, None)
            self._span(session, first, None, end, UNANSWERED, "no answer before the session ended", rounds)
        for ongoing in between.values():  # the client never came back with the answers asked for
            self._span(session, ongoing.first, None, end, UNANSWERED, "no answer before the session ended",
                       ongoing.rounds)  # fmt: skip
        attrs = {k: v for k, v in session_attributes(session).items() if k in SESSION_KEYS}
        if session.exit_code not in (None, 0) and session.exit_code < 128:  # >= 128: ended by a signal
            attrs["error.type"] = str(session.exit_code)
        for h in self.server_session_durations if session.server_side else self.session_durations:
            h.record(max(0, end - session.started_ns) / 1e9, attrs)
        self._flush_briefly()

    def _flush_briefly(self) -> None:
        """Export the session's spans now (a host that outlives its sessions, such as the agent,
        would otherwise hold them until the next batch), waiting at most SHUTDOWN_SECONDS and not
        at all once an export failed: a collector that is down is said while the session's
        km monitor still listens, and never delays its end by more."""
        if not _reported.is_set():
            _bounded(lambda: self.tracer_provider.force_flush(timeout_millis=int(SHUTDOWN_SECONDS * 1000)),
                     "km-otel-flush")  # fmt: skip

    def _span(self, session: Session, call: _Call, response: Event | None, end_ns: int,
              ended: str | None = None, description: str | None = None,
              rounds: list[tuple[int, dict[str, Any]]] | None = None) -> None:  # fmt: skip
        """One span (and one duration) per call; ``rounds``: the answers of a multi-round call's
        rounds, each an ``mcp.round`` event on the span (its number, result type, the round's
        JSON-RPC id and latency)."""
        from opentelemetry import propagate
        from opentelemetry.trace import Status, StatusCode

        request = call.request
        attrs = attributes(request, response, session, self.payloads, ended, call.arguments)
        if self.legacy_names:
            attrs.update(legacy_attributes(request, response))
        parent = propagate.extract(call.carrier) if call.carrier else None
        span = self.tracer.start_span(
            span_name(request), context=parent, kind=self.kind, attributes=attrs, start_time=request.ts_ns,
        )  # fmt: skip
        for ts_ns, round_attrs in rounds or ():
            span.add_event("mcp.round", round_attrs, timestamp=ts_ns)
        if rounds:
            span.set_attribute("mcp.call.rounds", len(rounds))
        if "error.type" in attrs:
            message = description or (response.error_message if response is not None else None)
            span.set_status(Status(StatusCode.ERROR, message or attrs["error.type"]))
        span.end(end_time=max(end_ns, request.ts_ns))
        metric_attrs = {k: attrs[k] for k in METRIC_KEYS if k in attrs}
        seconds = max(0, end_ns - request.ts_ns) / 1e9
        for h in self.server_durations if session.server_side else self.durations:
            h.record(seconds, metric_attrs)

    def close(self) -> None:
        # flush what we can, but never hold km's exit hostage to a collector: at most
        # SHUTDOWN_SECONDS in all, and no wait at all once an export failed (the SDK would retry)
        def shutdown() -> None:
            try:
                if not _reported.is_set():
                    self.tracer_provider.force_flush()
                    self.meter_provider.force_flush(timeout_millis=int(SHUTDOWN_SECONDS * 1000))
                self.tracer_provider.shutdown()
                self.meter_provider.shutdown(timeout_millis=int(SHUTDOWN_SECONDS * 1000))
            except Exception as exc:  # pragma: no cover - depends on the collector
                if not _reported.is_set():
                    _reported.set()
                    _log.warning(f"km: OpenTelemetry export failed: {exc}", extra=once("otel-export"))

        if not _bounded(shutdown, "km-otel-close"):  # abort the exporters' retries (what is left is dropped)
            for exporter in (self._span_exporter, self._metric_exporter):
                with contextlib.suppress(Exception):
                    exporter.shutdown()
