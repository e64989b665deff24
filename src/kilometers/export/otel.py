"""OpenTelemetry export following the semantic conventions for MCP: one CLIENT span per
request/response pair named ``{mcp.method.name} {target}``, and the
``mcp.client.operation.duration`` histogram.

Configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, protocol
``http/protobuf`` or ``grpc``) and ``OTEL_SERVICE_NAME``. Spans are batched and exported on
the SDK's own thread with a bounded queue and short timeouts: a slow or absent collector can
drop telemetry, never slow or break the proxy. A ``traceparent`` in the request's
``params._meta`` makes the span a child of the caller's trace.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import orjson

from ..model import Event, Session
from ..sinks import Sink

SHUTDOWN_SECONDS = 1.0
MAX_PENDING = 10_000


def _exporters() -> tuple[Any, Any]:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    )
    os.environ.setdefault("OTEL_EXPORTER_OTLP_TIMEOUT", "3")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    return OTLPSpanExporter(), OTLPMetricExporter()


def error_type(response: Event) -> str | None:
    if response.kind == "error":
        return str(response.error_code) if response.error_code is not None else "error"
    if response.is_error:
        return "tool_error"
    return None


def span_name(request: Event) -> str:
    target = request.tool or request.prompt_name
    return f"{request.method} {target}" if target else str(request.method)


def attributes(request: Event, response: Event, session: Session, payloads: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "mcp.method.name": request.method or "",
        "mcp.session.id": session.id,
        "network.transport": "pipe" if session.transport == "stdio" else "tcp",
    }
    if request.jsonrpc_id is not None:
        attrs["jsonrpc.request.id"] = str(request.jsonrpc_id)
    if session.protocol_version:
        attrs["mcp.protocol.version"] = session.protocol_version
    if request.tool:
        attrs["gen_ai.tool.name"] = request.tool
        attrs["gen_ai.operation.name"] = "execute_tool"
    if request.prompt_name:
        attrs["gen_ai.prompt.name"] = request.prompt_name
    if request.resource_uri:
        attrs["mcp.resource.uri"] = request.resource_uri
    err = error_type(response)
    if err is not None:
        attrs["error.type"] = err
        if response.error_message:
            attrs["rpc.response.status_code"] = err
    if payloads:  # opt-in; payloads reaching sinks are already redacted
        message = _params(request)
        if isinstance(message, dict) and "arguments" in message:
            attrs["gen_ai.tool.call.arguments"] = orjson.dumps(message["arguments"]).decode()
        if response.payload is not None:
            attrs["gen_ai.tool.call.result"] = response.payload
    return attrs


def _params(event: Event) -> Any:
    if event.payload is None:
        return None
    try:
        message = orjson.loads(event.payload)
    except orjson.JSONDecodeError:
        return None
    return message.get("params") if isinstance(message, dict) else None


class OtelSink(Sink):
    name = "opentelemetry"

    def __init__(
        self, payloads: bool = False, span_exporter: Any = None, metric_exporter: Any = None
    ) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        if span_exporter is None or metric_exporter is None:
            default_spans, default_metrics = _exporters()
            span_exporter = span_exporter or default_spans
            metric_exporter = metric_exporter or default_metrics
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "kilometers")})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(span_exporter, max_queue_size=4096, schedule_delay_millis=1000)
        )
        self.meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[PeriodicExportingMetricReader(metric_exporter, export_interval_millis=10_000)],
        )
        self.tracer = self.tracer_provider.get_tracer("kilometers")
        self.duration = self.meter_provider.get_meter("kilometers").create_histogram(
            "mcp.client.operation.duration", unit="s", description="Duration of MCP requests, as seen by km"
        )
        self.kind = SpanKind.CLIENT
        self.propagator = TraceContextTextMapPropagator()
        self.payloads = payloads
        self._pending: dict[str, Event] = {}

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        for e in events:
            if e.kind == "request":
                if len(self._pending) >= MAX_PENDING:
                    self._pending.pop(next(iter(self._pending)))
                self._pending[e.id] = e
            elif e.kind in ("response", "error") and e.request_event_id:
                request = self._pending.pop(e.request_event_id, None)
                if request is not None:
                    self._span(session, request, e)

    def _span(self, session: Session, request: Event, response: Event) -> None:
        from opentelemetry.trace import Status, StatusCode

        params = _params(request)
        meta = params.get("_meta") if isinstance(params, dict) else None
        context = None
        if isinstance(meta, dict) and isinstance(meta.get("traceparent"), str):
            carrier = {
                k: v for k, v in meta.items() if k in ("traceparent", "tracestate") and isinstance(v, str)
            }
            context = self.propagator.extract(carrier)
        attrs = attributes(request, response, session, self.payloads)
        span = self.tracer.start_span(
            span_name(request), context=context, kind=self.kind, attributes=attrs, start_time=request.ts_ns
        )
        if "error.type" in attrs:
            span.set_status(Status(StatusCode.ERROR, response.error_message or attrs["error.type"]))
        span.end(end_time=response.ts_ns)
        keys: tuple[str, ...] = ("mcp.method.name", "gen_ai.tool.name", "error.type")
        metric_attrs: dict[str, Any] = {k: attrs[k] for k in keys if k in attrs}
        self.duration.record((response.ts_ns - request.ts_ns) / 1e9, metric_attrs)

    def close(self) -> None:
        # flush what we can, but never hold km's exit hostage to an absent collector
        def shutdown() -> None:
            try:
                self.tracer_provider.shutdown()
                self.meter_provider.shutdown(timeout_millis=int(SHUTDOWN_SECONDS * 1000))
            except Exception as exc:  # pragma: no cover - depends on the collector
                print(f"km: OpenTelemetry export failed: {exc}", file=sys.stderr)

        worker = threading.Thread(target=shutdown, daemon=True)
        worker.start()
        worker.join(SHUTDOWN_SECONDS)
