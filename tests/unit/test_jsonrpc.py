"""The sans-IO capture core, fed bytes directly: no processes, sockets or databases."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from kilometers.jsonrpc import MAX_PENDING_REQUESTS, Capture, Filters, LineFramer, classify
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Session


def _session() -> Session:
    return Session(command=["srv"], cwd="/")


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


@given(st.lists(st.binary(max_size=300), max_size=30))
@settings(max_examples=300)
def test_framer_reassembles_any_chunking(chunks: list[bytes]) -> None:
    framer = LineFramer()
    frames: list[bytes] = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))
    rest = framer.flush()
    data = b"".join(chunks)
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
        assert rest is None
    else:
        assert rest == expected.pop()
    assert frames == expected


def test_framer_has_no_line_limit() -> None:
    framer = LineFramer()
    big = b"x" * (8 << 20)
    for i in range(0, len(big), 65536):
        assert framer.feed(big[i : i + 65536]) == []
    assert framer.pending_bytes == len(big)
    assert framer.feed(b"\n") == [big]


def test_classify() -> None:
    assert classify({"jsonrpc": "2.0", "id": 1, "method": "x"}) == "request"
    assert classify({"jsonrpc": "2.0", "method": "x"}) == "notification"
    assert classify({"jsonrpc": "2.0", "id": 1, "result": {}}) == "response"
    assert classify({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "m"}}) == "error"
    assert classify({"jsonrpc": "2.0", "id": 1}) == "invalid"
    assert classify([1]) == "invalid"
    assert classify("text") == "invalid"
    assert classify({"method": 5, "id": 1}) == "invalid"


def test_correlates_request_and_response_with_latency() -> None:
    cap = Capture(_session())
    req = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    [r] = cap.feed(C2S, _line(req), 1_000_000_000)
    [a] = cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 7, "result": {"content": []}}), 1_002_500_000)
    assert (r.kind, r.method, r.tool, r.jsonrpc_id) == ("request", "tools/call", "echo", 7)
    assert (a.kind, a.method, a.tool, a.request_event_id) == ("response", "tools/call", "echo", r.id)
    assert a.latency_ms == 2.5


def test_string_and_number_ids_do_not_collide() -> None:
    cap = Capture(_session())
    cap.feed(C2S, _line({"jsonrpc": "2.0", "id": 1, "method": "a"}), 1)
    cap.feed(C2S, _line({"jsonrpc": "2.0", "id": "1", "method": "b"}), 2)
    [resp] = cap.feed(S2C, _line({"jsonrpc": "2.0", "id": "1", "result": {}}), 3)
    assert resp.method == "b"
    [resp] = cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 1, "result": {}}), 4)
    assert resp.method == "a"


def test_server_initiated_request_is_correlated_with_client_response() -> None:
    cap = Capture(_session())
    [r] = cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 0, "method": "sampling/createMessage"}), 10)
    [a] = cap.feed(C2S, _line({"jsonrpc": "2.0", "id": 0, "result": {"role": "assistant"}}), 20)
    assert a.request_event_id == r.id and a.method == "sampling/createMessage"
    assert a.direction == C2S


def test_errors_and_tool_errors() -> None:
    cap = Capture(_session())
    cap.feed(C2S, _line({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}), 1)
    [e] = cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad"}}), 2)
    assert (e.kind, e.error_code, e.error_message, e.is_error) == ("error", -32602, "bad", True)
    cap.feed(C2S, _line({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "x"}}), 3)
    [t] = cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 2, "result": {"isError": True, "content": []}}), 4)
    assert (t.kind, t.is_error, t.tool) == ("response", True, "x")


def test_resource_and_prompt_names() -> None:
    cap = Capture(_session())
    [r] = cap.feed(
        C2S, _line({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "f://a"}}), 1
    )
    [p] = cap.feed(
        C2S, _line({"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "greet"}}), 1
    )
    assert r.resource_uri == "f://a" and p.prompt_name == "greet"


def test_invalid_lines_are_recorded_raw() -> None:
    cap = Capture(_session())
    events = cap.feed(C2S, b'not json\n\n\xff\xfe{\n{"jsonrpc":"2.0"}\n[]\n', 1)
    assert [e.kind for e in events] == ["invalid"] * 5
    assert orjson.loads(events[0].payload or "") == "not json"
    assert orjson.loads(events[1].payload or "") == ""
    assert orjson.loads(events[2].payload or "") == "\\xff\\xfe{"
    assert events[2].size_bytes == 3


def test_partial_line_at_end_is_invalid() -> None:
    cap = Capture(_session())
    assert cap.feed(S2C, b'{"jsonrpc":"2.0","id":1,', 1) == []
    [e] = cap.finish(2)
    assert e.kind == "invalid" and e.direction == S2C


def test_crlf_json_is_parsed_and_size_counts_the_wire_bytes() -> None:
    cap = Capture(_session())
    line = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\r'
    [e] = cap.feed(C2S, line + b"\n", 1)
    assert e.kind == "notification" and e.size_bytes == len(line)
    assert not e.payload.endswith("\r")  # type: ignore[union-attr]


def test_batches_yield_one_event_per_element() -> None:
    cap = Capture(_session())
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "a"}, {"jsonrpc": "2.0", "method": "n"}, 5]
    events = cap.feed(C2S, _line(batch), 1)
    assert [e.kind for e in events] == ["request", "notification", "invalid"]
    [resp] = cap.feed(S2C, _line([{"jsonrpc": "2.0", "id": 1, "result": {}}]), 2)
    assert resp.method == "a"


def test_filters_apply_to_requests_and_their_responses() -> None:
    cap = Capture(_session(), Filters(exclude_ping=True, exclude_methods=["notifications/*"]))
    assert cap.feed(C2S, _line({"jsonrpc": "2.0", "id": 1, "method": "ping"}), 1) == []
    assert cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 1, "result": {}}), 2) == []
    assert cap.feed(C2S, _line({"jsonrpc": "2.0", "method": "notifications/x"}), 3) == []
    assert len(cap.feed(C2S, _line({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), 4)) == 1
    only = Capture(_session(), Filters(include_methods=["tools/*"]))
    assert only.feed(C2S, _line({"jsonrpc": "2.0", "id": 1, "method": "prompts/list"}), 1) == []
    assert len(only.feed(C2S, _line({"jsonrpc": "2.0", "id": 2, "method": "tools/call"}), 1)) == 1


def test_payload_limit_truncates_the_stored_copy_only() -> None:
    cap = Capture(_session(), payload_limit=20)
    data = _line({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a" * 100}})
    [e] = cap.feed(C2S, data, 1)
    assert e.truncated and len(e.payload or "") == 20 and e.size_bytes == len(data) - 1
    assert e.tool == "a" * 100
    assert e.to_dict()["payload"] == (e.payload or "")  # kept as text when no longer JSON


def test_initialize_fills_the_session() -> None:
    session = _session()
    cap = Capture(session)
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "clientInfo": {"name": "c", "version": "1"}},
    }
    cap.feed(C2S, _line(init), 1)
    assert session.client == {"name": "c", "version": "1"} and cap.session_changed
    result = {"protocolVersion": "2025-03-26", "serverInfo": {"name": "s"}, "capabilities": {"tools": {}}}
    cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 0, "result": result}), 2)
    assert session.server == {"name": "s"}
    assert session.protocol_version == "2025-03-26"
    assert session.capabilities == {"tools": {}}


def test_stateless_protocol_discover_and_meta() -> None:
    session = _session()
    cap = Capture(session)
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "modern"},
    }
    cap.feed(
        C2S, _line({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}), 1
    )
    result = {
        "supportedVersions": ["2026-07-28"],
        "capabilities": {"tools": {}},
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "srv"}},
    }
    cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 1, "result": result}), 2)
    assert session.protocol_version == "2026-07-28"
    assert session.client == {"name": "modern"} and session.server == {"name": "srv"}
    assert session.capabilities == {"tools": {}}


def test_pending_requests_are_bounded() -> None:
    cap = Capture(_session())
    for i in range(MAX_PENDING_REQUESTS + 10):
        cap.feed(C2S, _line({"jsonrpc": "2.0", "id": i, "method": "m"}), i)
    assert len(cap._pending) == MAX_PENDING_REQUESTS
    [old] = cap.feed(S2C, _line({"jsonrpc": "2.0", "id": 0, "result": {}}), 1)
    assert old.request_event_id is None  # forgotten, still recorded
    [new] = cap.feed(S2C, _line({"jsonrpc": "2.0", "id": MAX_PENDING_REQUESTS + 9, "result": {}}), 1)
    assert new.method == "m"


def test_event_ids_are_time_ordered_uuid7() -> None:
    cap = Capture(_session())
    events = cap.feed(C2S, b"".join(_line({"jsonrpc": "2.0", "method": "n"}) for _ in range(50)), 1)
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert all(i[14] == "7" for i in ids)
