"""A server's pins belong to what it is (its command line or URL, and the name it gives itself at
initialize), not to the name it runs under: one server under three names is one server; a tool
that changes is still a change; two different servers offering one tool name to one client is
still a collision (medium), which `km pins approve` can accept; pins from before keep working."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from sqlalchemy import select, text

from kilometers.analysis import Pins
from kilometers.model import Session
from kilometers.security import identity_key, server_identity
from kilometers.store import db
from kilometers.store.schema import pins as pins_table

from km_helpers import ECHO_SERVER, KM, NODE_BIN, ROOT, km_env, km_events

SECURE_SERVER = str(ROOT / "tests" / "servers" / "secure_server.py")
EVERYTHING = str(NODE_BIN / "mcp-server-everything")
RANK = {"none": 0, "info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

pytestmark = pytest.mark.usefixtures("patient_sdk_client")


async def _list_tools(home: Path, name: str, server: list[str], cwd: Path | None = None, **env: str) -> None:
    """One client session through `km monitor --name NAME`: initialize, then tools/list."""
    params = StdioServerParameters(
        command=KM, args=["monitor", "--name", name, "--", *server], env=km_env(home, **env), cwd=cwd
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()


def _run(home: Path, name: str, server: list[str], cwd: Path | None = None, **env: str) -> None:
    asyncio.run(_list_tools(home, name, server, cwd, **env))


def _km(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KM, *args], capture_output=True, text=True, env=km_env(home), timeout=120)


def _findings(home: Path) -> list[dict[str, Any]]:
    """Every finding of every tools/list answer recorded, oldest session first."""
    return [
        f
        for e in km_events(home, "--method", "tools/list")
        if e["kind"] == "response"
        for f in e["risk"]["findings"]
    ]


def _latest_findings(home: Path, rule: str) -> list[dict[str, Any]]:
    listing = [
        e for e in km_events(home, "--session", "latest", "--method", "tools/list") if e["kind"] == "response"
    ]
    assert listing, "no tools/list answer recorded in the latest session"
    return [f for f in listing[-1]["risk"]["findings"] if f["rule"] == rule]


def _pins(home: Path) -> list[dict[str, Any]]:
    proc = _km(home, "pins", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return [orjson.loads(line) for line in proc.stdout.splitlines()]


def test_one_server_under_three_names_raises_nothing_above_low(km_home: Path, tmp_path: Path) -> None:
    # as three clients would write it: by name on PATH, by full path, and from another directory
    python = Path(sys.executable)
    (tmp_path / "elsewhere").mkdir()
    relative = os.path.relpath(ECHO_SERVER, tmp_path / "elsewhere")
    _run(km_home, "echo", [sys.executable, ECHO_SERVER])
    _run(km_home, "echo-tools", [str(python.parent / "." / python.name), ECHO_SERVER])
    _run(km_home, "et", [sys.executable, relative], cwd=tmp_path / "elsewhere")
    findings = _findings(km_home)
    assert [f for f in findings if RANK[f["severity"]] > RANK["low"]] == []
    assert not [f for f in findings if f["rule"].startswith("pinning.")]
    [server] = _pins(km_home)
    assert server["names"] == ["echo", "echo-tools", "et"]
    assert server["identity"]["server_name"] == "km-test-echo"
    assert server["tools"] == ["add", "echo", "fail", "where"] and server["collisions"] == {}


def test_a_changed_description_under_another_name_is_still_a_change(km_home: Path) -> None:
    _run(km_home, "notes", [sys.executable, SECURE_SERVER], KM_TEST_SECRET="x")
    _run(
        km_home,
        "notes-cursor",
        [sys.executable, SECURE_SERVER],
        KM_TEST_SECRET="x",
        KM_TEST_VARIANT="changed",
    )
    [changed] = _latest_findings(km_home, "pinning.changed")
    assert changed["severity"] == "high" and "read_note" in changed["message"]
    assert _latest_findings(km_home, "pinning.name_collision") == []
    diff = _km(km_home, "pins", "diff", "notes")  # any name the server ran under finds it
    assert diff.returncode == 1 and "read_note: description changed" in diff.stdout
    approved = _km(km_home, "pins", "approve", "notes-cursor")
    assert approved.returncode == 0 and "read_note" in approved.stdout
    assert _km(km_home, "pins", "diff", "notes").returncode == 0


def test_two_servers_offering_one_tool_collide_until_approved(km_home: Path) -> None:
    _run(km_home, "echo", [sys.executable, ECHO_SERVER])
    _run(km_home, "everything", [EVERYTHING])  # offers an `echo` tool too
    [collision] = _latest_findings(km_home, "pinning.name_collision")
    assert collision["severity"] == "medium"
    assert "'echo'" in collision["message"] and "'echo'" in collision["message"].split("server")[-1]
    diff = _km(km_home, "pins", "diff", "everything")
    assert diff.returncode == 1 and "echo: name also offered by echo" in diff.stdout
    assert [
        f
        for f in _findings(km_home)
        if RANK[f["severity"]] > RANK["medium"] and f["rule"].startswith("pinning.")
    ] == []

    refused = _km(km_home, "pins", "approve", "everything", "--tool", "add")
    assert refused.returncode != 0 and "no pending change or collision" in refused.stderr
    approved = _km(km_home, "pins", "approve", "everything")
    assert approved.returncode == 0 and "approved 1 tool(s) of everything: echo" in approved.stdout
    _run(km_home, "everything", [EVERYTHING])
    assert _latest_findings(km_home, "pinning.name_collision") == []
    assert _km(km_home, "pins", "diff", "everything").returncode == 0


def test_one_name_for_two_servers_asks_which(km_home: Path) -> None:
    _run(km_home, "tools", [sys.executable, ECHO_SERVER])
    _run(km_home, "tools", [sys.executable, SECURE_SERVER], KM_TEST_SECRET="x")
    servers = _pins(km_home)
    assert len(servers) == 2  # two servers, not one's pins overwritten by the other's
    ambiguous = _km(km_home, "pins", "diff", "tools")
    assert ambiguous.returncode != 0 and "2 different servers" in ambiguous.stderr
    assert len(ambiguous.stderr.strip().splitlines()) == 1
    secure = next(s for s in servers if "read_note" in s["tools"])
    assert _km(km_home, "pins", "diff", secure["id"][:12]).returncode == 0
    missing = _km(km_home, "pins", "approve", "nothing-by-that-name")
    assert missing.returncode != 0 and "no pinned tools for server 'nothing-by-that-name'" in missing.stderr


def test_pins_from_before_identities_keep_working(km_home: Path, tmp_path: Path) -> None:
    """A store at revision 0005 with a server pinned by name: migrated, the next session under
    that name takes the pins over, and a later change is still reported."""
    first = tmp_path / "first"
    first.mkdir()
    _run(first, "notes", [sys.executable, SECURE_SERVER], KM_TEST_SECRET="x")
    engine = db.open_store(f"sqlite:///{first / 'km.db'}")
    with engine.connect() as conn:
        [data] = conn.execute(select(pins_table.c.data)).scalars().all()
    engine.dispose()

    old = db.make_engine(f"sqlite:///{km_home / 'km.db'}")
    with old.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0005")
        conn.execute(
            text("INSERT INTO pins (org_id, server, data, updated_ns) VALUES ('local', 'notes', :data, 1)"),
            {"data": data},
        )
        conn.execute(
            text("INSERT INTO pins (org_id, server, data, updated_ns) VALUES ('local', 'gone', :data, 1)"),
            {"data": orjson.dumps({"pins": {"read_note": "0" * 64}, "pending": {}}).decode()},
        )
    old.dispose()

    _run(km_home, "notes", [sys.executable, SECURE_SERVER], KM_TEST_SECRET="x")  # migrates the store
    assert [f for f in _findings(km_home) if f["rule"].startswith("pinning.")] == []
    servers = {s["server"]: s for s in _pins(km_home)}
    assert servers.keys() == {"notes", "gone"}  # taken over, not pinned afresh beside the old row
    assert servers["notes"]["identity"]["server_name"] == "km-secure-test"
    assert servers["gone"]["identity"] is None and servers["gone"]["tools"] == ["read_note"]

    _run(km_home, "notes", [sys.executable, SECURE_SERVER], KM_TEST_SECRET="x", KM_TEST_VARIANT="changed")
    [changed] = _latest_findings(km_home, "pinning.changed")
    assert changed["severity"] == "high"
    assert _km(km_home, "pins", "approve", "gone").stdout.startswith("approved 0 tool(s) of gone")


def test_identity_is_the_command_line_or_url_and_the_server_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = Path(sys.executable)
    monkeypatch.setenv("PATH", f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    script = tmp_path / "server.py"
    script.write_text("")
    info = {"name": "fs", "version": "1.0.0"}
    by_path = Session(command=[sys.executable, str(script)], cwd="/", server=info)
    by_name = Session(command=[python.name, "server.py"], cwd=str(tmp_path), server=info)
    upgraded = Session(command=[sys.executable, str(script)], cwd="/", server={**info, "version": "2.0.0"})
    assert len({identity_key(server_identity(s)) for s in (by_path, by_name, upgraded)}) == 1
    other_name = Session(command=[sys.executable, str(script)], cwd="/", server={"name": "other"})
    other_args = Session(command=[sys.executable, str(script), "--root", "/srv"], cwd="/", server=info)
    for other in (other_name, other_args):
        assert identity_key(server_identity(other)) != identity_key(server_identity(by_path))

    def url(u: str, name: str = "remote") -> str:
        session = Session(command=[u], cwd="10.0.0.1", transport="streamable_http", server={"name": name})
        return identity_key(server_identity(session))

    assert (
        url("HTTPS://MCP.Example.com:443/mcp/")
        == url("https://mcp.example.com/mcp")
        == url("https://mcp.example.com/mcp#x")
    )
    assert url("https://mcp.example.com:8443/mcp") != url("https://mcp.example.com/mcp")
    assert url("https://mcp.example.com/mcp", "other") != url("https://mcp.example.com/mcp")
    assert url("http://[::1]:8080/mcp") == url("http://[::1]:8080/mcp/")


def test_pins_approve_accepts_a_collision_with_the_servers_it_collides_with_now() -> None:
    def tool(name: str) -> dict[str, Any]:
        return {"name": name, "description": name, "inputSchema": {"type": "object"}}

    pins = Pins()
    found = pins.check(
        [tool("read_file"), tool("read_file")], other_servers={"k1": ["Read-File"]}, labels={"k1": "fs"}
    )
    assert [(f.rule, f.severity) for f in found] == [("pinning.name_collision", "medium")] * 2
    assert "server 'fs'" in found[1].message
    assert pins.collisions == {"read_file": ["", "k1"]}
    assert pins.approve("read_file") == ["read_file"]
    restored = Pins.from_state(orjson.loads(orjson.dumps(pins.state())))
    assert restored.check([tool("read_file"), tool("read_file")], other_servers={"k1": ["read_file"]}) == []
    # a server that offers the name later is a new collision
    [again] = restored.check([tool("read_file")], other_servers={"k1": ["read_file"], "k2": ["read_file"]})
    assert again.severity == "medium" and "'k2'" in again.message
    # garbage in stored state is ignored, not fatal
    assert (
        Pins.from_state(
            {"pins": {}, "pending": {}, "collisions": [1], "accepted_collisions": {"x": "y"}}
        ).collisions
        == {}
    )
