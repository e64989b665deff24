"""Security end to end, through km monitor with the mcp SDK client: secrets in tool results never
reach the store, a blocked call never reaches the server, a changed tool is flagged later."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import string
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

ROOT = Path(__file__).resolve().parents[2]
KM = str(Path(sys.executable).parent / "km")
SERVER = [sys.executable, str(ROOT / "tests" / "servers" / "secure_server.py")]


def _secret() -> str:
    rng = random.Random()
    return "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    return {**env, "KM_HOME": str(home), **extra}


async def _session(env: dict[str, str], km_args: list[str], calls: list[str]) -> list[object]:
    params = StdioServerParameters(
        command=KM, args=["monitor", "--name", "secure", *km_args, "--", *SERVER], env=env
    )
    results: list[object] = []
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        for name in calls:
            args = (
                {"confirm": True}
                if name == "delete_everything"
                else {"title": "x"}
                if name == "read_note"
                else {}
            )
            try:
                results.append(await session.call_tool(name, args))
            except MCPError as exc:  # a JSON-RPC error answer (e.g. blocked by the policy)
                results.append(exc)
    return results


def _km(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KM, *args], capture_output=True, text=True, env=_env(home), timeout=60)


def _events(home: Path, *args: str) -> list[dict]:  # type: ignore[type-arg]
    return [
        orjson.loads(line)
        for line in _km(home, "events", "--json", "--limit", "1000", *args).stdout.splitlines()
    ]


def test_a_secret_in_a_tool_result_never_reaches_the_store(tmp_path: Path) -> None:
    secret = _secret()
    [result] = asyncio.run(_session(_env(tmp_path, KM_TEST_SECRET=secret), [], ["get_config"]))
    assert secret in str(result)  # the client got the real bytes: monitor mode never alters traffic
    for db_file in tmp_path.glob("km.db*"):
        assert secret.encode() not in db_file.read_bytes(), db_file.name
    [reply] = [e for e in _events(tmp_path, "--tool", "get_config") if e["kind"] == "response"]
    assert "[REDACTED:secret.github_token]" in orjson.dumps(reply["payload"]).decode()
    assert reply["risk"]["level"] == "high"
    assert any(
        f["rule"] == "secret.github_token" and secret not in f["message"] for f in reply["risk"]["findings"]
    )
    findings = _km(tmp_path, "findings", "--json").stdout
    assert "secret.github_token" in findings and secret not in findings
    exported = _km(tmp_path, "export").stdout
    assert "REDACTED" in exported and secret not in exported
    high = _events(tmp_path, "--risk", "high")
    assert reply["id"] in {e["id"] for e in high}
    [session] = [orjson.loads(line) for line in _km(tmp_path, "sessions", "--json").stdout.splitlines()]
    assert session["risk"]["level"] == "high" and session["risk"]["events_with_findings"] >= 1


def test_a_blocked_call_never_reaches_the_server(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "block"\ndeny_tools = ["delete_*"]\n')
    log = tmp_path / "calls.log"
    env = _env(tmp_path, KM_TEST_SECRET="x", KM_TEST_CALL_LOG=str(log))
    blocked, allowed = asyncio.run(
        _session(env, ["--policy", str(policy)], ["delete_everything", "read_note"])
    )
    assert log.read_text().split() == ["read_note"]  # the server never saw the blocked call
    text = str(blocked)
    assert "Blocked by km policy" in text and "delete_*" in text
    assert "note x" in str(allowed)
    [error] = [e for e in _events(tmp_path, "--tool", "delete_everything") if e["kind"] == "error"]
    assert error["error"]["code"] == -32001
    assert any(f["rule"] == "policy.blocked" for f in error["risk"]["findings"])


def test_log_mode_forwards_everything(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "log"\ndeny_tools = ["delete_*"]\n')
    log = tmp_path / "calls.log"
    env = _env(tmp_path, KM_TEST_SECRET="x", KM_TEST_CALL_LOG=str(log))
    asyncio.run(_session(env, ["--policy", str(policy)], ["delete_everything"]))
    assert log.read_text().split() == ["delete_everything"]
    [request] = [e for e in _events(tmp_path, "--tool", "delete_everything") if e["kind"] == "request"]
    assert any(f["rule"] == "policy.denied_tool" for f in request["risk"]["findings"])


def test_a_changed_tool_description_is_flagged_in_a_later_session(tmp_path: Path) -> None:
    asyncio.run(_session(_env(tmp_path, KM_TEST_SECRET="x"), [], []))
    assert "3 tools pinned, no changes" in _km(tmp_path, "pins", "list").stdout
    asyncio.run(_session(_env(tmp_path, KM_TEST_SECRET="x", KM_TEST_VARIANT="changed"), [], []))
    listing = [
        e
        for e in _events(tmp_path, "--session", "latest", "--method", "tools/list")
        if e["kind"] == "response"
    ]
    rules = {f["rule"] for f in listing[0]["risk"]["findings"]}
    assert "pinning.changed" in rules and "poisoning.instruction_tag" in rules
    diff = _km(tmp_path, "pins", "diff", "secure")
    assert diff.returncode == 1 and "read_note: description changed" in diff.stdout
    assert "1 changed" in _km(tmp_path, "pins", "list").stdout
    approved = _km(tmp_path, "pins", "approve", "secure")
    assert approved.returncode == 0 and "read_note" in approved.stdout
    assert _km(tmp_path, "pins", "diff", "secure").returncode == 0


def test_a_changed_tool_can_be_blocked_until_approved(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "block"\nblock_changed_tools = true\n')
    log = tmp_path / "calls.log"
    asyncio.run(_session(_env(tmp_path, KM_TEST_SECRET="x"), [], []))
    env = _env(tmp_path, KM_TEST_SECRET="x", KM_TEST_VARIANT="changed", KM_TEST_CALL_LOG=str(log))
    [blocked] = asyncio.run(_session(env, ["--policy", str(policy)], ["read_note"]))
    assert "changed since it was pinned" in str(blocked) and not log.exists()
    _km(tmp_path, "pins", "approve", "secure")
    [ok] = asyncio.run(_session(env, ["--policy", str(policy)], ["read_note"]))
    assert "note x" in str(ok) and log.read_text().split() == ["read_note"]


def test_a_broken_policy_file_with_on_error_log_keeps_redaction_on(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('on_error = "log"\nmode = "maybe"\n')  # without on_error, km refuses to start
    secret = _secret()
    asyncio.run(_session(_env(tmp_path, KM_TEST_SECRET=secret), ["--policy", str(policy)], ["get_config"]))
    for db_file in tmp_path.glob("km.db*"):
        assert secret.encode() not in db_file.read_bytes()


@pytest.mark.parametrize("server", ["server-everything", "server-filesystem"])
def test_ordinary_traffic_raises_nothing_above_low(tmp_path: Path, server: str) -> None:
    if server == "server-everything":
        command = [str(ROOT / "node_modules" / ".bin" / "mcp-server-everything")]
        calls = [("echo", {"message": "hello"}), ("get-sum", {"a": 1, "b": 2})]
    else:
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "readme.md").write_text("# Notes\nNothing secret here.\n")
        command = [str(ROOT / "node_modules" / ".bin" / "mcp-server-filesystem"), str(tmp_path / "docs")]
        calls = [("list_directory", {"path": str(tmp_path / "docs")}),
                 ("read_text_file", {"path": str(tmp_path / "docs" / "readme.md")})]  # fmt: skip

    async def run() -> None:
        params = StdioServerParameters(command=KM, args=["monitor", "--", *command], env=_env(tmp_path))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await session.list_tools()
            for listing in (session.list_prompts, session.list_resources):
                with contextlib.suppress(MCPError):  # server-filesystem offers neither
                    await listing()
            for name, args in calls:
                await session.call_tool(name, args)

    asyncio.run(run())
    above_low = _events(tmp_path, "--risk", "medium")
    assert above_low == [], [(e["method"], e["risk"]) for e in above_low]


def test_payload_limit_cuts_after_redaction_and_commands_are_redacted(tmp_path: Path) -> None:
    secret = _secret()
    env = _env(tmp_path, KM_TEST_SECRET=secret)
    asyncio.run(_session(env, ["--payload-limit", "120"], ["get_config"]))
    for db_file in tmp_path.glob("km.db*"):
        assert secret[:20].encode() not in db_file.read_bytes(), "a cut secret must not survive either"
    line = f'{{"jsonrpc":"2.0","method":"x","params":{{"token":"{secret}"}}}}\n'.encode()
    sink = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    subprocess.run([KM, "monitor", "--", *sink, "--token", secret],
                   input=line, capture_output=True, env=_env(tmp_path), timeout=60, check=True)  # fmt: skip
    sessions = _km(tmp_path, "sessions", "--json").stdout
    assert secret not in sessions and "[REDACTED:secret.github_token]" in sessions


def test_plugin_detectors_add_findings(tmp_path: Path) -> None:
    example = str(ROOT / "tests" / "plugin_example")
    env = _env(tmp_path, PYTHONPATH=example, KM_EXAMPLE_PLUGIN_OUT=str(tmp_path / "kinds.txt"))
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "say", "arguments": {"text": "HELLO"}},
    }
    line = orjson.dumps(call) + b"\n"
    subprocess.run([KM, "monitor", "--", sys.executable, "-c", "import sys; sys.stdin.read()"],
                   input=line, capture_output=True, env=env, timeout=60, check=True)  # fmt: skip
    [event] = _events(tmp_path)
    assert [f["rule"] for f in event["risk"]["findings"]] == ["plugin.example.shouting"]
    assert event["risk"]["level"] == "low"
    assert (tmp_path / "kinds.txt").read_text().split() == ["request"]  # the plugin's sink ran too
