"""Playbooks of linked calls (MCP 2026-07-28 and 2025-11-25): bytes in, events with their links
out. A multi-round call's retry (new id) joins its first request; a task's updates, a request's
progress and cancellation, a subscription's notifications point at the request they belong to;
``_meta`` teaches the session what a handshake used to; ``requestState`` is stored as a hash."""

from __future__ import annotations

from typing import Any

import orjson

from kilometers.engine import Engine
from kilometers.jsonrpc import Capture, hash_request_state
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Event, Session

T = 1_800_000_000_000_000_000
MS = 1_000_000
STATE = "opaque-state-the-server-keeps-between-rounds"
QUESTION = {"method": "elicitation/create", "params": {"message": "Which city?", "requestedSchema": {}}}


def line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def engine(keep_request_state: bool = False) -> Engine:
    session = Session(command=["srv"], cwd="/", name="srv")
    return Engine(session, capture=Capture(session, keep_request_state=keep_request_state))


def call(ident: Any, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {"name": "weather", **params}}


def result(ident: Any, **fields: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": fields}


def feed(eng: Engine, *steps: tuple[str, object, int]) -> list[Event]:
    events: list[Event] = []
    for direction, message, ms in steps:
        events += eng.feed(direction, line(message), T + ms * MS).events  # type: ignore[arg-type]
    return events


def test_a_multi_round_call_retried_with_a_new_id_is_one_linked_call() -> None:
    eng = engine()
    first, asked, retry, answer = feed(
        eng,
        (C2S, call(1, arguments={"x": 1}), 0),
        (
            S2C,
            result(1, resultType="input_required", inputRequests={"city": QUESTION}, requestState=STATE),
            5,
        ),
        (
            C2S,
            call(2, arguments={"x": 1}, inputResponses={"city": {"action": "accept"}}, requestState=STATE),
            40,
        ),
        (S2C, result(2, content=[{"type": "text", "text": "sunny"}]), 50),
    )
    assert first.call_id is None and first.round is None  # the call itself
    assert (asked.call_id, asked.round, asked.request_event_id) == (first.id, 1, first.id)
    assert (retry.call_id, retry.round, retry.jsonrpc_id) == (first.id, 2, 2)
    assert (answer.call_id, answer.round, answer.request_event_id) == (first.id, 2, retry.id)
    assert answer.latency_ms == 10.0 and answer.call_latency_ms == 50.0  # this round, the whole call
    assert asked.call_latency_ms is None and not asked.is_error
    assert answer.to_dict()["call_id"] == first.id and answer.to_dict()["round"] == 2


def test_request_state_is_stored_as_its_hash_unless_kept() -> None:
    steps = (
        (C2S, call(1), 0),
        (S2C, result(1, resultType="input_required", requestState=STATE), 1),
        (C2S, call(2, requestState=STATE), 2),
        (S2C, result(2, content=[]), 3),
    )
    hashed = feed(engine(), *steps)
    digest = hash_request_state(STATE)
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    for e in hashed[1:3]:
        assert STATE not in (e.payload or "") and digest in (e.payload or "")
        assert e.decoded() is not None  # the message travelling on holds the hash too
    # linked through the hash alone (no inputRequests to match on)
    assert hashed[2].call_id == hashed[0].id and hashed[3].call_latency_ms == 3.0
    kept = feed(engine(keep_request_state=True), *steps)
    assert STATE in (kept[1].payload or "") and STATE in (kept[2].payload or "")
    assert kept[2].call_id == kept[0].id


def test_a_retry_without_state_joins_the_call_that_asked_for_its_inputs() -> None:
    eng = engine()
    events = feed(
        eng,
        (C2S, call("a"), 0),
        (C2S, {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "other"}}, 1),
        (S2C, result("a", resultType="input_required", inputRequests={"q1": QUESTION}), 2),
        (S2C, result("b", resultType="input_required", inputRequests={"q2": QUESTION}), 3),
        (
            C2S,
            {
                "jsonrpc": "2.0",
                "id": "c",
                "method": "tools/call",
                "params": {"name": "other", "inputResponses": {"q2": {}}},
            },
            4,
        ),
        (C2S, call("d", inputResponses={"q1": {}}), 5),
        # a second round: the server asks again, the client retries again
        (S2C, result("d", resultType="input_required", inputRequests={"q3": QUESTION}), 6),
        (C2S, call("e", inputResponses={"q3": {}}), 7),
        (S2C, result("e", content=[]), 9),
        (S2C, result("c", content=[]), 10),
    )
    a, b = events[0], events[1]
    by_id = {e.jsonrpc_id: e for e in events if e.kind == "request"}
    assert (by_id["c"].call_id, by_id["c"].round) == (b.id, 2)
    assert (by_id["d"].call_id, by_id["d"].round) == (a.id, 2)
    assert (by_id["e"].call_id, by_id["e"].round) == (a.id, 3)
    last_a, last_b = events[-2], events[-1]
    assert (last_a.call_id, last_a.round, last_a.call_latency_ms) == (a.id, 3, 9.0)
    assert (last_b.call_id, last_b.round, last_b.call_latency_ms) == (b.id, 2, 9.0)


def test_an_unknown_retry_and_an_error_ending_a_call() -> None:
    eng = engine()
    (orphan,) = feed(eng, (C2S, call(9, requestState="never handed out"), 0))
    assert orphan.call_id is None and orphan.round is None  # nothing to link it to: left alone
    first, _asked, _retry, error = feed(
        eng,
        (C2S, call(1), 1),
        (S2C, result(1, resultType="input_required", requestState=STATE), 2),
        (C2S, call(2, requestState=STATE), 3),
        (
            S2C,
            {
                "jsonrpc": "2.0",
                "id": 2,
                "error": {"code": -32602, "message": "Invalid or expired requestState"},
            },
            4,
        ),
    )
    assert error.call_id == first.id and error.round == 2 and error.call_latency_ms == 3.0
    assert error.is_error and error.to_dict()["error_name"] == "invalid_params"


def test_mcp_2026_error_codes_are_named() -> None:
    eng = engine()
    names = []
    for code in (-32020, -32021, -32022, -32000):
        feed(eng, (C2S, call(code), 0))
        (e,) = feed(eng, (S2C, {"jsonrpc": "2.0", "id": code, "error": {"code": code, "message": "no"}}, 1))
        names.append(e.to_dict()["error_name"])
    assert names == [
        "header_mismatch",
        "missing_required_client_capability",
        "unsupported_protocol_version",
        None,
    ]


def test_a_task_s_requests_and_notifications_link_to_the_call_that_created_it() -> None:
    eng = engine()
    task = {"taskId": "t-1", "status": "working"}
    events = feed(
        eng,
        (C2S, call(1), 0),
        (S2C, result(1, resultType="task", task=task), 1),
        (
            S2C,
            {
                "jsonrpc": "2.0",
                "method": "notifications/tasks",
                "params": {"taskId": "t-1", "status": "working"},
            },
            2,
        ),
        (C2S, {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"taskId": "t-1"}}, 3),
        (S2C, result(2, taskId="t-1", status="completed"), 4),
        (C2S, {"jsonrpc": "2.0", "id": 3, "method": "tasks/cancel", "params": {"taskId": "t-1"}}, 5),
        (C2S, {"jsonrpc": "2.0", "id": 4, "method": "tasks/get", "params": {"taskId": "other"}}, 6),
    )
    creator = events[0]
    assert [e.call_id for e in events[2:6]] == [creator.id] * 4
    assert events[4].request_event_id == events[3].id  # still paired with its own request
    assert events[6].call_id is None  # an unknown task


def test_progress_and_cancellation_link_to_their_request() -> None:
    eng = engine()
    events = feed(
        eng,
        (C2S, call(7, _meta={"progressToken": "tok"}), 0),
        (
            S2C,
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": "tok", "progress": 1, "total": 3},
            },
            1,
        ),
        (
            C2S,
            {
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": 7, "reason": "user"},
            },
            2,
        ),
        # a token nobody set, and the same token in the wrong direction
        (
            S2C,
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": 9, "progress": 1},
            },
            3,
        ),
        (
            C2S,
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": "tok", "progress": 1},
            },
            4,
        ),
        (S2C, result(7, content=[]), 5),
        # the token is forgotten with the answer
        (
            S2C,
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": "tok", "progress": 2},
            },
            6,
        ),
    )
    request, progress, cancelled, unknown, wrong_way, _answer, late = events
    assert progress.call_id == request.id and cancelled.call_id == request.id
    assert cancelled.decoded() is not None and cancelled.decoded().cancels == request.id  # type: ignore[union-attr]
    assert unknown.call_id is None and wrong_way.call_id is None and late.call_id is None


def test_subscription_notifications_link_to_their_listen_request() -> None:
    eng = engine()
    meta = {"io.modelcontextprotocol/subscriptionId": "listen-1"}
    events = feed(
        eng,
        (
            C2S,
            {
                "jsonrpc": "2.0",
                "id": "listen-1",
                "method": "subscriptions/listen",
                "params": {"notifications": {"toolsListChanged": True}},
            },
            0,
        ),
        (
            S2C,
            {
                "jsonrpc": "2.0",
                "method": "notifications/subscriptions/acknowledged",
                "params": {"_meta": meta},
            },
            1,
        ),
        (S2C, {"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {"_meta": meta}}, 2),
        (
            S2C,
            {
                "jsonrpc": "2.0",
                "method": "notifications/tools/list_changed",
                "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": 5}},
            },
            3,
        ),
    )
    listen = events[0]
    assert [e.call_id for e in events[1:]] == [listen.id, listen.id, None]


def test_request_meta_and_result_server_info_teach_the_session_without_a_handshake() -> None:
    eng = engine()
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "cli", "version": "2.3"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        "io.modelcontextprotocol/logLevel": "debug",
    }
    batch = eng.feed(C2S, line(call(1, _meta=meta)), T)
    s = eng.session
    assert batch.session_changed
    assert (s.protocol_version, s.client, s.client_capabilities, s.log_level) == (
        "2026-07-28",
        {"name": "cli", "version": "2.3"},
        {"elicitation": {}},
        "debug",
    )
    server = {"name": "weather", "version": "1.0"}
    batch = eng.feed(
        S2C, line(result(1, content=[], _meta={"io.modelcontextprotocol/serverInfo": server})), T + 1
    )
    assert batch.session_changed and s.server == server
    # the same facts again change nothing; a new capability set and level do
    assert not eng.feed(C2S, line(call(2, _meta=meta)), T + 2).session_changed
    assert not eng.feed(
        S2C, line(result(2, _meta={"io.modelcontextprotocol/serverInfo": server})), T + 3
    ).session_changed
    meta = {
        **meta,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/logLevel": "error",
    }
    assert eng.feed(C2S, line(call(3, _meta=meta)), T + 4).session_changed
    assert s.client_capabilities == {} and s.log_level == "error"
    # malformed values are ignored
    bad = {"io.modelcontextprotocol/clientCapabilities": "all", "io.modelcontextprotocol/logLevel": 5}
    assert not eng.feed(C2S, line(call(4, _meta=bad)), T + 5).session_changed
    assert s.log_level == "error"
    assert s.to_dict()["client_capabilities"] == {} and s.to_dict()["log_level"] == "error"


def test_a_handshake_still_teaches_client_capabilities_and_set_level_the_log_level() -> None:
    eng = engine()
    params = {"protocolVersion": "2025-11-25", "capabilities": {"roots": {}}, "clientInfo": {"name": "c"}}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    eng.feed(C2S, line(init), T)
    eng.feed(
        C2S, line({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "info"}}), T
    )
    assert eng.session.client_capabilities == {"roots": {}} and eng.session.log_level == "info"


def test_progress_and_cancellation_of_a_retry_link_to_its_whole_call() -> None:
    eng = engine()
    first, _asked, retry, progress, cancelled = feed(
        eng,
        (C2S, call(1), 0),
        (S2C, result(1, resultType="input_required", requestState=STATE), 1),
        (C2S, call(2, requestState=STATE, _meta={"progressToken": "p"}), 2),
        (
            S2C,
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": "p", "progress": 1},
            },
            3,
        ),
        (C2S, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}}, 4),
    )
    assert retry.call_id == first.id and progress.call_id == first.id and cancelled.call_id == first.id
    assert cancelled.decoded().cancels == retry.id  # type: ignore[union-attr]  # the request it names
