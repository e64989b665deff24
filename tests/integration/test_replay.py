"""km replay against real servers: the same server matches its recording, a changed one does not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parents[2]
KM = str(Path(sys.executable).parent / "km")
ECHO = [sys.executable, str(ROOT / "tests" / "servers" / "echo_server.py")]
EVERYTHING = [str(ROOT / "node_modules" / ".bin" / "mcp-server-everything")]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env["KM_HOME"] = str(home)
    return env


async def _record(home: Path, server: list[str], calls: list[tuple[str, dict[str, object]]]) -> None:
    params = StdioServerParameters(command=KM, args=["monitor", "--", *server], env=_env(home))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        for name, args in calls:
            await session.call_tool(name, args)


def _replay(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KM, "replay", *args], capture_output=True, text=True, timeout=120, env={**_env(home), **(env or {})}
    )


def test_replay_matches_the_same_server_and_catches_a_regression(tmp_path: Path) -> None:
    asyncio.run(_record(tmp_path, ECHO, [("echo", {"text": "hello"}), ("add", {"a": 2, "b": 3})]))
    same = _replay(tmp_path, "latest", "--", *ECHO)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "4 of 4 answers match" in same.stderr  # initialize, tools/list, 2 calls
    changed = _replay(tmp_path, "latest", "--json", "--", *ECHO, env={"KM_TEST_VARIANT": "changed"})
    assert changed.returncode == 1, changed.stderr
    outcomes = [orjson.loads(line) for line in changed.stdout.splitlines()]
    [bad] = [o for o in outcomes if not o["same"]]
    assert bad["target"] == "echo"
    paths = {c["path"]: c for c in bad["changes"]}
    assert paths["/result/content/0/text"]["recorded"] == "hello"
    assert paths["/result/content/0/text"]["replayed"] == "HELLO"
    ignored = _replay(
        tmp_path, "latest", "--ignore", "/result/content/*", "--ignore", "/result/structuredContent*", "--",
        *ECHO, env={"KM_TEST_VARIANT": "changed"},
    )  # fmt: skip
    assert ignored.returncode == 0, ignored.stdout


def test_replay_against_server_everything(tmp_path: Path) -> None:
    asyncio.run(_record(tmp_path, EVERYTHING, [("echo", {"message": "hi"}), ("get-sum", {"a": 1, "b": 2})]))
    result = _replay(tmp_path, "latest", "--", *EVERYTHING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 of 4 answers match" in result.stderr


def test_replay_errors_are_clear(tmp_path: Path) -> None:
    missing = _replay(tmp_path, "latest", "--", *ECHO)
    assert missing.returncode == 2 and "no sessions recorded yet" in missing.stderr
    asyncio.run(_record(tmp_path, ECHO, []))
    bad = _replay(tmp_path, "latest", "--", "/nonexistent/server")
    assert bad.returncode == 2 and "cannot start" in bad.stderr
