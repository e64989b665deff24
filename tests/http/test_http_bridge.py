"""The bridge (``run_bridge``, for ``km monitor --url``): a stdio client talks to a remote server.

The SDK's stdio client spawns ``km monitor --url URL`` as its "server"; the results must equal
those of the SDK's HTTP client talking to the same remote server directly, and the store must
hold the session like any other (the user's agent records it, or km itself under a blocking
policy).
"""

from __future__ import annotations

import asyncio
import traceback
from pathlib import Path
from typing import Any

import pytest
from http_helpers import (
    SECRET_TOKEN,
    comparable,
    db_bytes,
    everything_scenario,
    prepare_store,
    requests_answered,
    start_upstream,
    upstream_scenario,
)
from mcp.client.stdio import StdioServerParameters

from km_helpers import KM, agents_under, km_env, km_events, km_sessions


@pytest.fixture
def store(km_home: Path) -> Path:
    prepare_store(km_home)  # bridges only open it: they are stopped 2 s after their stdin closes
    return km_home


def bridge(home: Path, url: str, *args: str) -> StdioServerParameters:
    """``km monitor --url URL ARGS``, as a client's config would run it."""
    return StdioServerParameters(command=KM, args=["monitor", "--url", url, *args], env=km_env(home))


def only(home: Path) -> dict[str, Any]:
    sessions = km_sessions(home)
    assert len(sessions) == 1, sessions
    return sessions[0]


def test_bridge_to_streamable_http_equals_direct(everything_http: str, store: Path) -> None:
    direct = asyncio.run(everything_scenario(everything_http))
    through = asyncio.run(everything_scenario(bridge(store, everything_http)))
    assert comparable(through) == comparable(direct)
    assert through["progress"][0][2] < through["progress"][-1][2] - 0.6  # streamed as it came
    session = only(store)
    assert session["transport"] == "streamable_http"
    assert session["command"] == [everything_http]
    assert session["exit_code"] == 0 and session["ended_at"]
    assert session["server"]["name"] == "mcp-servers/everything"
    events = km_events(store)
    requests_answered(events)
    assert len([e for e in events if e["method"] == "notifications/progress"]) == 3
    sampling = [e for e in events if e["method"] == "sampling/createMessage"]
    assert [e["direction"] for e in sampling] == ["server_to_client", "client_to_server"]


def test_bridge_to_legacy_sse_equals_direct(everything_sse: str, store: Path) -> None:
    direct = asyncio.run(everything_scenario(everything_sse, sse=True))
    through = asyncio.run(everything_scenario(bridge(store, everything_sse)))
    assert comparable(through) == comparable(direct)
    session = only(store)
    assert session["transport"] == "sse"
    requests_answered(km_events(store))


def test_bridge_to_a_stateless_2026_server(stateless_upstream: str, store: Path) -> None:
    """The 2026-07-28 protocol over HTTP needs Mcp-Method, Mcp-Name and Mcp-Param-* headers, which
    the bridge derives from each message (and from the tools' x-mcp-header annotations)."""
    direct = asyncio.run(upstream_scenario(stateless_upstream))
    through = asyncio.run(upstream_scenario(bridge(store, stateless_upstream)))
    assert through == direct
    assert through["protocol"] == "2026-07-28"
    assert through["regional"]["content"][0]["text"] == "eu-west:hi"
    session = only(store)
    assert session["protocol_version"] == "2026-07-28" and session["transport"] == "streamable_http"
    requests_answered(km_events(store))


def test_bridge_with_an_authorization_header(auth_upstream: str, store: Path) -> None:
    headers = {"Authorization": f"Bearer {SECRET_TOKEN}"}
    direct = asyncio.run(upstream_scenario(auth_upstream, mode="legacy", headers=headers))
    through = asyncio.run(
        upstream_scenario(
            bridge(store, auth_upstream, "--header", f"Authorization: Bearer {SECRET_TOKEN}"), mode="legacy"
        )
    )
    assert through == direct
    # without it: the client is told what happened instead of waiting forever
    with pytest.raises(BaseException) as refused:  # an MCPError, inside the SDK's exception groups
        asyncio.run(upstream_scenario(bridge(store, auth_upstream), mode="legacy"))
    text = "".join(traceback.format_exception(refused.value))
    assert "401" in text and "WWW-Authenticate" in text and "--header" in text
    stored = db_bytes(store)
    assert b"hello km" in stored and SECRET_TOKEN.encode() not in stored


def test_bridge_falls_back_to_legacy_sse(store: Path) -> None:
    """A URL that does not say /sse: the first POST is refused with a 4xx, so the bridge tries the
    legacy transport on the same URL, as the MCP specification's backwards-compatibility rule says."""
    proc, port = start_upstream("--transport", "sse", "--sse-path", "/events")
    try:
        url = f"http://127.0.0.1:{port}/events"
        direct = asyncio.run(upstream_scenario(url, mode="legacy", sse=True))
        through = asyncio.run(upstream_scenario(bridge(store, url), mode="legacy"))
        assert through == direct
        session = only(store)
        assert session["transport"] == "sse"  # told to the agent after the session began
        assert agents_under(store), "the user's agent records km monitor --url's sessions"
        requests_answered(km_events(store))
    finally:
        proc.stop()


def test_bridge_blocks_a_tool_call(everything_http: str, store: Path, tmp_path: Path) -> None:
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "block"\ndeny_tools = ["echo"]\n')

    async def scenario() -> str:
        async with Client(bridge(store, everything_http, "--policy", str(policy)), mode="legacy") as client:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("echo", {"message": "no"})
            assert "is 3" in (await client.call_tool("get-sum", {"a": 1, "b": 2})).content[0].text  # type: ignore[union-attr]
            return str(refused.value)

    assert "Blocked by km policy" in asyncio.run(scenario())
    events = km_events(store)
    requests_answered(events)
    (blocked,) = [e for e in events if e["kind"] == "error"]
    assert blocked["tool"] == "echo" and blocked["error"]["code"] == -32001
    assert "policy.blocked" in {f["rule"] for f in blocked["risk"]["findings"]}
    assert agents_under(store), "a blocking policy decides in km's process; the agent records"
