"""The Pins view's API (issue 14, item 2): each server's pinned tool definitions next to the latest
seen, approve or reject. On km ui, the local pins of real `km monitor` sessions of a real MCP
server whose tool description changes (a rug pull), decided as `km pins approve` does; on the
team server, the team's approved definitions, with roles respected, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from kilometers.server import accounts, tenancy
from kilometers.server.app import ServerSettings, create_app
from server.conftest import Api
from server.factory import BASE_NS, bearer
from server.test_team_pins import CLEAN, OTHER, TARGETED, listed

from km_helpers import KM, ROOT, km_env

SECURE_SERVER = str(ROOT / "tests" / "servers" / "secure_server.py")
TOKEN = "t" * 32

pytestmark = pytest.mark.usefixtures("patient_sdk_client")


async def _list_tools(home: Path, **env: str) -> None:
    params = StdioServerParameters(
        command=KM, args=["monitor", "--name", "notes", "--", sys.executable, SECURE_SERVER],
        env=km_env(home, KM_TEST_SECRET="x", **env),
    )  # fmt: skip
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()


def _local_client(home: Path) -> TestClient:
    url = f"sqlite:///{home / 'km.db'}"
    app = create_app(settings=ServerSettings(db_url=url, local_token=TOKEN, retention_interval_seconds=0))
    client = TestClient(app, headers={"X-KM-Token": TOKEN}, raise_server_exceptions=False)
    client.headers["X-CSRF-Token"] = client.get("/auth/me").json()["csrf_token"]
    return client


def _tool(server: dict[str, Any], name: str) -> dict[str, Any]:
    [tool] = [t for t in server["tools"] if t["name"] == name]
    return dict(tool)


def test_km_ui_shows_a_changed_tool_with_both_definitions_and_approves_it(km_home: Path) -> None:
    asyncio.run(_list_tools(km_home))
    asyncio.run(_list_tools(km_home, KM_TEST_VARIANT="changed"))
    client = _local_client(km_home)
    assert client.get("/api/v1/pins/review", headers={"X-KM-Token": "wrong"}).status_code == 401
    r = client.get("/api/v1/pins/review")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "local"
    [server] = body["items"]
    assert server["server"] == "notes" and server["changed"] == 1 and "secure_server.py" in server["runs"]
    note = _tool(server, "read_note")
    assert note["status"] == "changed" and note["changed_fields"] == ["description"]
    assert note["pinned"]["description"] == "Read a note by its title."
    assert "id_rsa" in note["latest"]["description"]
    assert note["pinned"]["inputSchema"] == note["latest"]["inputSchema"]
    assert _tool(server, "get_config")["status"] == "pinned"

    # nothing pending on an unchanged tool, no such server
    r = client.post(f"/api/v1/pins/review/{server['key']}/approve", json={"tool": "get_config"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "nothing_pending"
    assert client.post("/api/v1/pins/review/nope/approve", json={}).status_code == 404
    r = client.post(f"/api/v1/pins/review/{server['key']}/approve", json={"tool": 3})
    assert r.status_code == 422

    r = client.post(f"/api/v1/pins/review/{server['key']}/approve", json={"tool": "read_note"})
    assert r.status_code == 200, r.text
    note = _tool(r.json(), "read_note")
    assert note["status"] == "pinned" and "id_rsa" in note["pinned"]["description"]
    # as `km pins diff` sees it: nothing left to approve
    diff = client.post(f"/api/v1/pins/review/{server['key']}/approve", json={})
    assert diff.status_code == 409


def test_km_ui_rejects_a_change_and_a_later_listing_flags_it_again(km_home: Path) -> None:
    asyncio.run(_list_tools(km_home))
    asyncio.run(_list_tools(km_home, KM_TEST_VARIANT="changed"))
    client = _local_client(km_home)
    [server] = client.get("/api/v1/pins/review").json()["items"]
    r = client.post(f"/api/v1/pins/review/{server['key']}/reject")
    assert r.status_code == 200, r.text
    note = _tool(r.json(), "read_note")
    assert note["status"] == "rejected" and note["pinned"]["description"] == "Read a note by its title."
    assert "id_rsa" in note["latest"]["description"] and r.json()["changed"] == 0
    asyncio.run(_list_tools(km_home, KM_TEST_VARIANT="changed"))
    [server] = client.get("/api/v1/pins/review").json()["items"]
    assert _tool(server, "read_note")["status"] == "changed"  # the pin stayed the old one


def _upload(api: Api, key: str, batch: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    session, events = batch
    r = api.client.post(
        "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(key)
    )
    assert r.status_code == 200 and r.json()["errors"] == [], r.text


PASSWORD = "correct horse battery staple"


def _signed_in(api: Api, org: tenancy.Org, email: str, role: str) -> TestClient:
    """A browser signed in as a new ``role`` of ``org`` (its cookie and CSRF token)."""
    user = accounts.create_user(api.engine, email, PASSWORD)
    accounts.set_member(api.engine, org, user, role)
    client = TestClient(api.client.app, base_url="http://testserver")
    r = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


def test_team_pins_view_diff_approve_reject_and_roles(api: Api) -> None:
    org, alice, read_key = api.org_with_keys("acme")
    bob = tenancy.create_key(api.engine, org, "ingest")
    admin = tenancy.create_key(api.engine, org, "admin")
    _upload(api, alice, listed([CLEAN, OTHER], host="alice-laptop"))
    _upload(api, bob, listed([TARGETED, OTHER], host="bob-laptop", start_ns=BASE_NS + 10**9))

    r = api.client.get("/api/v1/pins/review", headers=bearer(read_key))
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "team"
    [server] = r.json()["items"]
    assert server["runs"] == "npx -y notes-server" and server["changed"] == 1
    note = _tool(server, "read_note")
    assert note["status"] == "changed" and note["changed_fields"] == ["description"] and note["drift"]
    assert note["pinned"] == CLEAN and note["latest"] == TARGETED
    assert _tool(server, "list_notes")["status"] == "pinned"

    # a read key, a member and a viewer may look, not decide
    url = f"/api/v1/pins/review/{server['key']}"
    assert api.client.post(url + "/approve", headers=bearer(read_key)).status_code == 403
    for role in ("member", "viewer"):
        browser = _signed_in(api, org, f"{role}@example.com", role)
        assert browser.get("/api/v1/pins/review").status_code == 200
        assert browser.post(url + "/approve", json={}).status_code == 403
        assert browser.post(url + "/reject", json={}).status_code == 403
    assert api.client.post("/api/v1/pins/review/abcdef0123/approve", headers=bearer(admin)).status_code == 404

    # reject: the team keeps the clean definition, and the signed pin set says so
    r = api.client.post(url + "/reject", json={"tool": "read_note"}, headers=bearer(admin))
    assert r.status_code == 200, r.text
    note = _tool(r.json(), "read_note")
    assert note["status"] == "rejected" and note["pinned"] == CLEAN
    pin_set = api.client.get("/api/v1/pins", headers=bearer(read_key)).json()["pin_set"]
    assert 'Read a note by its title."' in pin_set and "x.example" not in pin_set

    # an owner approves the change after all: it becomes the team's pin
    owner = _signed_in(api, org, "owner@example.com", "owner")
    r = owner.post(url + "/approve", json={"tool": "read_note"})
    assert r.status_code == 200, r.text
    note = _tool(r.json(), "read_note")
    assert note["status"] == "pinned" and note["pinned"] == TARGETED
    assert note["drift"]  # alice was shown the clean one last
    assert _tool(r.json(), "list_notes")["pinned"] == OTHER
    assert owner.post(url + "/approve", json={}).status_code == 409


def test_the_pins_view_of_an_empty_store_is_empty(api: Api) -> None:
    _, _, read_key = api.org_with_keys("acme")
    r = api.client.get("/api/v1/pins/review", headers=bearer(read_key))
    assert r.status_code == 200 and r.json() == {"mode": "team", "items": []}
    assert api.client.get("/api/v1/pins/review").status_code == 401
