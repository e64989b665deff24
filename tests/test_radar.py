"""The deprecation radar (issue 12, item 4): which protocol versions each server and client
speaks, and which features that MCP 2026-07-28 deprecates or removes they still rely on.

Real peers through ``km monitor``: ``mcp-server-everything`` (2025-11-25, with the initialize
handshake) asked for sampling, roots, logging and ping by the Python SDK's client, and the
Python SDK's echo server on 2026-07-28 (``server/discover``, no handshake). The radar is read
with ``km stats --radar`` (text and JSON) and ``km doctor``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import orjson
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from test_monitor_sdk import TIMEOUT, Run, attempt, call, echo_scenario, run_client

from km_helpers import ECHO_SERVER, KM, NODE_BIN, PYTHON, km_env

EVERYTHING = NODE_BIN / "mcp-server-everything"


def through_km(home: Path, *command: str, name: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=str(KM), args=["monitor", "--name", name, "--", *command], env=km_env(home)
    )


async def legacy_client(params: StdioServerParameters, errlog: Path) -> None:
    """A 2025-11-25 client that offers sampling and roots, sets a log level and pings."""

    async def sample(_ctx: Any, _params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="fine"), model="test-model"
        )

    async def roots(_ctx: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///tmp/project", name="project")])

    with anyio.fail_after(TIMEOUT), errlog.open("a") as err:
        async with (
            stdio_client(params, errlog=err) as (read, write),
            ClientSession(
                read, write, read_timeout_seconds=60, sampling_callback=sample, list_roots_callback=roots
            ) as session,
        ):
            await session.initialize()
            run = Run()
            sampled = await call(session, run, "trigger-sampling-request", {"prompt": "hi", "maxTokens": 5})
            assert not sampled["isError"], sampled
            assert "error" not in await attempt(session.set_logging_level("debug"))
            await session.send_ping()


def km(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KM), *args], env=km_env(home), capture_output=True, text=True, timeout=60)


def radar_json(home: Path, *args: str) -> dict[tuple[str, str], dict[str, Any]]:
    done = km(home, "stats", "--radar", "--json", *args)
    assert done.returncode == 0, done.stderr
    peers = [orjson.loads(line) for line in done.stdout.splitlines()]
    return {(p["role"], p["name"]): p for p in peers}


def features(peer: dict[str, Any]) -> dict[str, tuple[str, int]]:
    return {f["feature"]: (f["status"], f["sessions"]) for f in peer["features"]}


@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")  # that is the point
def test_radar_shows_who_relies_on_what_2026_07_28_deprecates(km_home: Path, tmp_path: Path) -> None:
    errlog = tmp_path / "stderr.log"
    anyio.run(legacy_client, through_km(km_home, str(EVERYTHING), name="everything"), errlog)
    echo = through_km(km_home, PYTHON, str(ECHO_SERVER), name="echo")
    anyio.run(run_client, echo, lambda s, r: echo_scenario(s, r, "discover"), errlog)

    peers = radar_json(km_home)
    everything = peers[("server", "mcp-servers/everything")]  # as it reports itself
    assert everything["aliases"] == ["everything"]  # the name km recorded it under
    assert everything["versions"] == ["2025-11-25"] and not everything["current"]
    assert features(everything) == {
        "handshake": ("removed", 1),
        "sampling": ("deprecated", 1),
        "roots": ("deprecated", 1),
        "logging": ("deprecated", 1),
    }
    client = peers[("client", "mcp")]  # the SDK's client, in both sessions
    assert client["versions"] == ["2025-11-25", "2026-07-28"] and client["current"]
    assert features(client) == {
        "handshake": ("removed", 1),
        "sampling": ("deprecated", 1),
        "roots": ("deprecated", 1),
        "logging": ("deprecated", 1),
        "ping": ("deprecated", 2),
    }
    sampling = next(f for f in client["features"] if f["feature"] == "sampling")
    assert sampling["messages"] == 1  # the one sampling/createMessage it was asked

    echo_server = peers[("server", "km-test-echo")]
    assert echo_server["current"] and "2026-07-28" in echo_server["versions"]
    assert "handshake" not in features(echo_server)  # server/discover, no initialize

    # --server narrows it to one server's sessions (and their clients)
    only = radar_json(km_home, "--server", "echo")
    assert set(only) == {("server", "km-test-echo"), ("client", "mcp")}
    assert features(only[("client", "mcp")]) == {"ping": ("deprecated", 1)}

    text = km(km_home, "stats", "--radar")
    assert text.returncode == 0, text.stderr
    assert "server mcp-servers/everything: 2025-11-25 (not yet on 2026-07-28), 1 session" in text.stdout
    assert "removed initialize handshake and sessions (1 session" in text.stdout
    assert "deprecated sampling (sampling/createMessage) (1 session, 1 message)" in text.stdout

    doctor = km(km_home, "doctor", "--offline")
    assert "Protocol (last 30 days)" in doctor.stdout
    assert (
        "server mcp-servers/everything (2025-11-25): removed in 2026-07-28: initialize handshake"
        in doctor.stdout
    )
    assert (
        "server km-test-echo (2026-07-28): relies on nothing 2026-07-28 deprecates or removes"
        in doctor.stdout
    )


def test_radar_on_an_empty_store_and_with_bad_options(km_home: Path) -> None:
    empty = km(km_home, "stats", "--radar")
    assert empty.returncode == 0 and "sessions recorded yet" in empty.stdout + empty.stderr
    assert km(km_home, "stats", "--radar", "--json").stdout == ""
    both = km(km_home, "stats", "--radar", "--session", "abc")
    assert both.returncode != 0
    nowhere = km(km_home, "stats", "--radar", "--server", "no-such-server")
    assert nowhere.returncode != 0 and "no session of a server matching" in nowhere.stderr
    doctor = km(km_home, "doctor", "--offline")
    assert "Protocol (last 30 days)\n  - no sessions" in doctor.stdout


def test_the_radar_index_holds_every_method_the_radar_counts() -> None:
    """The radar reads its counts from a partial index (migration 0014) whose predicate lists the
    methods; a sign added to the radar without it would never be counted."""
    from kilometers.store.radar import SIGNS
    from kilometers.store.schema import RADAR_METHODS, RADAR_WHERE, events

    assert {method for _direction, method in SIGNS} == set(RADAR_METHODS)
    [index] = [i for i in events.indexes if i.name == "ix_events_org_radar"]
    assert str(index.dialect_options["sqlite"]["where"]) == RADAR_WHERE
