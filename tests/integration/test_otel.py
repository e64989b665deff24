"""OpenTelemetry export to a real OTLP/HTTP receiver (decoded with the official protobufs), and a
collector that is down does not slow the recorder."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from kilometers.export.otel import OtelSink
from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Session
from kilometers.recorder import Recorder

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Receiver:
    def __init__(self) -> None:
        self.spans: list = []  # type: ignore[type-arg]
        self.metrics: list = []  # type: ignore[type-arg]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v1/traces":
                    req = ExportTraceServiceRequest()
                    req.ParseFromString(body)
                    for rs in req.resource_spans:
                        for ss in rs.scope_spans:
                            receiver.spans.extend(ss.spans)
                elif self.path == "/v1/metrics":
                    req = ExportMetricsServiceRequest()
                    req.ParseFromString(body)
                    receiver.metrics.append(req)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    r = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    yield r
    r.server.shutdown()


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _traffic(rec: Recorder) -> None:
    t = 1_800_000_000_000_000_000
    meta = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25"}}
    rec.submit(C2S, _line(init), t)
    rec.submit(
        S2C, _line({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25"}}), t + 10**6
    )
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "get_weather", "arguments": {"city": "Oslo"}, "_meta": meta}}  # fmt: skip
    rec.submit(C2S, _line(call), t + 2 * 10**6)
    rec.submit(
        S2C, _line({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "isError": True}}), t + 7 * 10**6
    )
    read = {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///a"}}
    rec.submit(C2S, _line(read), t + 8 * 10**6)
    rec.submit(
        S2C, _line({"jsonrpc": "2.0", "id": 2, "error": {"code": -32002, "message": "nope"}}), t + 9 * 10**6
    )


def test_spans_and_histogram_follow_the_mcp_conventions(receiver: Receiver) -> None:
    session = Session(command=["srv"], cwd="/")
    rec = Recorder(Capture(session), [OtelSink(payloads=True)], batch_window=0)
    rec.start()
    _traffic(rec)
    rec.stop(0)
    for _ in range(50):
        if len(receiver.spans) >= 3 and receiver.metrics:
            break
        time.sleep(0.1)
    spans = {s.name: s for s in receiver.spans}
    assert set(spans) == {"initialize", "tools/call get_weather", "resources/read"}
    call = spans["tools/call get_weather"]
    attrs = {a.key: a.value.string_value for a in call.attributes}
    assert call.kind == 3  # SPAN_KIND_CLIENT
    assert attrs["mcp.method.name"] == "tools/call" and attrs["gen_ai.tool.name"] == "get_weather"
    assert attrs["gen_ai.operation.name"] == "execute_tool" and attrs["jsonrpc.request.id"] == "1"
    assert attrs["mcp.session.id"] == session.id and attrs["mcp.protocol.version"] == "2025-11-25"
    assert attrs["network.transport"] == "pipe" and attrs["error.type"] == "tool_error"
    assert orjson.loads(attrs["gen_ai.tool.call.arguments"]) == {"city": "Oslo"}
    assert call.trace_id.hex() == TRACE_ID  # child of the caller's traceparent
    assert call.end_time_unix_nano - call.start_time_unix_nano == 5 * 10**6
    read = {a.key: a.value.string_value for a in spans["resources/read"].attributes}
    assert read["mcp.resource.uri"] == "file:///a" and read["error.type"] == "-32002"
    names = {m.name for req in receiver.metrics for rm in req.resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics}  # fmt: skip
    assert "mcp.client.operation.duration" in names


def test_payloads_stay_out_unless_opted_in(receiver: Receiver) -> None:
    rec = Recorder(Capture(Session(command=["s"], cwd="/")), [OtelSink()], batch_window=0)
    rec.start()
    _traffic(rec)
    rec.stop(0)
    for _ in range(50):
        if len(receiver.spans) >= 3:
            break
        time.sleep(0.1)
    keys = {a.key for s in receiver.spans for a in s.attributes}
    assert "gen_ai.tool.call.arguments" not in keys and "gen_ai.tool.call.result" not in keys


def test_a_collector_that_is_down_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    rec = Recorder(Capture(Session(command=["s"], cwd="/")), [OtelSink()], batch_window=0)
    rec.start()
    started = time.monotonic()
    for _ in range(200):
        _traffic(rec)
    rec.stop(0, timeout=30)
    assert time.monotonic() - started < 10  # the close() flush is bounded (1 s), recording is unaffected
    assert rec.session.event_count == 1200
