"""Linked calls with real peers through ``km monitor``: the official Python SDK on 2026-07-28
(a multi-round tool, a subscription) and the TypeScript reference server on 2025-11-25
(progress, cancellation). The client's results are the same with and without km, and the store
holds one logical call per call, with its rounds, its links and the facts ``_meta`` taught."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import ClientSession
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from km_helpers import KM, NODE_BIN, PYTHON, ROOT, SERVERS, km_env, km_events, km_json, only_session

MRTR_SERVER = str(SERVERS / "mrtr_server.py")
EVERYTHING = NODE_BIN / "mcp-server-everything"
HASHED = re.compile(r"sha256:[0-9a-f]{64}")
TIMEOUT = 90.0

pytestmark = pytest.mark.usefixtures("patient_sdk_client")


async def _elicit(ctx: Any, params: Any) -> types.ElicitResult:
    key = next(iter(params.requested_schema["properties"]))
    return types.ElicitResult(action="accept", content={key: "Paris" if key == "city" else "C"})


async def mrtr_client(params: StdioServerParameters) -> dict[str, Any]:
    """The SDK client on 2026-07-28: a two-question tool call, then a subscription's event."""
    seen: dict[str, Any] = {}
    with anyio.fail_after(TIMEOUT):
        async with Client(params, elicitation_callback=_elicit, log_level="info") as client:
            seen["version"] = client.protocol_version
            result = await client.call_tool("weather", {})
            seen["weather"] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("touch", {})
                async for event in subscription:
                    seen["event"] = type(event).__name__
                    break
    return seen


def test_a_multi_round_call_through_km_is_one_linked_call(km_home: Path) -> None:
    env = km_env(km_home)
    direct = StdioServerParameters(command=PYTHON, args=[MRTR_SERVER], env=env, cwd=str(ROOT))
    through = StdioServerParameters(
        command=KM, args=["monitor", "--", PYTHON, MRTR_SERVER], env=env, cwd=str(ROOT)
    )
    expected = anyio.run(mrtr_client, direct)
    seen = anyio.run(mrtr_client, through)
    # the server only answers when each requestState comes back exactly as it handed it out
    assert seen == expected
    assert seen["weather"]["content"][0]["text"] == "sunny in Paris, 21 degrees C"
    assert seen["event"] == "ToolsListChanged" and seen["version"] == "2026-07-28"

    session = only_session(km_home)
    # no handshake: the facts come from each request's _meta and each result's serverInfo
    assert session["protocol_version"] == "2026-07-28"
    assert session["client"]["name"] == "mcp" and session["server"]["name"] == "km-test-mrtr"
    assert session["client_capabilities"]["elicitation"] is not None
    assert session["log_level"] == "info"

    events = km_events(km_home)
    weather = [e for e in events if e["tool"] == "weather"]
    first = weather[0]
    assert [(e["kind"], e["round"]) for e in weather] == [
        ("request", None),
        ("response", 1),
        ("request", 2),
        ("response", 2),
        ("request", 3),
        ("response", 3),
    ]
    assert all(e["call_id"] == first["id"] for e in weather[1:])
    assert len({e["jsonrpc_id"] for e in weather}) == 3  # each retry has a new id
    final = weather[-1]
    assert final["call_latency_ms"] >= sum(e["latency_ms"] for e in weather if e["kind"] == "response")
    assert final["call_latency_ms"] is not None and weather[1]["call_latency_ms"] is None
    # the opaque state (the SDK seals it) is stored as its hash, the same in the result that
    # handed it out and in the retry that sent it back; the server got it back unchanged (it
    # rejects a state that does not verify), so the rounds above could go on
    for asked, retry in ((weather[1], weather[2]), (weather[3], weather[4])):
        state = asked["payload"]["result"]["requestState"]
        assert HASHED.fullmatch(state) and retry["payload"]["params"]["requestState"] == state
    assert weather[1]["payload"]["result"]["requestState"] != weather[3]["payload"]["result"]["requestState"]
    # the subscription's notifications point at their subscriptions/listen request
    (listen,) = [e for e in events if e["method"] == "subscriptions/listen" and e["kind"] == "request"]
    changed = [e for e in events if e["method"] == "notifications/tools/list_changed"]
    assert changed and all(e["call_id"] == listen["id"] for e in changed)

    # one row per logical call in km stats, with the call's total latency
    (row,) = [r for r in km_json(km_home, "stats") if r["tool"] == "weather"]
    assert row["count"] == 1 and row["errors"] == 0 and row["p50_ms"] == final["call_latency_ms"]
    # km show of any round shows the whole call and the questions it asked
    (shown,) = km_json(km_home, "show", weather[3]["id"])
    call = shown["call"]
    assert call["id"] == first["id"] and call["state"] == "answered" and call["rounds"] == 3
    assert call["latency_ms"] == final["call_latency_ms"]
    assert call["questions"] == [
        "elicitation/create: Which city?",
        "elicitation/create: Celsius or Fahrenheit?",
    ]
    assert [e["id"] for e in call["events"]] == [e["id"] for e in weather]
    text = subprocess.run(
        [KM, "show", first["id"]], env=km_env(km_home), capture_output=True, text=True, check=True
    ).stdout
    assert "answered, 3 rounds" in text and "asks elicitation/create: Which city?" in text


def test_keep_request_state_stores_it_as_sent(km_home: Path) -> None:
    env = km_env(km_home, KM_KEEP_REQUEST_STATE="1")
    through = StdioServerParameters(
        command=KM, args=["monitor", "--", PYTHON, MRTR_SERVER], env=env, cwd=str(ROOT)
    )
    anyio.run(mrtr_client, through)
    weather = [e for e in km_events(km_home) if e["tool"] == "weather"]
    state = weather[1]["payload"]["result"]["requestState"]
    assert not HASHED.fullmatch(state) and len(state) > 20  # the sealed token as the server sent it
    assert weather[2]["payload"]["params"]["requestState"] == state
    assert weather[2]["call_id"] == weather[0]["id"]


async def everything_client(params: StdioServerParameters, errlog: Path) -> dict[str, Any]:
    """2025-11-25: a long operation reports progress, then the client gives up on it (the SDK
    sends notifications/cancelled), then a short one completes with its progress."""
    seen: dict[str, Any] = {"progress": []}
    two = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen["progress"].append((progress, total))
        if len(seen["progress"]) >= 2:
            two.set()

    with anyio.fail_after(TIMEOUT), errlog.open("a") as err:
        async with stdio_client(params, errlog=err) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            async with anyio.create_task_group() as tg:

                async def long_call() -> None:
                    args = {"duration": 60, "steps": 240}
                    await session.call_tool(
                        "trigger-long-running-operation", args, progress_callback=on_progress
                    )

                tg.start_soon(long_call)
                await two.wait()
                tg.cancel_scope.cancel()  # abandoning the call: the SDK tells the server
            short = await session.call_tool(
                "trigger-long-running-operation", {"duration": 0.2, "steps": 2}, progress_callback=on_progress
            )
            seen["short"] = short.model_dump(mode="json", by_alias=True, exclude_none=True)
    return seen


def test_progress_and_cancellation_with_the_everything_server(km_home: Path, tmp_path: Path) -> None:
    assert EVERYTHING.exists(), "run npm install (node_modules/.bin/mcp-server-everything is missing)"
    env = km_env(km_home)
    through = StdioServerParameters(
        command=KM, args=["monitor", "--", str(EVERYTHING), "stdio"], env=env, cwd=str(ROOT)
    )
    seen = anyio.run(everything_client, through, tmp_path / "km.err")
    assert "completed" in seen["short"]["content"][0]["text"]

    events = km_events(km_home)
    long_request, short_request = [
        e for e in events if e["tool"] == "trigger-long-running-operation" and e["kind"] == "request"
    ]
    (cancel,) = [e for e in events if e["method"] == "notifications/cancelled"]
    assert cancel["direction"] == "client_to_server" and cancel["call_id"] == long_request["id"]
    progress = [e for e in events if e["method"] == "notifications/progress"]
    long_progress = [e for e in progress if e["call_id"] == long_request["id"]]
    short_progress = [e for e in progress if e["call_id"] == short_request["id"]]
    assert len(long_progress) >= 2 and len(short_progress) == 2
    assert len(long_progress) + len(short_progress) == len(progress)  # every one linked
    assert [e["payload"]["params"]["progress"] for e in short_progress] == [1, 2]
    (shown,) = km_json(km_home, "show", short_request["id"])
    assert shown["call"]["state"] == "answered" and shown["call"]["progress"] == ["1/2", "2/2"]

    # --errors lists the cancelled request and its cancellation; stats count it
    listed = {e["id"] for e in km_events(km_home, "--errors")}
    assert {long_request["id"], cancel["id"]} <= listed and short_request["id"] not in listed
    (row,) = [r for r in km_json(km_home, "stats") if r["tool"] == "trigger-long-running-operation"]
    assert row["count"] == 2 and row["cancelled"] == 1
    # km show of either shows the other, with the progress values
    (shown,) = km_json(km_home, "show", cancel["id"])
    assert shown["call"]["id"] == long_request["id"] and shown["call"]["state"] == "cancelled"
    (shown,) = km_json(km_home, "show", long_request["id"])
    assert cancel["id"] in [e["id"] for e in shown["call"]["events"]]
    assert shown["call"]["progress"][:2] == ["1/240", "2/240"]
    lines = subprocess.run(
        [KM, "events", "--errors"], env=km_env(km_home), capture_output=True, text=True, check=True
    ).stdout
    (request_line,) = [line for line in lines.splitlines() if line.endswith(long_request["id"])]
    assert "cancelled" in request_line and f"cancels {long_request['id']}" in lines
    text = subprocess.run(
        [KM, "show", short_request["id"]], env=km_env(km_home), capture_output=True, text=True, check=True
    ).stdout
    assert "progress 1/2" in text and "progress 2/2" in text and "answered" in text


REORDER_SERVER = str(SERVERS / "reorder_server.py")


async def list_tools_thrice(params: StdioServerParameters) -> list[list[str]]:
    orders = []
    with anyio.fail_after(TIMEOUT):
        async with Client(params) as client:
            for _ in range(3):
                orders.append([t.name for t in (await client.list_tools()).tools])
    return orders


@pytest.mark.parametrize("shuffle", [True, False])
def test_list_cache_hints_and_a_reordered_tool_list(km_home: Path, shuffle: bool) -> None:
    """The SDK server's ``ttlMs``/``cacheScope`` on tools/list are shown; identical tools/list calls
    answered in another order are flagged (``protocol.tools_reordered``), a stable order is not."""
    env = km_env(km_home)
    args = ["monitor", "--", PYTHON, REORDER_SERVER, *(["--shuffle"] if shuffle else [])]
    orders = anyio.run(
        list_tools_thrice, StdioServerParameters(command=KM, args=args, env=env, cwd=str(ROOT))
    )
    assert all(sorted(o) == ["alpha", "beta", "gamma"] for o in orders)
    assert (len({tuple(o) for o in orders}) > 1) is shuffle
    answers = [e for e in km_events(km_home) if e["method"] == "tools/list" and e["kind"] == "response"]
    assert len(answers) >= 3
    assert all(e["cache"] == {"ttl_ms": 0, "scope": "public"} for e in answers)
    flagged = [
        e for e in answers if any(f["rule"] == "protocol.tools_reordered" for f in e["risk"]["findings"])
    ]
    if shuffle:  # every answer after the first differs from the one before it
        assert flagged == answers[1:]
        assert all(e["risk"]["level"] == "low" for e in flagged)
    else:
        assert flagged == []
    # the text line of km events and km show --json carry the hints too
    lines = subprocess.run([KM, "events", "--method", "tools/list"], env=env, capture_output=True, text=True)
    assert "cache ttl 0ms public" in lines.stdout
    shown = subprocess.run([KM, "show", answers[0]["id"], "--json"], env=env, capture_output=True, text=True)
    assert json.loads(shown.stdout)["cache"] == {"ttl_ms": 0, "scope": "public"}
