"""Real MCP clients and servers through ``km monitor``: results unchanged, every message recorded.

The Python ``mcp`` SDK client talks to two real servers, once directly and once through km:
``servers/echo_server.py`` (the Python SDK) and ``mcp-server-everything`` (the TypeScript
reference server, from node_modules). Every result must be the same both ways, and the store
must hold exactly the messages the client sent and received, correlated.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from km_helpers import ECHO_SERVER, KM, NODE_BIN, PYTHON, ROOT, km_env, km_events, only_session

EVERYTHING = NODE_BIN / "mcp-server-everything"
C2S, S2C = "client_to_server", "server_to_client"
TIMEOUT = 90.0


def dump(model: Any) -> Any:
    """A result as plain JSON data (by alias, as on the wire)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass
class Run:
    """What one client session saw: its results, and every JSON-RPC message in each direction."""

    results: dict[str, Any] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[tuple[str, bool]] = field(default_factory=list)
    """(tool name, is_error) per tools/call, in order."""


@asynccontextmanager
async def tapped(
    read: ReadStream[SessionMessage | Exception],
    write: WriteStream[SessionMessage],
    run: Run,
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """Sit between the session and the transport and log every message both ways."""
    to_session, session_read = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    session_write, from_session = anyio.create_memory_object_stream[SessionMessage](0)

    async def down() -> None:
        async with to_session:
            async for item in read:
                if isinstance(item, SessionMessage):
                    run.received.append(
                        item.message.model_dump(mode="json", by_alias=True, exclude_unset=True)
                    )
                await to_session.send(item)

    async def up() -> None:
        async with from_session:
            async for item in from_session:
                # what stdio_client writes: model_dump_json(by_alias=True, exclude_unset=True)
                run.sent.append(item.message.model_dump(mode="json", by_alias=True, exclude_unset=True))
                await write.send(item)

    async with anyio.create_task_group() as tg:
        tg.start_soon(down)
        tg.start_soon(up)
        yield session_read, session_write
        tg.cancel_scope.cancel()


Scenario = Callable[[ClientSession, Run], Awaitable[None]]


async def run_client(params: StdioServerParameters, scenario: Scenario, errlog: Path) -> Run:
    run = Run()
    with anyio.fail_after(TIMEOUT), errlog.open("a") as err:
        async with (
            stdio_client(params, errlog=err) as (read, write),
            tapped(read, write, run) as (session_read, session_write),
            ClientSession(session_read, session_write, read_timeout_seconds=60) as session,
        ):
            await scenario(session, run)
    return run


async def attempt(request: Awaitable[Any]) -> Any:
    """The result of a request, or the JSON-RPC error it got (a protocol error, not a tool error)."""
    try:
        return dump(await request)
    except MCPError as exc:
        return {"error": {"code": exc.error.code, "message": exc.error.message}}


async def call(session: ClientSession, run: Run, name: str, arguments: dict[str, Any]) -> Any:
    result = await session.call_tool(name, arguments)
    assert isinstance(result, types.CallToolResult)
    run.tool_calls.append((name, result.is_error))
    return dump(result)


# -- scenarios ---------------------------------------------------------------------------------------


async def echo_scenario(session: ClientSession, run: Run, handshake: str) -> None:
    r = run.results
    if handshake == "initialize":
        r["initialize"] = dump(await session.initialize())
    else:
        r["discover"] = dump(await session.discover())
    r["tools"] = dump(await session.list_tools())
    r["echo"] = await call(session, run, "echo", {"text": 'héllo → wörld ✓ \n\t"quoted"'})
    r["add"] = await call(session, run, "add", {"a": 40, "b": 2})
    r["fail"] = await call(session, run, "fail", {"reason": "boom"})
    r["bad_args"] = await call(session, run, "add", {"a": "not a number"})
    r["unknown"] = await call(session, run, "no-such-tool", {})
    r["where"] = await call(session, run, "where", {})
    r["prompts"] = dump(await session.list_prompts())
    r["greeting"] = dump(await session.get_prompt("greeting", {"name": "Ada"}))
    r["resources"] = dump(await session.list_resources())
    r["templates"] = dump(await session.list_resource_templates())
    r["static"] = dump(await session.read_resource("test://static"))
    r["no_prompt"] = await attempt(session.get_prompt("no-such-prompt"))
    r["no_resource"] = await attempt(session.read_resource("test://no-such-resource"))
    r["ping"] = await attempt(session.send_ping())  # a JSON-RPC error on the 2026 protocol
    assert "error" in r["no_prompt"] and "error" in r["no_resource"]
    assert not r["echo"]["isError"] and r["echo"]["content"][0]["text"].startswith("héllo")
    assert r["add"]["content"][0]["text"] == "42"
    assert r["fail"]["isError"] and r["bad_args"]["isError"] and r["unknown"]["isError"]
    assert r["static"]["contents"][0]["text"] == "static content"


async def everything_scenario(session: ClientSession, run: Run) -> None:
    r = run.results
    r["initialize"] = dump(await session.initialize())
    r["tools"] = dump(await session.list_tools())
    r["echo"] = await call(session, run, "echo", {"message": "héllo ✓"})
    r["sum"] = await call(session, run, "get-sum", {"a": 1.5, "b": 2})
    r["image"] = await call(session, run, "get-tiny-image", {})
    r["structured"] = await call(session, run, "get-structured-content", {"location": "Chicago"})
    r["annotated"] = await call(session, run, "get-annotated-message", {"messageType": "error"})
    r["reference"] = await call(
        session, run, "get-resource-reference", {"resourceType": "Text", "resourceId": 2}
    )
    r["bad_args"] = await call(session, run, "echo", {})
    r["unknown"] = await call(session, run, "no-such-tool", {})
    r["prompts"] = dump(await session.list_prompts())
    r["simple"] = dump(await session.get_prompt("simple-prompt"))
    r["args"] = dump(await session.get_prompt("args-prompt", {"city": "Paris", "state": "IdF"}))
    r["resources"] = dump(await session.list_resources())
    r["templates"] = dump(await session.list_resource_templates())
    first = r["resources"]["resources"][0]["uri"]
    r["first"] = dump(await session.read_resource(first))
    r["dynamic"] = dump(await session.read_resource("demo://resource/dynamic/text/1"))
    r["complete"] = dump(
        await session.complete(
            types.PromptReference(type="ref/prompt", name="completable-prompt"),
            {"name": "department", "value": "E"},
        )
    )
    r["no_prompt"] = await attempt(session.get_prompt("no-such-prompt"))
    r["ping"] = dump(await session.send_ping())
    assert "error" in r["no_prompt"]
    assert r["echo"]["content"][0]["text"] == "Echo: héllo ✓"
    assert not r["sum"]["isError"]
    assert r["bad_args"]["isError"] and r["unknown"]["isError"]


# -- checks -------------------------------------------------------------------------------------------


def assert_store_matches(home: Path, run: Run, server_info: dict[str, Any], protocol_version: str) -> None:
    """The store holds exactly the messages the client saw, correlated and annotated."""
    session = only_session(home)
    events = km_events(home, "--session", session["id"])
    assert session["event_count"] == len(events)
    assert session["dropped_events"] == 0
    assert session["exit_code"] == 0
    assert session["ended_at"] is not None
    assert session["client"] == {"name": "mcp", "version": "0.1.0"}
    assert session["server"] == server_info
    assert session["protocol_version"] == protocol_version

    c2s = [e for e in events if e["direction"] == C2S]
    s2c = [e for e in events if e["direction"] == S2C]
    # every message, in order, exactly as it was on the wire
    assert [e["payload"] for e in c2s] == run.sent
    assert [e["payload"] for e in s2c] == run.received
    assert not [e for e in events if e["kind"] == "invalid"]

    by_id = {e["id"]: e for e in events}
    for direction, answers_from in ((C2S, s2c), (S2C, c2s)):
        requests = [e for e in events if e["direction"] == direction and e["kind"] == "request"]
        answers = [e for e in answers_from if e["kind"] in ("response", "error")]
        assert len(requests) == len(answers), f"unanswered requests {direction}"
        assert sorted(a["request_event_id"] for a in answers) == sorted(r["id"] for r in requests)
    for answer in (e for e in events if e["kind"] in ("response", "error")):
        request = by_id[answer["request_event_id"]]
        assert request["kind"] == "request" and request["direction"] != answer["direction"]
        assert request["jsonrpc_id"] == answer["jsonrpc_id"]
        assert answer["method"] == request["method"]
        assert answer["tool"] == request["tool"]
        assert answer["latency_ms"] is not None and answer["latency_ms"] >= 0
        assert answer["ts"] >= request["ts"]

    calls = [e for e in c2s if e["method"] == "tools/call"]
    assert [(e["tool"]) for e in calls] == [name for name, _ in run.tool_calls]
    results = [e for e in s2c if e["method"] == "tools/call"]
    assert [(e["tool"], e["is_error"]) for e in results] == run.tool_calls
    for e in c2s:
        if e["method"] == "prompts/get":
            assert e["prompt_name"] == e["payload"]["params"]["name"]
        if e["method"] == "resources/read":
            assert e["resource_uri"] == e["payload"]["params"]["uri"]
    errors = [e for e in s2c if e["kind"] == "error"]
    assert len(errors) == sum(1 for v in run.results.values() if isinstance(v, dict) and "error" in v)
    for e in errors:
        wire = e["payload"]["error"]
        assert e["is_error"] and e["error"] == {"code": wire["code"], "message": wire["message"]}
    assert session["error_count"] == sum(1 for e in events if e["is_error"])


CREATED_AT = re.compile(r"(created at ).*")


def normalize(value: Any) -> Any:
    """Blank out what legitimately differs between two runs: the everything server's dynamic
    resources say when they were made ("... created at 11:26:53 PM")."""
    if isinstance(value, str):
        return CREATED_AT.sub(r"\1<time>", value)
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


def compare(direct: Run, through_km: Run) -> None:
    assert through_km.results.keys() == direct.results.keys()
    for key, value in direct.results.items():
        assert normalize(through_km.results[key]) == normalize(value), f"{key} differs through km"
    assert through_km.tool_calls == direct.tool_calls
    assert len(through_km.sent) == len(direct.sent)
    assert len(through_km.received) == len(direct.received)


# -- the tests ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("patient_sdk_client")
@pytest.mark.parametrize("handshake", ["initialize", "discover"])
def test_python_sdk_server_through_km(km_home: Path, tmp_path: Path, handshake: str) -> None:
    env = km_env(km_home, KM_TEST_MARKER="sdk-marker")

    async def scenario(session: ClientSession, run: Run) -> None:
        await echo_scenario(session, run, handshake)

    direct_params = StdioServerParameters(command=PYTHON, args=[ECHO_SERVER], env=env, cwd=str(ROOT))
    km_params = StdioServerParameters(
        command=KM, args=["monitor", "--", PYTHON, ECHO_SERVER], env=env, cwd=str(ROOT)
    )
    direct = anyio.run(run_client, direct_params, scenario, tmp_path / "direct.err")
    through_km = anyio.run(run_client, km_params, scenario, tmp_path / "km.err")
    compare(direct, through_km)
    assert through_km.results["where"]["content"][0]["text"] == f"{os.path.realpath(ROOT)}|sdk-marker"
    assert "echo server starting" in (tmp_path / "km.err").read_text()  # server stderr is inherited

    if handshake == "initialize":
        info = through_km.results["initialize"]
        server_info, version = info["serverInfo"], info["protocolVersion"]
    else:
        info = through_km.results["discover"]
        server_info = info["_meta"]["io.modelcontextprotocol/serverInfo"]
        version = through_km.sent[-1]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
    assert_store_matches(km_home, through_km, server_info, version)
    session = only_session(km_home)
    assert session["command"] == [PYTHON, ECHO_SERVER]
    assert session["name"] == "echo_server.py"


@pytest.mark.usefixtures("patient_sdk_client")
def test_everything_server_through_km(km_home: Path, tmp_path: Path) -> None:
    assert EVERYTHING.exists(), "run npm install (node_modules/.bin/mcp-server-everything is missing)"
    env = km_env(km_home)
    direct_params = StdioServerParameters(command=str(EVERYTHING), args=["stdio"], env=env, cwd=str(ROOT))
    km_params = StdioServerParameters(
        command=KM,
        args=["monitor", "--name", "everything", "--", str(EVERYTHING), "stdio"],
        env=env,
        cwd=str(ROOT),
    )
    direct = anyio.run(run_client, direct_params, everything_scenario, tmp_path / "direct.err")
    through_km = anyio.run(run_client, km_params, everything_scenario, tmp_path / "km.err")
    compare(direct, through_km)
    info = through_km.results["initialize"]
    assert_store_matches(km_home, through_km, info["serverInfo"], info["protocolVersion"])
    session = only_session(km_home)
    assert session["name"] == "everything"
    assert session["capabilities"]["tools"] is not None
