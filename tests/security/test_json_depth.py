"""Red-team item 4, the local side: one message nested deeper than km keeps must never stop
uploads, reads or exports.

A message nested 254-1,023 levels is valid JSON and was forwarded correctly, but it was stored as
is; then orjson's 254-level limit on encoding made the uploader fail on every retry (the cursor
never moved, every later session was stuck), ``km sync`` crash with a traceback and
``km events --json`` / ``km export`` stop halfway. Now km forwards the bytes untouched and keeps
``jsonlimits.too_deep_marker`` in place of the payload, with the ``payload.too_deep`` finding.

Real processes: ``km monitor`` around a raw JSON-RPC MCP server (servers/deep_server.py: libraries
refuse such JSON, so it writes its answers as text), ``km events``, ``km export``, ``km replay`` and
``km sync`` to a real ``km serve``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from km_helpers import KM, PYTHON, km_env, km_events, km_sessions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sync"))
from sync_helpers import TeamServer, client_env, km_run, local_cursor

from kilometers import jsonlimits
from kilometers.jsonlimits import MAX_DEPTH, TOO_DEEP_RULE
from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Event, Session

DEEP_SERVER = str(Path(__file__).resolve().parent / "servers" / "deep_server.py")


def nest(levels: int) -> str:
    """The same nesting deep_server.py answers with."""
    return "[" * levels + json.dumps('x]"[{') + "]" * levels


def call(ident: int, depth: int, blob: int = 0) -> bytes:
    """A tools/call asking for an answer nested ``depth`` levels, itself nested ``blob`` levels."""
    arguments = '{"depth":' + str(depth) + (',"blob":' + nest(blob) if blob else "") + "}"
    params = '{"name":"nest","arguments":' + arguments + "}"
    return b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}\n' % (ident, params.encode())


def initialize(client_depth: int) -> bytes:
    info = '{"name":"deep-client","version":"1","extra":' + nest(client_depth) + "}"
    params = '{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":' + info + "}"
    return b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":%s}\n' % params.encode()


def monitor(home: Path, name: str, data: bytes, caps_depth: int, **env: str) -> None:
    """One ``km monitor`` session over deep_server.py: the client must get exactly the bytes the
    server writes without km."""
    server = [PYTHON, DEEP_SERVER, str(caps_depth)]
    direct = subprocess.run(server, input=data, capture_output=True, timeout=60, check=True)
    proxied = subprocess.run(
        [KM, "monitor", "--name", name, "--", *server],
        input=data,
        capture_output=True,
        env=km_env(home, **env),
        timeout=120,
        check=False,
    )
    assert proxied.returncode == 0, proxied.stderr.decode(errors="replace")
    assert proxied.stdout == direct.stdout, "km changed what the server sent"
    said = [line for line in proxied.stderr.splitlines() if b"analysis and redaction are off" not in line]
    assert said == [], proxied.stderr.decode(errors="replace")


def is_marker(event: dict[str, Any]) -> bool:
    payload = event["payload"]
    rules = [f["rule"] for f in event["risk"]["findings"]]
    if not (isinstance(payload, dict) and "km_omitted" in payload):
        assert TOO_DEEP_RULE not in rules, event
        return False
    assert payload == jsonlimits.too_deep_marker(event["size_bytes"]), payload
    assert TOO_DEEP_RULE in rules and event["risk"]["level"] in ("medium", "high", "critical"), event
    return True


@pytest.fixture
def team(tmp_path: Path) -> Iterator[TeamServer]:
    workdir = tmp_path / "team"
    workdir.mkdir()
    server = TeamServer(workdir, serve_args=("--rate", "0")).start()
    yield server
    server.kill()


# -- through km monitor, km events / export / sync ---------------------------------------------------


def test_over_deep_messages_are_forwarded_kept_as_a_marker_and_never_block(
    km_home: Path, team: TeamServer, tmp_path: Path
) -> None:
    data = b"".join(
        [
            initialize(300),  # the client's info nested 300 deep: not kept as the session's client
            b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n',
            call(1, 300),  # a plain request, its answer nested 300 deep
            call(2, 1000, blob=1000),  # both nested 1,000 deep
            call(3, 1100, blob=1100),  # both past orjson's own 1,024 levels
            call(4, 2),  # an ordinary call afterwards
        ]
    )
    monitor(km_home, "deep", data, caps_depth=300)

    events = km_events(km_home)
    assert len(events) == 11
    by_key = {(e["direction"], e["jsonrpc_id"]): e for e in events if e["jsonrpc_id"] is not None}
    omitted = {key for key, e in by_key.items() if is_marker(e)}
    assert omitted == {(C2S, 0), (S2C, 0), (S2C, 1), (C2S, 2), (S2C, 2), (C2S, 3), (S2C, 3)}
    for ident in (1, 2, 3):
        request, response = by_key[(C2S, ident)], by_key[(S2C, ident)]
        assert request["kind"] == "request" and (request["method"], request["tool"]) == ("tools/call", "nest")
        assert response["kind"] == "response" and response["tool"] == "nest"
        assert response["request_event_id"] == request["id"] and response["latency_ms"] is not None
    assert by_key[(C2S, 2)]["size_bytes"] == len(call(2, 1000, blob=1000)) - 1
    assert by_key[(S2C, 4)]["payload"]["result"]["structuredContent"] == {"value": json.loads(nest(2))}

    session = km_sessions(km_home)[0]
    assert session["client"] is None and session["capabilities"] is None  # nested too deep
    assert session["server"] == {"name": "deep-server", "version": "1.0"}
    assert session["protocol_version"] == "2025-06-18"
    assert session["risk"]["events_with_findings"] == 7

    # every export format, whole
    for fmt in ("jsonl", "csv", "har"):
        out = tmp_path / f"export.{fmt}"
        result = km_run("export", "--format", fmt, "-o", str(out), env=km_env(km_home))
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        text = out.read_text()
        if fmt == "jsonl":
            records = [json.loads(line) for line in text.splitlines()]
            assert sum(r["record"] == "event" for r in records) == 11
            assert sum(is_marker(r) for r in records if r["record"] == "event") == 7
        elif fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(text)))
            assert len(rows) == 11 and sum('"km_omitted"' in r["payload"] for r in rows) == 7
        else:
            assert len(json.loads(text)["log"]["entries"]) == 5

    # km sync: every event reaches the team server, the over-deep ones as their marker
    env = client_env(km_home, team)
    synced = km_run("sync", env=env)
    assert synced.returncode == 0, synced.stderr
    assert "Traceback" not in synced.stderr and "uploaded 11 events" in synced.stdout
    remote = {e["id"]: e for e in team.events(session["id"])}
    assert set(remote) == {e["id"] for e in events}
    assert remote[by_key[(C2S, 2)]["id"]]["payload"] == jsonlimits.too_deep_marker(
        by_key[(C2S, 2)]["size_bytes"]
    )
    first_cursor = local_cursor(km_home, team)
    assert first_cursor > 0

    # a later session (analysis off: the finding is capture's own) still uploads: the cursor moves
    monitor(km_home, "later", call(1, 500, blob=300) + call(2, 1), caps_depth=0, KM_ANALYSIS="false")
    later = km_events(km_home, "--session", "latest")
    assert {(e["direction"], e["jsonrpc_id"]): is_marker(e) for e in later} == {
        (C2S, 1): True, (S2C, 1): True, (C2S, 2): False, (S2C, 2): False
    }  # fmt: skip
    synced = km_run("sync", env=env)
    assert synced.returncode == 0 and "uploaded 4 events" in synced.stdout, synced.stderr
    assert local_cursor(km_home, team) > first_cursor
    assert {e["id"] for e in team.events(later[0]["session_id"])} == {e["id"] for e in later}


def test_a_store_written_before_the_limit_reads_exports_and_uploads(
    km_home: Path, team: TeamServer, tmp_path: Path
) -> None:
    """An older km stored over-deep payloads and session details as they came: reading them puts
    the marker in (with its finding), nothing fails, and the cursor moves past them."""
    monitor(km_home, "old", call(1, 2) + call(2, 2), caps_depth=0)
    deep = '{"jsonrpc":"2.0","id":1,"result":{"value":' + nest(600) + "}}"
    with sqlite3.connect(km_home / "km.db") as conn:  # what an older km wrote
        conn.execute(
            "UPDATE events SET payload = ?, findings = NULL, risk_level = NULL, risk_score = NULL "
            "WHERE direction = 'server_to_client' AND jsonrpc_id = '1'",
            (deep,),
        )
        conn.execute("UPDATE sessions SET capabilities = ?", ('{"x":' + nest(1100) + "}",))
    events = km_events(km_home)
    assert {(e["direction"], e["jsonrpc_id"]): is_marker(e) for e in events} == {
        (C2S, 1): False, (S2C, 1): True, (C2S, 2): False, (S2C, 2): False
    }  # fmt: skip
    assert km_sessions(km_home)[0]["capabilities"] is None
    for fmt in ("jsonl", "csv", "har"):
        result = km_run("export", "--format", fmt, "-o", str(tmp_path / f"old.{fmt}"), env=km_env(km_home))
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    synced = km_run("sync", env=client_env(km_home, team))
    assert synced.returncode == 0 and "uploaded 4 events" in synced.stdout, synced.stderr
    assert local_cursor(km_home, team) > 0


def test_replay_compares_over_deep_answers_and_refuses_omitted_requests(km_home: Path) -> None:
    server = ["--", PYTHON, DEEP_SERVER, "0"]
    monitor(km_home, "answers", call(1, 300) + call(2, 1100) + call(3, 1), caps_depth=0)
    same = km_run("replay", "latest", "--json", *server, env=km_env(km_home))
    assert same.returncode == 0, same.stdout + same.stderr
    assert [json.loads(line)["same"] for line in same.stdout.splitlines()] == [True, True, True]

    monitor(km_home, "requests", call(1, 1, blob=300), caps_depth=0)
    refused = km_run("replay", "latest", *server, env=km_env(km_home))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1 and "nested deeper than 128 levels" in refused.stderr


# -- capture, the security stage and OpenTelemetry, in process ----------------------------------------


def test_capture_marks_each_over_deep_batch_element_and_keeps_the_rest() -> None:
    capture = Capture(Session(command=["s"], cwd="/"))
    line = ('[{"jsonrpc":"2.0","method":"notifications/progress","params":{"v":[1]}},'
            '{"jsonrpc":"2.0","id":[' + nest(200) + '],"method":"tools/call","params":{"name":"t"}},'
            '{"jsonrpc":"2.0","id":5,"method":"ping","params":{"deep":' + nest(130) + "}}]\n")  # fmt: skip
    events = capture.feed(C2S, line.encode(), 1)
    assert [e.method for e in events] == ["notifications/progress", "tools/call", "ping"]
    assert [e.payload_omitted for e in events] == [False, True, True]
    assert orjson.loads(events[0].payload or "") == {
        "jsonrpc": "2.0", "method": "notifications/progress", "params": {"v": [1]}
    }  # fmt: skip
    assert events[1].tool == "t" and events[1].jsonrpc_id is None  # an id nested too deep is dropped
    assert events[2].jsonrpc_id == 5 and events[2].risk is not None and events[2].risk["score"] == 40
    for e in events:
        orjson.dumps(e.to_dict())


def test_the_security_stage_keeps_the_depth_finding(tmp_path: Path) -> None:
    from kilometers.security import Policy, SecurityStage

    session = Session(command=["s"], cwd="/", name="srv")
    stage = SecurityStage(Policy(), f"sqlite:///{tmp_path / 'km.db'}")
    error = {"code": -32001, "message": "Blocked by km policy: no", "data": orjson.loads(nest(200))}
    line = orjson.dumps({"jsonrpc": "2.0", "id": 1, "error": error}) + b"\n"
    events = Capture(session).feed(S2C, line, 1)
    stage.process(session, events)
    risk = events[0].risk
    assert risk is not None and events[0].error_code == -32001
    assert {f["rule"] for f in risk["findings"]} == {TOO_DEEP_RULE, "policy.blocked"}
    assert risk["level"] == "high"


def test_opentelemetry_spans_for_over_deep_calls() -> None:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kilometers.export.otel import OtelSink

    spans = InMemorySpanExporter()
    sink = OtelSink(
        payloads=True, span_exporter=spans, metric_exporter=ConsoleMetricExporter(out=io.StringIO())
    )
    session = Session(command=["s"], cwd="/")
    capture = Capture(session)
    answer = '{"jsonrpc":"2.0","id":1,"result":{"value":' + nest(300) + "}}\n"
    events = capture.feed(C2S, call(1, 300, blob=300), 1) + capture.feed(S2C, answer.encode(), 2)
    sink.on_events(session, events)
    sink.tracer_provider.force_flush()
    (span,) = spans.get_finished_spans()
    assert span.name == "tools/call nest"
    assert span.attributes is not None and "km_omitted" in str(span.attributes["gen_ai.tool.call.result"])
    sink.close()


# -- jsonlimits ---------------------------------------------------------------------------------------


def _reference_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_reference_depth(v) for v in value), default=0)
    return 0


def _random_value(rng: random.Random, levels: int) -> Any:
    tricky = ['"', "\\", "[", "]", "{", "}", '\\"', '"]', "\\\\", '["', "}}", "x", "é", "\n"]
    text = "".join(rng.choice(tricky) for _ in range(rng.randint(0, 6)))
    if levels == 0:
        return rng.choice([text, 1, None, True, 2.5])
    children = [_random_value(rng, rng.randint(0, min(levels - 1, 2))) for _ in range(rng.randint(0, 2))]
    children.append(_random_value(rng, levels - 1))  # one path reaches the full depth
    if rng.random() < 0.5:
        return children
    return {f"{text}{i}": child for i, child in enumerate(children)}


def test_jsonlimits_depth_is_exact() -> None:
    rng = random.Random(4)
    for _ in range(300):
        value = _random_value(rng, rng.choice([0, 1, 2, 5, 127, 128, 129, 200]))
        expected = _reference_depth(value)
        for text in (json.dumps(value), json.dumps(value, ensure_ascii=False).encode()):
            assert jsonlimits.depth(text) == expected, text
            assert jsonlimits.too_deep(text) is (expected > MAX_DEPTH)
            decoded, deep = jsonlimits.loads_message(text if isinstance(text, bytes) else text.encode())
            assert decoded == value and deep is (expected > MAX_DEPTH)
        assert jsonlimits.value_too_deep(value) is (expected > MAX_DEPTH)
    # brackets inside strings, escaped quotes and backslashes do not count
    assert jsonlimits.depth(r'["\"[[[", "\\", ["\\\"]]"]]') == 2
    assert jsonlimits.depth(b'{"a":"[[[[\\\\"}') == 1
    # orjson.dumps encodes ORJSON_MAX_DEPTH levels and no more: value_too_deep relies on it
    orjson.dumps(orjson.loads(nest(jsonlimits.ORJSON_MAX_DEPTH)))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(orjson.loads(nest(jsonlimits.ORJSON_MAX_DEPTH + 1)))
    assert jsonlimits.value_too_deep({1, 2}) is False  # not JSON: walked
    # past orjson's own limit the shallow fields are still read, from a pruned copy
    message, deep = jsonlimits.loads_message(call(7, 0, blob=5000))
    assert deep and message["id"] == 7 and message["params"]["name"] == "nest"
    assert jsonlimits.value_too_deep(message["params"]["arguments"])  # a pruned value stays too deep
    with pytest.raises(orjson.JSONDecodeError):
        jsonlimits.loads_message(b"[" * 2000)
    with pytest.raises(jsonlimits.JsonLimitError):
        jsonlimits.loads(nest(129))
    assert jsonlimits.loads(nest(128)) is not None
    event = Event("s", 1, C2S, "response", 9, nest(300), truncated=True)
    assert event.to_dict()["payload"] == nest(300)  # a cut payload stays text
