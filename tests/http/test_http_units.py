"""Unit tests for the pure parts of the HTTP transport and the bridge (no sockets, no processes)."""

from __future__ import annotations

import asyncio
from typing import Any

import click
import orjson
import pytest

from kilometers.cli.proxy import parse_listen
from kilometers.proxy.bridge import (
    _header_paths,
    _one_line,
    encode_header_value,
    guess_transport,
    parse_header,
)
from kilometers.proxy.encoding import narrow_accept_encoding
from kilometers.proxy.http import LegacyStream, display_url, guess_name
from kilometers.proxy.sse import SSEParser, encode_event


def test_display_url_drops_credentials() -> None:
    assert display_url("https://user:pw@mcp.example.com/mcp") == "https://mcp.example.com/mcp"
    assert (
        display_url("https://mcp.example.com/mcp?api_key=sk-123&profile=dev&access_token=x")
        == "https://mcp.example.com/mcp?api_key=REDACTED&profile=dev&access_token=REDACTED"
    )
    assert display_url("http://127.0.0.1:3001/sse") == "http://127.0.0.1:3001/sse"


def test_guess_name() -> None:
    assert guess_name("https://mcp.example.com/mcp") == "mcp.example.com"
    assert guess_name("http://127.0.0.1:3001/sse") == "127.0.0.1:3001"
    assert guess_name("https://api.example.com/v1/github/mcp") == "api.example.com/github"
    assert guess_name("https://u:p@h.example/mcp") == "h.example"


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8800") == ("127.0.0.1", 8800)
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    assert parse_listen("9000") == ("127.0.0.1", 9000)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("host:port", "1.2.3.4:70000", "[::1]"):
        with pytest.raises(click.BadParameter):
            parse_listen(bad)


def test_gate_answers_with_the_policy_gate() -> None:
    from kilometers.security import BLOCKED_CODE, Gate, Policy, SecurityStage

    policy = Policy.from_dict({"mode": "block", "deny_tools": ["delete_*"]})
    gate = Gate(policy, SecurityStage(policy).tools_changed, "server")
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "delete_repo"}}
    other = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "read"}}
    assert gate.check(orjson.dumps(other)) is None
    assert gate.check(b"not json") is None

    answer = (
        gate.check(orjson.dumps(call, option=orjson.OPT_INDENT_2)) or b""
    )  # pretty JSON too (an HTTP body)
    error = orjson.loads(answer)
    assert error["id"] == 7 and error["error"]["code"] == BLOCKED_CODE
    assert "delete_repo" in error["error"]["message"]

    # a batch with one refused request: nothing is sent, every request is answered
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    batch = gate.check(orjson.dumps([other, call, note])) or b""
    answers = orjson.loads(batch)
    assert sorted(a["id"] for a in answers) == [7, 8]
    assert all(a["error"]["code"] == BLOCKED_CODE for a in answers)


def test_accept_encoding_is_narrowed_to_what_capture_can_decode() -> None:
    assert narrow_accept_encoding(b"gzip, deflate, br, zstd") == b"gzip, deflate"
    assert narrow_accept_encoding(b"br") == b"identity"
    assert narrow_accept_encoding(b"GZIP;q=0.5, br;q=1") == b"GZIP;q=0.5"


def test_bridge_helpers() -> None:
    assert guess_transport("http://h/sse") == "sse"
    assert guess_transport("http://h/sse/") == "sse"
    assert guess_transport("http://h/mcp") == "streamable_http"
    assert parse_header("Authorization: Bearer a:b") == ("Authorization", "Bearer a:b")
    with pytest.raises(ValueError):
        parse_header("no colon")
    assert encode_header_value("get_weather") == "get_weather"
    assert encode_header_value("café") == "=?base64?Y2Fmw6k=?="
    assert encode_header_value(" padded") == "=?base64?IHBhZGRlZA==?="
    assert _one_line(b'{\n  "a": 1\r\n}\n') == b'{   "a": 1  }'
    schema = {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {"tier": {"type": "integer", "x-mcp-header": "Tier"}}},
            "bad": {"type": "string", "x-mcp-header": "not a token"},
        },
    }
    assert _header_paths(schema) == [(("region",), "Region"), (("opts", "tier"), "Tier")]


class _Collect:
    def __init__(self) -> None:
        self.body = b""

    async def __call__(self, message: dict[str, Any]) -> None:
        self.body += message.get("body", b"")


def test_legacy_stream_inserts_events_only_between_upstream_events() -> None:
    async def scenario() -> bytes:
        out = _Collect()
        parser = SSEParser()
        stream = LegacyStream(out, parser)  # type: ignore[arg-type]
        # upstream is in the middle of an event when km wants to answer a blocked request
        first = b'event: message\ndata: {"jsonrpc":"2.0","id":1,'
        await stream.forward(first, parser.feed(first))
        await stream.inject(encode_event(b'{"jsonrpc":"2.0","id":9,"error":{}}', event="message"))
        second = b'"result":{}}\n\nevent: message\ndata: {"jsonrpc":"2.0","method":"x"'
        await stream.forward(second, parser.feed(second))
        third = b"}\n\n"
        await stream.forward(third, parser.feed(third))
        return out.body

    body = asyncio.run(scenario())
    events = SSEParser().feed(body)
    assert [orjson.loads(e.data).get("id") for e in events] == [1, 9, None]
