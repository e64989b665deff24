"""`make demo`: record a real MCP session through `km monitor`, then show it with km's own commands.

An MCP SDK client starts `km monitor --name everything -- mcp-server-everything` (the reference
server from node_modules) and talks to it through km, which records every message in its store:
the normal local store (SQLite in the platform data dir) unless KM_HOME or KM_DB say otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp import ClientSession, Implementation, MCPError
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, GetPromptResult, ReadResourceResult, TextContent

from kilometers import config
from kilometers.store.db import resolve_url

ROOT = Path(__file__).resolve().parent.parent
CLIENT_NAME = "km-demo"
TIMEOUT_SECONDS = 60


class DemoError(RuntimeError):
    pass


def find_program(name: str, directory: Path) -> str:
    found = shutil.which(name, path=str(directory))
    if found is None:
        raise DemoError(f"{name} not found in {directory}: run `make setup` first")
    return found


def check(ok: bool, what: str) -> None:
    if not ok:
        raise DemoError(f"unexpected: {what}")


def text_of(result: object) -> str:
    content = result.content if isinstance(result, CallToolResult) else []
    return " ".join(c.text for c in content if isinstance(c, TextContent))


async def exercise(session: ClientSession) -> None:
    """What a real client does: initialize, list, call, read, prompt; plus two kinds of errors."""
    init = await session.initialize()
    print(f"connected to {init.server_info.name} {init.server_info.version} through km")

    tools = [t.name for t in (await session.list_tools()).tools]
    print(f"tools/list: {len(tools)} tools ({', '.join(tools[:4])}, ...)")

    echo = await session.call_tool("echo", {"message": "hello from kilometers"})
    check("hello from kilometers" in text_of(echo), f"echo returned {echo}")
    total = await session.call_tool("get-sum", {"a": 2, "b": 3})
    check("5" in text_of(total), f"get-sum returned {total}")
    print("tools/call: echo and get-sum answered")

    uri = str((await session.list_resources()).resources[0].uri)
    resource = await session.read_resource(uri)
    check(isinstance(resource, ReadResourceResult) and bool(resource.contents), f"read {uri}: {resource}")
    prompt = await session.get_prompt("args-prompt", {"city": "Paris", "state": "IDF"})
    check(isinstance(prompt, GetPromptResult) and bool(prompt.messages), f"args-prompt: {prompt}")
    print(f"resources/read {uri} and prompts/get args-prompt answered")

    bad = await session.call_tool("get-sum", {"a": 2, "b": "three"})
    check(isinstance(bad, CallToolResult) and bad.is_error, f"get-sum with a bad argument: {bad}")
    try:
        await session.read_resource("demo://resource/missing")
        raise DemoError("reading a missing resource succeeded")
    except MCPError:
        pass
    print("and two errors: a tool result with isError, a JSON-RPC error (missing resource)")


async def run_client(km: str, server: str, errlog: TextIO) -> None:
    params = StdioServerParameters(
        command=km,
        args=["monitor", "--name", "everything", "--", server],
        env=dict(os.environ),  # the SDK passes on only HOME, PATH...: keep KM_HOME and KM_DB for km
        cwd=ROOT,
    )
    client_info = Implementation(name=CLIENT_NAME, version="1.0")
    with anyio.fail_after(TIMEOUT_SECONDS):
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, client_info=client_info) as session,
        ):
            await exercise(session)


def check_recorded(km: str, settings: config.Settings) -> None:
    """The session is in the store, complete, and km exited with the server's code."""
    command = [km, "sessions", "--limit", "1", "--json"]
    lines = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout.splitlines()
    check(bool(lines), "no session in the store")
    latest: dict[str, Any] = json.loads(lines[0])
    check((latest["client"] or {}).get("name") == CLIENT_NAME, f"latest session is not the demo's: {latest}")
    check(latest["event_count"] > 0, f"no events recorded: {latest}")
    if not (settings.include_methods or settings.exclude_methods):  # else the user's filters apply
        check(latest["event_count"] >= 19 and latest["error_count"] == 2, f"events missing: {latest}")
    check(latest["exit_code"] == 0 and latest["dropped_events"] == 0, f"unclean end: {latest}")


def show(km: str, *args: str) -> None:
    print(f"\n$ km {' '.join(args)}", flush=True)
    subprocess.run([km, *args], check=True)


def main() -> None:
    km = find_program("km", Path(sys.executable).parent)
    server = find_program("mcp-server-everything", ROOT / "node_modules" / ".bin")
    settings = config.load()
    store = resolve_url(settings.db_url)
    print(f"recording into {store}")

    with tempfile.TemporaryFile("w+") as errlog:  # stderr of km and the server, shown if anything fails
        try:
            anyio.run(run_client, km, server, errlog)
            check_recorded(km, settings)
        except BaseException:
            errlog.seek(0)
            sys.stderr.write(errlog.read())
            raise

    show(km, "sessions", "--limit", "5")
    show(km, "events", "--session", "latest")
    show(km, "stats", "--session", "latest")
    print(f"\nrecorded in {store}")
    print("next: `km tail -f` while a client runs; `km show EVENT_ID` for one message in full")


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:
        while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]  # anyio task groups wrap what failed inside them
        expected = DemoError | config.ConfigError | subprocess.CalledProcessError | MCPError | TimeoutError
        if not isinstance(exc, expected | OSError):
            raise
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)
