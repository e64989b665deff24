"""Prometheus metrics: per-tool call/error counters and latency histograms with bounded label
cardinality, shared by `km serve` (/metrics, plus ingestion metrics) and `km monitor
--metrics-port` (a sink, plus the recorder's backlog)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from ..model import Event, Session
from ..sinks import Sink

MAX_SERIES = 200
"""Distinct (server, tool) label pairs kept; later ones are counted under tool="other"."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ToolMetrics:
    def __init__(self, registry: CollectorRegistry, max_series: int = MAX_SERIES) -> None:
        self.max_series = max_series
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.calls = Counter(
            "km_tool_calls", "MCP tool calls (tools/call requests)", ["server", "tool"], registry=registry
        )
        self.errors = Counter(
            "km_tool_errors",
            "Tool calls answered with an error or isError",
            ["server", "tool"],
            registry=registry,
        )
        self.latency = Histogram(
            "km_tool_latency_seconds",
            "Request-to-response time of tool calls",
            ["server", "tool"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.messages = Counter(
            "km_messages",
            "JSON-RPC messages seen, by kind and direction",
            ["kind", "direction"],
            registry=registry,
        )

    def _labels(self, server: str, tool: str) -> tuple[str, str]:
        key = (server[:100], tool[:100])
        with self._lock:
            if key in self._seen:
                return key
            if len(self._seen) < self.max_series:
                self._seen.add(key)
                return key
        return (key[0] if (key[0], "other") in self._seen else "other", "other")

    def observe(self, server: str, kind: str, direction: str, tool: str | None, is_error: bool,
                latency_ms: float | None) -> None:  # fmt: skip
        self.messages.labels(kind, direction).inc()
        if tool is None:
            return
        labels = self._labels(server, tool)
        if kind == "request":
            self.calls.labels(*labels).inc()
            self.errors.labels(*labels)  # a 0 series from the first call: rate(errors) / rate(calls) works
        elif kind in ("response", "error"):
            if is_error:
                self.errors.labels(*labels).inc()
            if latency_ms is not None:
                self.latency.labels(*labels).observe(latency_ms / 1000)

    def observe_rows(self, server: str, rows: Iterable[dict[str, Any]]) -> None:
        for r in rows:
            self.observe(server, r["kind"], r["direction"], r["tool"], bool(r["is_error"]), r["latency_ms"])


class ServerMetrics:
    """Everything `km serve` exposes at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tools = ToolMetrics(self.registry)
        self.batches = Counter(
            "km_ingest_batches", "Ingest requests by outcome", ["status"], registry=self.registry
        )
        self.events = Counter(
            "km_ingest_events", "Events received, by result (accepted, duplicate, rejected)", ["result"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "km_ingest_duration_seconds", "Time to validate and store one batch", buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.in_progress = Gauge(
            "km_ingest_in_progress", "Batches being stored now (backlog)", registry=self.registry
        )
        self.live = Gauge("km_live_subscribers", "Open live streams", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsSink(Sink):
    """`km monitor --metrics-port`: serves the metrics of the process's sessions over HTTP on
    loopback (one port for all of them: kilometers.host shares the sink)."""

    name = "metrics"

    def __init__(self, port: int, host: str = "127.0.0.1", backlog: Any = None) -> None:
        self.registry = CollectorRegistry()
        self.tools = ToolMetrics(self.registry)
        self.sessions = Gauge("km_session_events", "Events recorded in this session", registry=self.registry)
        self.dropped = Gauge(
            "km_session_dropped_events", "Events that could not be stored", registry=self.registry
        )
        if backlog is not None:
            queued = Gauge(
                "km_recorder_backlog", "Chunks waiting for the recorder thread", registry=self.registry
            )
            queued.set_function(backlog)
        self._lock = threading.Lock()
        self._events: dict[str, int] = {}
        """Events of the sessions open now, by session id (the gauges show the process's sums)."""
        self._ended_events = 0
        self._dropped = 0
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        server = session.name or (session.server or {}).get("name") or ""
        for e in events:
            self.tools.observe(server, e.kind, e.direction, e.tool, e.is_error, e.latency_ms)
        with self._lock:
            self._events[session.id] = session.event_count
            self.sessions.set(self._ended_events + sum(self._events.values()))

    def on_session_end(self, session: Session) -> None:
        with self._lock:
            self._events.pop(session.id, None)
            self._ended_events += session.event_count
            self._dropped += session.dropped_events
            self.sessions.set(self._ended_events + sum(self._events.values()))
            self.dropped.set(self._dropped)

    def close(self) -> None:
        self._server.shutdown()
