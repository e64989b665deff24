"""A blocking policy decides in ``km monitor``'s process while the user's agent records (issue 11):
the relay loads the gate (the policy, the analysis) but never the store; the agent answers the
gate's question about tools changed since pinned; when the agent dies mid-session, km's own host
takes over the record and the answers, and the gate keeps refusing what it refused. Real
processes: km monitor, its agent, an MCP SDK server and the SDK client; the agent is killed with
SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from km_helpers import KM, km_env, km_events

ROOT = Path(__file__).resolve().parents[2]
SERVER = [sys.executable, str(ROOT / "tests" / "servers" / "secure_server.py")]
ARGS = {"read_note": {"title": "x"}, "delete_everything": {"confirm": True}, "get_config": {}}
Steps = Callable[[Callable[[str], Awaitable[str]]], Awaitable[None]]


def _policy(tmp_path: Path) -> Path:
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "block"\ndeny_tools = ["delete_*"]\nblock_changed_tools = true\n')
    return policy


async def _session(env: dict[str, str], km_args: list[str], steps: Steps) -> None:
    params = StdioServerParameters(
        command=KM, args=["monitor", "--name", "secure", *km_args, "--", *SERVER], env=env
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()

        async def call(name: str) -> str:
            """The tool's text, or ``refused: <the error>``."""
            try:
                result = await session.call_tool(name, ARGS[name])
            except MCPError as exc:
                return f"refused: {exc}"
            return str(result.content[0].text)  # type: ignore[union-attr]

        await steps(call)


def _pin(home: Path) -> None:
    """A first session without a policy: the server's tools are pinned as they are."""

    async def nothing(call: Callable[[str], Awaitable[str]]) -> None:
        return None

    asyncio.run(_session(km_env(home, KM_TEST_SECRET="x"), [], nothing))


def _relay() -> psutil.Process:
    """The ``km monitor`` this test's client started."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):  # (a process that ended meanwhile)
            argv = proc.cmdline()
            if "monitor" in argv and any(a.endswith("/km") for a in argv[:2]):
                found.append(proc)
    (relay,) = found
    return relay


def _loads_the_store(proc: psutil.Process, home: Path) -> bool:
    """Whether the process opened the store or loaded SQLite at all."""
    store = str(home / "km.db")
    return any(f.path.startswith(store) for f in proc.open_files()) or any(
        "_sqlite3" in m.path for m in proc.memory_maps()
    )


def _recording_agents(home: Path) -> list[int]:
    """The agents (their pids) whose status lists an open session of this test's server."""
    proc = subprocess.run(
        [KM, "agent", "status", "--json"], env=km_env(home), capture_output=True, timeout=60, check=True
    )
    answers: list[dict[str, Any]] = json.loads(proc.stdout)
    return [a["pid"] for a in answers if any(s["name"] == "secure" for s in a["sessions"])]


def _calls_and_refusals(events: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The tools/call requests stored (their tools) and the gate's refusals (their messages)."""
    calls = [e["tool"] for e in events if e["method"] == "tools/call" and e["kind"] == "request"]
    refusals = [
        e["error"]["message"]
        for e in events
        if e["kind"] == "error" and e["error"]["code"] == -32001
        and "policy.blocked" in {f["rule"] for f in e["risk"]["findings"]}
    ]  # fmt: skip
    return calls, refusals


def test_the_relay_decides_and_the_agent_records(km_home: Path, tmp_path: Path) -> None:
    _pin(km_home)
    log = tmp_path / "calls.log"
    env = km_env(km_home, KM_TEST_SECRET="x", KM_TEST_VARIANT="changed", KM_TEST_CALL_LOG=str(log))
    seen: dict[str, Any] = {}

    async def steps(call: Callable[[str], Awaitable[str]]) -> None:
        seen["read_note"] = await call("read_note")  # its description changed since pinned
        seen["delete_everything"] = await call("delete_everything")  # denied by name
        seen["get_config"] = await call("get_config")
        relay = _relay()
        seen["relay loads the store"] = _loads_the_store(relay, km_home)
        seen["recorded by"] = _recording_agents(km_home)

    asyncio.run(_session(env, ["--policy", str(_policy(tmp_path))], steps))
    assert seen["read_note"].startswith("refused: ") and "changed since it was pinned" in seen["read_note"]
    denied = seen["delete_everything"]
    assert denied.startswith("refused: ") and "delete_everything" in denied
    assert "GITHUB_TOKEN" in seen["get_config"]
    assert log.read_text().split() == ["get_config"], "a refused call never reaches the server"
    assert len(seen["recorded by"]) == 1, "an agent records the blocking policy's session"
    assert not seen["relay loads the store"], "the relay loads only what the gate needs"
    calls, refusals = _calls_and_refusals(km_events(km_home))
    assert sorted(calls) == ["delete_everything", "get_config", "read_note"]
    assert len(refusals) == 2 and all(r.startswith("Blocked by km policy") for r in refusals)


def test_agent_killed_mid_session_the_gate_still_decides_and_nothing_is_lost(
    km_home: Path, tmp_path: Path
) -> None:
    _pin(km_home)
    log = tmp_path / "calls.log"
    env = km_env(km_home, KM_TEST_SECRET="x", KM_TEST_VARIANT="changed", KM_TEST_CALL_LOG=str(log))
    answers: list[str] = []

    async def steps(call: Callable[[str], Awaitable[str]]) -> None:
        answers.append(await call("read_note"))
        answers.append(await call("get_config"))
        (pid,) = _recording_agents(km_home)
        agent = psutil.Process(pid)
        agent.kill()
        agent.wait(30)
        for name in ("read_note", "delete_everything", "get_config", "read_note"):
            answers.append(await call(name))

    asyncio.run(_session(env, ["--policy", str(_policy(tmp_path))], steps))
    refused = [a.startswith("refused: ") for a in answers]
    assert refused == [True, False, True, True, False, True], answers
    assert log.read_text().split() == ["get_config", "get_config"]
    calls, refusals = _calls_and_refusals(km_events(km_home))
    assert sorted(calls) == sorted(["read_note", "get_config", "read_note", "delete_everything", "get_config",
                                    "read_note"]), "every call stored once"  # fmt: skip
    assert len(refusals) == 4


def test_the_gates_first_question_waits_until_the_agent_has_the_session(km_home: Path) -> None:
    """A call that arrives while the agent is still starting is not let through unchecked after
    the question's 1 s: the wait for an answer begins once a recorder has the session."""
    import threading

    from kilometers import config
    from kilometers.agent.link import SYNC_TIMEOUT, AgentLink
    from kilometers.paths import data_dir
    from kilometers.security import Policy

    policy = Policy.from_dict({"mode": "block", "block_changed_tools": True})
    info = {"command": ["srv"], "cwd": "/", "name": "slow-start"}
    link = AgentLink(config.load(), info, data_dir(), policy=policy)
    assert link.gate is not None
    answers: list[tuple[frozenset[str], str | None]] = []
    asking = threading.Thread(target=lambda: answers.append((link.tools_changed(), link.session_id)))
    asking.start()
    asking.join(SYNC_TIMEOUT + 0.5)  # (nothing can answer before the link starts)
    assert asking.is_alive(), "the question did not wait for a recorder"
    link.start()  # the agent is started and takes the session
    asking.join(60)
    link.stop(0, 60)
    assert answers == [(frozenset(), link.session_id)] and link.session_id is not None
    assert link.fallback_reason is None, "the agent answered"
