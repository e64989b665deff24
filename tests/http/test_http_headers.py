"""The 2026-07-28 ``Mcp-Method`` / ``Mcp-Name`` / ``Mcp-Param-*`` request headers: checked against
the JSON-RPC body (``protocol.header_mismatch``), through a real ``km proxy`` in front of the
SDK's stateless Streamable HTTP server, with the bytes forwarded unchanged."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from http_helpers import StartProxy, upstream_scenario

from kilometers.analysis.mcp_headers import HEADER_MISMATCH_RULE, decode_value, header_findings, mcp_headers

from km_helpers import km_events

RULE = HEADER_MISMATCH_RULE
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "raw-httpx", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2026-07-28",
}


def b64(text: str) -> str:
    return f"=?base64?{base64.b64encode(text.encode()).decode()}?="


def call(tool: str, jsonrpc_id: int, **arguments: Any) -> dict[str, Any]:
    params = {"name": tool, "arguments": arguments, "_meta": META}
    return {"jsonrpc": "2.0", "id": jsonrpc_id, "method": "tools/call", "params": params}


def answer(response: httpx.Response) -> Any:
    """The JSON-RPC answer of a POST, whether it came as JSON or as one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return orjson.loads(data[-1])
    return response.json()


def rules(event: dict[str, Any]) -> list[str]:
    return [f["rule"] for f in event["risk"]["findings"]]


# -- the check, on its own ------------------------------------------------------------------------


def test_decode_value_base64_and_plain() -> None:
    assert decode_value(b"tools/call") == "tools/call"
    assert decode_value(b64("caf\u00e9 \u2615").encode()) == "caf\u00e9 \u2615"
    assert decode_value(b" eu-west ") == "eu-west"
    # a value that claims base64 but is not: kept as written, so it never matches by accident
    assert decode_value(b"=?base64?not base64!?=") == "=?base64?not base64!?="
    assert decode_value(b"=?base64?" + base64.b64encode(b"\xff\xfe") + b"?=").startswith("=?base64?")


def test_mcp_headers_keeps_only_the_mirrored_headers() -> None:
    raw = [
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b64("\u00e9cho").encode()),
        (b"mcp-param-region", b"eu-west"),
        (b"authorization", b"Bearer secret"),
        (b"mcp-session-id", b"abc"),
    ]
    assert mcp_headers(raw) == {
        "mcp-method": "tools/call",
        "mcp-name": "\u00e9cho",
        "mcp-param-region": "eu-west",
    }
    assert mcp_headers([(b"cookie", b"a=b")]) == {}
    # sent twice: first-copy and last-copy readers disagree, so it matches no body
    twice = mcp_headers([(b"mcp-method", b"tools/list"), (b"mcp-method", b"tools/call")])
    assert twice == {"mcp-method": "tools/list, tools/call"}
    assert [f["path"] for f in header_findings(twice, call("echo", 1))] == ["/method"]


@pytest.mark.parametrize(
    ("headers", "message", "paths"),
    [
        ({"mcp-method": "tools/call", "mcp-name": "echo"}, call("echo", 1, text="hi"), []),
        ({"mcp-method": "tools/list"}, call("echo", 1, text="hi"), ["/method"]),
        ({"mcp-method": "tools/call", "mcp-name": "safe"}, call("rm_rf", 1), ["/params/name"]),
        (
            {"mcp-param-region": "eu-west"},
            call("regional", 1, region="us-east"),
            ["/params/arguments/region"],
        ),
        ({"mcp-param-region": "eu-west"}, call("regional", 1, Region="eu-west"), []),
        ({"mcp-param-count": "3"}, call("t", 1, count=3), []),
        ({"mcp-param-flag": "true"}, call("t", 1, flag=True), []),
        ({"mcp-param-flag": "false"}, call("t", 1, flag=True), ["/params/arguments/flag"]),
        ({"mcp-param-other": "x"}, call("t", 1, region="a"), []),  # no such argument at the top level
        (
            {"mcp-method": "resources/read", "mcp-name": "file:///etc/hosts"},
            {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///etc/shadow"}},
            ["/params/uri"],
        ),
        (
            {"mcp-method": "prompts/get", "mcp-name": "greeting"},
            {"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "greeting"}},
            [],
        ),
        (
            {"mcp-method": "tools/list", "mcp-name": "x"},
            {"jsonrpc": "2.0", "id": 4, "method": "tools/list"},
            [],
        ),
        ({"mcp-method": "tools/call"}, {"jsonrpc": "2.0", "id": 5, "result": {}}, []),  # not a request
        ({"mcp-method": "tools/call"}, "not an object", []),
        ({}, call("echo", 1), []),
    ],
)
def test_header_findings(headers: dict[str, str], message: Any, paths: list[str]) -> None:
    found = header_findings(headers, message)
    assert [f["path"] for f in found] == paths
    assert all(f["rule"] == RULE and f["severity"] == "high" for f in found)


# -- through km proxy ---------------------------------------------------------------------------------


def test_header_mismatch_is_a_finding_and_the_request_goes_through_unchanged(
    stateless_upstream: str, km_proxy: StartProxy, km_home: Path
) -> None:
    km = km_proxy(stateless_upstream)
    cases = [
        # (request, its Mcp-* headers, a mismatch expected)
        (call("echo", 1, text="hi"), {"Mcp-Method": "tools/call", "Mcp-Name": "echo"}, False),
        (call("echo", 2, text="hi"), {"Mcp-Method": "tools/list", "Mcp-Name": "echo"}, True),
        (call("add", 3, a=1, b=2), {"Mcp-Method": "tools/call", "Mcp-Name": "echo"}, True),
        (
            call("regional", 4, region="eu-west", text="hi"),
            {"Mcp-Method": "tools/call", "Mcp-Name": "regional", "Mcp-Param-Region": b64("eu-west")},
            False,
        ),
        (
            call("regional", 5, region="eu-west", text="hi"),
            {"Mcp-Method": "tools/call", "Mcp-Name": "regional", "Mcp-Param-Region": b64("us-east")},
            True,
        ),
    ]
    with httpx.Client(timeout=30) as client:
        for body, mcp, _ in cases:
            content = orjson.dumps(body)
            direct = client.post(stateless_upstream, content=content, headers={**HEADERS, **mcp})
            through = client.post(km.url(stateless_upstream), content=content, headers={**HEADERS, **mcp})
            # km forwards the request as it came: the server answers it exactly as it does directly
            # (the SDK server itself refuses a mismatch with -32020; a gateway may not)
            assert (through.status_code, answer(through)) == (direct.status_code, answer(direct))
    km.stop()
    requests = [e for e in km_events(km_home) if e["kind"] == "request" and e["method"] == "tools/call"]
    assert [e["jsonrpc_id"] for e in requests] == [1, 2, 3, 4, 5]
    for event, (_, _, mismatch) in zip(requests, cases, strict=True):
        assert (RULE in rules(event)) is mismatch, event
        if mismatch:
            assert event["risk"]["level"] == "high"
    by_id = {e["jsonrpc_id"]: e for e in requests}
    # the headers are recorded on their request: lower-case names, base64 values decoded
    assert by_id[1]["mcp_headers"] == {"mcp-method": "tools/call", "mcp-name": "echo"}
    assert by_id[4]["mcp_headers"] == {
        "mcp-method": "tools/call",
        "mcp-name": "regional",
        "mcp-param-region": "eu-west",
    }
    assert [f["path"] for f in by_id[2]["risk"]["findings"] if f["rule"] == RULE] == ["/method"]
    assert [f["path"] for f in by_id[3]["risk"]["findings"] if f["rule"] == RULE] == ["/params/name"]
    [region] = [f for f in by_id[5]["risk"]["findings"] if f["rule"] == RULE]
    assert region["path"] == "/params/arguments/region" and "'us-east'" in region["message"]
    # the finding is listed by km events --risk
    flagged = km_events(km_home, "--risk", "high")
    assert {e["jsonrpc_id"] for e in flagged if RULE in rules(e)} == {2, 3, 5}


def test_sdk_client_headers_agree_with_their_bodies(
    stateless_upstream: str, km_proxy: StartProxy, km_home: Path
) -> None:
    """The official SDK client (2026-07-28, with Mcp-Method/Mcp-Name/Mcp-Param-*) raises no finding."""
    km = km_proxy(stateless_upstream)
    through = asyncio.run(upstream_scenario(km.url(stateless_upstream)))
    assert through["protocol"] == "2026-07-28"
    km.stop()
    events = km_events(km_home)
    assert any(e["tool"] == "regional" for e in events)
    assert not [e for e in events if RULE in rules(e)]


def test_a_policy_disables_or_rerates_the_protocol_findings() -> None:
    """``disabled_rules`` and ``severity_overrides`` apply to the findings capture adds."""
    from kilometers.engine import Engine
    from kilometers.model import CLIENT_TO_SERVER, Session
    from kilometers.security import Policy, SecurityStage

    body = orjson.dumps(call("echo", 1, text="hi"))
    smuggled = {"mcp-method": "tools/list"}
    levels = []
    for analysis in ({}, {"severity_overrides": {RULE: "low"}}, {"disabled_rules": ["protocol"]}):
        stage = SecurityStage(Policy.from_dict({"analysis": analysis}))
        engine = Engine(Session(command=["srv"], cwd="/"), stage=stage)
        (event,) = engine.process(engine.capture_message(CLIENT_TO_SERVER, body, 1, smuggled)).events
        levels.append((event.risk or {}).get("level"))
    assert levels == ["high", "low", None]


def test_a_mismatch_never_stores_a_secret_the_payload_redaction_removes() -> None:
    """The finding quotes both values; a token in them is redacted like the payload's."""
    token = "AKIA" + "2E0A8F3B244C9986"
    other = "AKIA" + "7Q3ZK2M4T8HX5PLE"
    found = header_findings({"mcp-param-token": token}, call("login", 1, token=other))
    assert [f["path"] for f in found] == ["/params/arguments/token"]
    assert token not in found[0]["message"] and other not in found[0]["message"]
    assert "Mcp-Param-Token" in found[0]["message"]


def test_recorded_headers_are_redacted_like_the_payload() -> None:
    """A header mirroring a key argument is stored only as the payload is: redacted."""
    from kilometers.engine import Engine
    from kilometers.model import CLIENT_TO_SERVER, Session
    from kilometers.security import Policy, SecurityStage

    key = "AKIA" + "2E0A8F3B244C9986"
    engine = Engine(Session(["km"], "/"), stage=SecurityStage(Policy.from_dict({})))
    body = orjson.dumps(call("deploy", 1, key=key))
    headers = {"mcp-method": "tools/call", "mcp-name": "deploy", "mcp-param-key": key}
    batch = engine.process(engine.capture_message(CLIENT_TO_SERVER, body, 1, headers))
    [event] = batch.events
    assert event.mcp_headers is not None and event.mcp_headers["mcp-name"] == "deploy"
    assert key not in orjson.dumps(event.mcp_headers).decode() and key not in (event.payload or "")
    assert RULE not in rules(event.to_dict())  # the header agrees with the (unredacted) body


def test_param_headers_follow_the_tools_x_mcp_header_marks() -> None:
    """With the tool's definition seen in tools/list, an Mcp-Param header is compared with the
    argument its schema marks (nested too), and a marked argument missing from the body is a
    mismatch."""
    from kilometers.engine import Engine
    from kilometers.model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Session

    engine = Engine(Session(["km"], "/"))
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    schema = {
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": {"zone": {"type": "string", "x-mcp-header": "Region"}},
            },
            "region": {"type": "string"},
        },
    }
    tools = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "deploy", "inputSchema": schema}]}}
    engine.capture_message(CLIENT_TO_SERVER, orjson.dumps(listing), 1)
    engine.capture_message(SERVER_TO_CLIENT, orjson.dumps(tools), 2)

    def paths(arguments: dict[str, Any], region: str) -> list[str]:
        body = orjson.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                             "params": {"name": "deploy", "arguments": arguments}})  # fmt: skip
        headers = {"mcp-method": "tools/call", "mcp-name": "deploy", "mcp-param-region": region}
        [event] = engine.capture_message(CLIENT_TO_SERVER, body, 3, headers)
        return [f["path"] for f in rules_of(event) if f["rule"] == RULE]

    # the mark is on config.zone, not on the top-level "region" argument
    assert paths({"config": {"zone": "eu-west"}, "region": "us-east"}, "eu-west") == []
    assert paths({"config": {"zone": "us-east"}, "region": "eu-west"}, "eu-west") == [
        "/params/arguments/config/zone"
    ]
    assert paths({"region": "eu-west"}, "eu-west") == ["/params/arguments/config/zone"]  # absent


def rules_of(event: Any) -> list[dict[str, Any]]:
    return list(event.risk["findings"]) if event.risk else []
