"""OpenTelemetry export to a real OTLP/HTTP receiver (decoded with the official protobufs), and a
collector that is down does not slow the recorder."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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

from km_helpers import ECHO_SERVER, NODE_BIN, PYTHON, KmProcess, km_env, only_session, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "http"))
from http_helpers import KmProxy, prepare_store, sdk_target, start_everything

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
DURATION_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300]
"""The explicit bucket boundaries the MCP semantic conventions give every duration histogram."""


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


# -- real servers and clients through km: the conventions, attribute by attribute ----------------

EVERYTHING = str(NODE_BIN / "mcp-server-everything")
PARENT_SPAN = "00f067aa0ba902b7"


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs_of(item: Any) -> dict[str, Any]:
    return {a.key: _value(a.value) for a in item.attributes}


def histograms(receiver: Receiver) -> dict[str, list[Any]]:
    """Metric name -> its histogram data points in the last export that has it (cumulative)."""
    found: dict[str, list[Any]] = {}
    for req in receiver.metrics:
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    found[m.name] = list(m.histogram.data_points)
    return found


class Client:
    """The test as a raw MCP client of ``km monitor``: writes requests, reads the answers."""

    def __init__(self, km: KmProcess) -> None:
        self.km = km
        self.seen = 0

    def send(self, message: dict[str, Any], wait: bool = True) -> dict[str, Any] | None:
        self.km.write(_line(message))
        if "id" not in message or not wait:
            return None
        want = message["id"]

        def answered(data: bytes) -> bool:
            return any(orjson.loads(line).get("id") == want for line in data.splitlines() if line.strip())

        data = self.km.stdout.wait_for(answered, timeout=60)
        return next(m for m in map(orjson.loads, data.splitlines()) if m.get("id") == want)


CLIENT_INFO = {"name": "t", "version": "1"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": CLIENT_INFO},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def test_stdio_spans_and_metrics_attribute_by_attribute(
    receiver: Receiver, run_km: Any, km_home: Path
) -> None:
    env = km_env(km_home, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
    km = run_km([PYTHON, ECHO_SERVER], km_args=["--otel", "--otel-payloads"], env=env)
    c = Client(km)
    c.send(INIT)
    c.send(INITIALIZED)
    meta = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01", "tracestate": "rojo=00f067aa0ba902b7",
            "baggage": "userId=alice"}  # fmt: skip
    echo = c.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "hi"}, "_meta": meta}})  # fmt: skip
    c.send(
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "fail", "arguments": {"reason": "boom"}},
        }
    )
    c.send(
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "prompts/get",
            "params": {"name": "greeting", "arguments": {"name": "Ada"}},
        }
    )
    c.send({"jsonrpc": "2.0", "id": 5, "method": "resources/read", "params": {"uri": "test://static"}})
    nope = c.send({"jsonrpc": "2.0", "id": "six", "method": "nope/nothing", "params": {}})
    assert echo is not None and nope is not None
    code, _, stderr = km.finish()
    assert code == 0, stderr
    wait_until(
        lambda: len(receiver.spans) >= 6 and "mcp.client.session.duration" in histograms(receiver),
        what="the telemetry at the receiver",
    )
    sid = only_session(km_home)["id"]
    spans = {s.name: s for s in receiver.spans}
    names = ["initialize", "tools/call echo", "tools/call fail", "prompts/get greeting", "resources/read",
             "nope/nothing"]  # fmt: skip
    assert sorted(spans) == sorted(names)
    base = {"mcp.session.id": sid, "mcp.protocol.version": "2025-11-25", "network.transport": "pipe"}
    assert attrs_of(spans["initialize"]) == {
        **base,
        "mcp.method.name": "initialize",
        "jsonrpc.request.id": "1",
    }
    call = spans["tools/call echo"]
    assert attrs_of(call) == {
        **base, "mcp.method.name": "tools/call", "jsonrpc.request.id": "2", "gen_ai.tool.name": "echo",
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": '{"text":"hi"}',
        "gen_ai.tool.call.result": orjson.dumps(echo["result"]).decode(),
    }  # fmt: skip
    assert call.kind == 3 and call.status.code == 0  # CLIENT, UNSET
    assert call.trace_id.hex() == TRACE_ID and call.parent_span_id.hex() == PARENT_SPAN
    assert call.trace_state == "rojo=00f067aa0ba902b7"
    fail = spans["tools/call fail"]
    assert attrs_of(fail) == {
        **base, "mcp.method.name": "tools/call", "jsonrpc.request.id": "3", "gen_ai.tool.name": "fail",
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": '{"reason":"boom"}',
        "error.type": "tool_error",
    }  # fmt: skip
    assert fail.status.code == 2 and not fail.parent_span_id  # ERROR; no traceparent: a root span
    assert attrs_of(spans["prompts/get greeting"]) == {
        **base,
        "mcp.method.name": "prompts/get",
        "jsonrpc.request.id": "4",
        "gen_ai.prompt.name": "greeting",
    }
    assert attrs_of(spans["resources/read"]) == {
        **base,
        "mcp.method.name": "resources/read",
        "jsonrpc.request.id": "5",
        "mcp.resource.uri": "test://static",
    }
    error = spans["nope/nothing"]
    assert attrs_of(error) == {**base, "mcp.method.name": "nope/nothing", "jsonrpc.request.id": "six",
                               "error.type": "-32601", "rpc.response.status_code": "-32601"}  # fmt: skip
    assert error.status.code == 2 and error.status.message == nope["error"]["message"]

    found = histograms(receiver)
    assert "mcp.server.operation.duration" not in found  # km monitor is not the server's side
    points = found["mcp.client.operation.duration"]
    assert all(list(p.explicit_bounds) == list(DURATION_BUCKETS) for p in points)
    assert sum(p.count for p in points) == 6
    by_target = {
        (a := attrs_of(p))["mcp.method.name"] + " " + a.get("gen_ai.tool.name", ""): a for p in points
    }
    assert by_target["tools/call echo"] == {
        "mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "gen_ai.operation.name": "execute_tool",
        "mcp.protocol.version": "2025-11-25", "network.transport": "pipe"}  # fmt: skip
    assert by_target["nope/nothing "]["rpc.response.status_code"] == "-32601"
    (session_point,) = found["mcp.client.session.duration"]
    assert list(session_point.explicit_bounds) == list(DURATION_BUCKETS) and session_point.count == 1
    assert attrs_of(session_point) == {"mcp.protocol.version": "2025-11-25", "network.transport": "pipe"}


def test_cancelled_and_unanswered_requests_get_spans(receiver: Receiver, run_km: Any, km_home: Path) -> None:
    env = km_env(km_home, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
    km = run_km([EVERYTHING, "stdio"], km_args=["--otel", "--otel-legacy-names"], env=env)
    c = Client(km)
    c.send(INIT)
    c.send(INITIALIZED)
    long = {"name": "trigger-long-running-operation", "arguments": {"duration": 60, "steps": 60}}
    c.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": long}, wait=False)
    c.send(
        {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 2, "reason": "user stopped"},
        }
    )
    c.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": long}, wait=False)
    c.send({"jsonrpc": "2.0", "id": 4, "method": "nope/nothing", "params": {}})
    km.finish(timeout=90)  # the session ends with request 3 unanswered
    wait_until(lambda: len(receiver.spans) >= 4, what="the telemetry at the receiver")
    by_id = {attrs_of(s)["jsonrpc.request.id"]: s for s in receiver.spans}
    cancelled, unanswered = by_id["2"], by_id["3"]
    assert cancelled.name == unanswered.name == "tools/call trigger-long-running-operation"
    assert attrs_of(cancelled)["error.type"] == "cancelled"
    assert cancelled.status.code == 2 and cancelled.status.message == "user stopped"
    assert attrs_of(unanswered)["error.type"] == "unanswered" and unanswered.status.code == 2
    assert cancelled.end_time_unix_nano < unanswered.end_time_unix_nano
    legacy = attrs_of(by_id["4"])
    assert legacy["rpc.system"] == "jsonrpc" and legacy["rpc.method"] == "nope/nothing"
    assert legacy["rpc.jsonrpc.version"] == "2.0" and legacy["rpc.jsonrpc.request_id"] == "4"
    assert legacy["mcp.request.id"] == "4" and legacy["rpc.jsonrpc.error_code"] == -32601
    assert legacy["rpc.jsonrpc.error_message"] and legacy["rpc.response.status_code"] == "-32601"


@pytest.fixture(scope="module")
def everything_http() -> Iterator[str]:
    """``mcp-server-everything streamableHttp``; yields its MCP URL."""
    proc, url = start_everything("streamableHttp")
    yield url
    proc.stop()


def test_http_sessions_name_the_real_server(receiver: Receiver, km_home: Path, everything_http: str) -> None:
    """km proxy and km monitor --url: server.address/port of the upstream behind km, http over tcp;
    km proxy answers the client in the server's place, so it also has the server-side histograms."""
    import anyio
    from mcp import Client as SdkClient

    prepare_store(km_home)
    upstream_port = int(everything_http.split(":")[2].split("/")[0])
    env = km_env(km_home, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, KM_OTEL="1")
    proxy = KmProxy(km_home, everything_http, env=env)

    async def scenario() -> None:
        async with SdkClient(sdk_target(proxy.url(everything_http)), mode="legacy") as client:
            await client.call_tool("echo", {"message": "hi"})

    try:
        anyio.run(scenario)
    finally:
        proxy.stop()
    wait_until(
        lambda: "mcp.server.session.duration" in histograms(receiver), what="the telemetry at the receiver"
    )
    call = next(s for s in receiver.spans if s.name == "tools/call echo")
    attrs = attrs_of(call)
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == upstream_port
    assert attrs["network.protocol.name"] == "http" and attrs["network.transport"] == "tcp"
    found = histograms(receiver)
    for name in ("mcp.client.operation.duration", "mcp.server.operation.duration"):
        point = next(p for p in found[name] if attrs_of(p).get("gen_ai.tool.name") == "echo")
        assert list(point.explicit_bounds) == list(DURATION_BUCKETS)
        assert attrs_of(point)["server.port"] == upstream_port
    receiver.spans.clear()

    bridge = KmProcess(km_home, [], km_args=["--otel", "--url", everything_http], env=env)
    c = Client(bridge)
    c.send(INIT)
    c.send(INITIALIZED)
    c.send(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "x"}},
        }
    )
    bridge.finish()
    wait_until(
        lambda: any(s.name == "tools/call echo" for s in receiver.spans), what="the telemetry at the receiver"
    )
    attrs = attrs_of(next(s for s in receiver.spans if s.name == "tools/call echo"))
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == upstream_port
    assert attrs["network.protocol.name"] == "http" and attrs["network.transport"] == "tcp"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("endpoint", ["down", "not a url"])
def test_a_bad_collector_costs_one_line_and_no_wait(endpoint: str, run_km: Any, km_home: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}" if endpoint == "down" else endpoint
    km = run_km(
        [PYTHON, ECHO_SERVER], km_args=["--otel"], env=km_env(km_home, OTEL_EXPORTER_OTLP_ENDPOINT=url)
    )
    c = Client(km)
    c.send(INIT)
    c.send(INITIALIZED)
    c.send(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}},
        }
    )
    started = time.monotonic()
    code, _, stderr = km.finish()
    elapsed = time.monotonic() - started
    assert code == 0
    lines = [
        line for line in stderr.decode().splitlines() if line.strip() and "echo server starting" not in line
    ]
    assert len(lines) == 1 and lines[0].startswith("km: OpenTelemetry export"), lines
    assert ("Connection refused" if endpoint == "down" else "'not a url' is not an http") in lines[0]
    assert elapsed < 5, elapsed  # measured ~0.9 s here (no --otel: ~0.8 s; before: 1.9-3.6 s)


def test_one_provider_serves_every_session_of_a_host(receiver: Receiver, km_home: Path) -> None:
    """km proxy's sessions share the host's one OtelSink: JSON-RPC ids repeat across sessions,
    and a session's end closes only its own unanswered requests."""
    from kilometers import config
    from kilometers.host import Host

    settings = config.Settings(db_url=f"sqlite:///{km_home / 'km.db'}", otel=True)
    host = Host(settings, server_side=True, batch_window=0).start()
    a = host.open_session(Session(command=["a"], cwd="/", name="a"))
    b = host.open_session(Session(command=["b"], cwd="/", name="b"))
    t = 1_800_000_000_000_000_000

    def call(tool: str, id_: int) -> bytes:
        return _line({"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": tool}})

    a.submit(C2S, call("a-answered", 1), t)
    b.submit(C2S, call("b-answered", 1), t + 1)
    b.submit(C2S, call("b-later", 2), t + 2)
    a.submit(C2S, call("a-unanswered", 2), t + 3)
    a.submit(S2C, _line({"jsonrpc": "2.0", "id": 1, "result": {"content": []}}), t + 10**6)
    b.submit(S2C, _line({"jsonrpc": "2.0", "id": 1, "result": {"content": []}}), t + 2 * 10**6)
    a.close(0)  # b's request 2 is still pending: not a's to end
    b.submit(S2C, _line({"jsonrpc": "2.0", "id": 2, "result": {"content": []}}), t + 3 * 10**6)
    host.close()  # ends b, flushes the one provider
    wait_until(lambda: len(receiver.spans) >= 4, what="the telemetry at the receiver")
    spans = {s.name: attrs_of(s) for s in receiver.spans}
    assert sorted(spans) == ["tools/call a-answered", "tools/call a-unanswered", "tools/call b-answered",
                             "tools/call b-later"]  # fmt: skip
    for name, attrs in spans.items():
        owner = a if name.startswith("tools/call a-") else b
        assert attrs["mcp.session.id"] == owner.session.id, name
        assert attrs.get("error.type") == ("unanswered" if name.endswith("a-unanswered") else None), name


def _mrtr_traffic(rec: Recorder) -> int:
    """A 2026-07-28 call that asks twice for input (three rounds), then an unrelated call."""
    t = 1_800_000_000_000_000_000
    ms = 10**6

    def ask(jsonrpc_id: int, key: str, state: str) -> dict[str, Any]:
        question = {"method": "elicitation/create", "params": {"message": key, "requestedSchema": {}}}
        result = {"resultType": "input_required", "inputRequests": {key: question}, "requestState": state}
        return {"jsonrpc": "2.0", "id": jsonrpc_id, "result": result}

    def call(jsonrpc_id: int, **extra: Any) -> dict[str, Any]:
        params = {"name": "weather", "arguments": {}, **extra}
        return {"jsonrpc": "2.0", "id": jsonrpc_id, "method": "tools/call", "params": params}

    answer = {"action": "accept", "content": {"city": "Paris"}}
    rec.submit(C2S, _line(call(1)), t)
    rec.submit(S2C, _line(ask(1, "city", "s1")), t + 2 * ms)
    rec.submit(C2S, _line(call(2, inputResponses={"city": answer}, requestState="s1")), t + 10 * ms)
    rec.submit(S2C, _line(ask(2, "unit", "s2")), t + 13 * ms)
    rec.submit(C2S, _line(call(3, inputResponses={"unit": answer}, requestState="s2")), t + 20 * ms)
    done = {"content": [{"type": "text", "text": "sunny"}], "resultType": "complete"}
    rec.submit(S2C, _line({"jsonrpc": "2.0", "id": 3, "result": done}), t + 24 * ms)
    rec.submit(C2S, _line({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}), t + 30 * ms)
    rec.submit(S2C, _line({"jsonrpc": "2.0", "id": 4, "result": {"tools": []}}), t + 31 * ms)
    return t


def test_a_multi_round_call_is_one_span_with_an_event_per_round(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an earlier test's unreachable collector must not skip this one's final metric flush
    monkeypatch.setattr("kilometers.export.otel._reported", threading.Event())
    session = Session(command=["srv"], cwd="/")
    rec = Recorder(Capture(session), [OtelSink()], batch_window=0)
    rec.start()
    t = _mrtr_traffic(rec)
    rec.stop(0)
    wait_until(
        lambda: len(receiver.spans) >= 2 and "mcp.client.operation.duration" in histograms(receiver),
        what="the telemetry at the receiver",
    )
    assert sorted(s.name for s in receiver.spans) == ["tools/call weather", "tools/list"]
    [span] = [s for s in receiver.spans if s.name == "tools/call weather"]
    # from the first request to the final answer, named by the first request
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (t, t + 24 * 10**6)
    attrs = attrs_of(span)
    assert attrs["jsonrpc.request.id"] == "1" and attrs["mcp.call.rounds"] == 3
    assert "error.type" not in attrs
    rounds = [(e.name, attrs_of(e)) for e in span.events]
    assert [name for name, _ in rounds] == ["mcp.round"] * 3
    assert [a["mcp.round.number"] for _, a in rounds] == [1, 2, 3]
    assert [a["jsonrpc.request.id"] for _, a in rounds] == ["1", "2", "3"]
    assert [a["mcp.result.type"] for _, a in rounds] == ["input_required", "input_required", "complete"]
    assert [e.time_unix_nano - t for e in span.events] == [2 * 10**6, 13 * 10**6, 24 * 10**6]
    # the call is one operation in the duration histogram, not one per round
    points = histograms(receiver)["mcp.client.operation.duration"]
    by_method = {attrs_of(p)["mcp.method.name"]: p for p in points}
    assert by_method["tools/call"].count == 1 and by_method["tools/call"].sum == pytest.approx(0.024)


def test_a_multi_round_call_left_waiting_for_input_is_one_unanswered_span(receiver: Receiver) -> None:
    session = Session(command=["srv"], cwd="/")
    rec = Recorder(Capture(session), [OtelSink()], batch_window=0)
    rec.start()
    t = 1_800_000_000_000_000_000
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "weather", "arguments": {}}}
    ask = {"resultType": "input_required", "inputRequests": {"city": {"method": "elicitation/create"}}}
    rec.submit(C2S, _line(call), t)
    rec.submit(S2C, _line({"jsonrpc": "2.0", "id": 1, "result": ask}), t + 10**6)
    rec.stop(0)  # the client never comes back with the answer
    wait_until(lambda: len(receiver.spans) >= 1, what="the telemetry at the receiver")
    [span] = receiver.spans
    assert span.name == "tools/call weather" and attrs_of(span)["error.type"] == "unanswered"
    assert [attrs_of(e)["mcp.result.type"] for e in span.events] == ["input_required"]
