"""Access ends when access ends (issue 14, item 1), in real headless Chromium against two real
`km serve` processes on one real PostgreSQL: a Live page whose viewer is removed or signed out
through the other process ends within seconds; the last owner cannot demote themselves (and is
asked first, and told why); sign-in is throttled with a clear message; the plan's usage, the
near/over-limit banner and the session cut by the limit (partial) are shown, and `km status`
says why uploads stop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from km_helpers import KM, chromium, km_serve
from km_helpers import km_cli as km
from pg import Cluster, remove_cluster, start_cluster

PASSWORD = "correct horse battery"
OWNER = "owner@example.com"
SERVER = Path(__file__).parent / "tool_server.py"
ENDS_WITHIN_MS = 5_000


@dataclass
class Servers:
    db: str
    first: str
    """The browser's server."""
    second: str
    """Where the changes are made (another process on the same database)."""
    ingest_key: str
    home: Path

    def monitor_env(self, key: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        env.update(KM_HOME=str(self.home), KM_API_URL=self.second, KM_API_KEY=key or self.ingest_key,
                   KM_UPLOAD_INTERVAL="0.1")  # fmt: skip
        return env


def _call(i: int, tool: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": tool, "arguments": {"text": "x"}}}) + b"\n"  # fmt: skip


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = start_cluster()
    yield c
    remove_cluster(c)


@pytest.fixture(scope="module")
def servers(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    db = cluster.create_database("km_browser_access")
    km("db", "upgrade", "--db", db)
    km("admin", "create-org", "acme", "--plan", "unlimited", "--db", db)
    km("admin", "create-user", OWNER, "--org", "acme", "--role", "owner", "--password", PASSWORD, "--db", db)
    key = km("admin", "create-key", "--org", "acme", "--scope", "ingest", "--db", db)
    home = tmp_path_factory.mktemp("access") / "home"
    home.mkdir()
    with km_serve(db) as first, km_serve(db) as second:
        yield Servers(db, first, second, key, home)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _user(s: Servers, email: str, role: str, org: str = "acme") -> None:
    km("admin", "create-user", email, "--org", org, "--role", role, "--password", PASSWORD, "--db", s.db)


def _signed_in_page(browser: Browser, base: str, email: str) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(base + "/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("org-name").first).to_be_visible()
    return page


def _api_client(base: str, email: str) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=base, timeout=10)
    r = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client, {"X-CSRF-Token": r.json()["csrf_token"]}


def _live(page: Page, s: Servers, tool: str) -> None:
    """The Live page is open, connected, and shows a call made now."""
    page.get_by_test_id("nav-live").click()
    expect(page.get_by_test_id("live-status")).to_contain_text("connected")
    km("monitor", "--name", "live", "--", sys.executable, str(SERVER), env=s.monitor_env(),
       stdin=_call(1, tool))  # fmt: skip
    km("sync", env=s.monitor_env())
    expect(page.get_by_test_id("live-row").filter(has_text=tool).first).to_be_visible(timeout=10_000)


def test_a_removed_viewers_live_page_ends(browser: Browser, servers: Servers) -> None:
    _user(servers, "removed@example.com", "viewer")
    page = _signed_in_page(browser, servers.first, "removed@example.com")
    _live(page, servers, "before_removal")
    owner, h = _api_client(servers.second, OWNER)
    uid = next(m["user_id"] for m in owner.get("/api/v1/members").json()["items"]
               if m["email"] == "removed@example.com")  # fmt: skip
    assert owner.delete(f"/api/v1/members/{uid}", headers=h).status_code == 204
    # the stream ends, the page cannot reopen it: back to sign-in, within seconds
    page.wait_for_url("**/login**", timeout=ENDS_WITHIN_MS)
    owner.close()
    page.context.close()


def test_a_signed_out_users_live_page_ends(browser: Browser, servers: Servers) -> None:
    _user(servers, "leaver@example.com", "viewer")
    page = _signed_in_page(browser, servers.first, "leaver@example.com")
    _live(page, servers, "before_sign_out")
    # the same sign-in ends through the other server (e.g. "sign out" in another tab behind a
    # load balancer): the browser's cookie, the CSRF token it was given
    cookie = next(c for c in page.context.cookies() if c["name"] == "km_session")
    csrf = page.evaluate("fetch('/auth/me').then(r => r.json()).then(m => m.csrf_token)")
    r = httpx.post(servers.second + "/auth/logout", cookies={"km_session": cookie["value"]},
                   headers={"X-CSRF-Token": csrf})  # fmt: skip
    assert r.status_code == 204
    page.wait_for_url("**/login**", timeout=ENDS_WITHIN_MS)
    page.context.close()


def test_a_role_change_reopens_the_live_stream_with_the_new_role(browser: Browser, servers: Servers) -> None:
    _user(servers, "promoted@example.com", "viewer")
    page = _signed_in_page(browser, servers.first, "promoted@example.com")
    _live(page, servers, "before_role_change")
    owner, h = _api_client(servers.second, OWNER)
    uid = next(m["user_id"] for m in owner.get("/api/v1/members").json()["items"]
               if m["email"] == "promoted@example.com")  # fmt: skip
    # the stream opened as a viewer ends, and a new one opens as a member
    reopened = lambda r: "/api/v1/live" in r.url and r.status == 200  # noqa: E731
    with page.expect_response(reopened, timeout=ENDS_WITHIN_MS + 2_000):
        assert owner.patch(f"/api/v1/members/{uid}", json={"role": "member"}, headers=h).status_code == 200
    expect(page.get_by_test_id("live-status")).to_contain_text("connected")
    assert "/login" not in page.url
    km("monitor", "--name", "live", "--", sys.executable, str(SERVER), env=servers.monitor_env(),
       stdin=_call(2, "after_role_change"))  # fmt: skip
    km("sync", env=servers.monitor_env())
    expect(page.get_by_test_id("live-row").filter(has_text="after_role_change").first).to_be_visible()
    owner.close()
    page.context.close()


def test_the_last_owner_is_asked_and_refused(browser: Browser, servers: Servers) -> None:
    page = _signed_in_page(browser, servers.first, OWNER)
    page.get_by_test_id("nav-settings").click()
    own = page.get_by_test_id("member-row").filter(has_text="(you)")
    select = own.get_by_test_id("member-role-select")
    expect(select).to_have_value("owner")
    select.select_option("viewer")
    # nothing is sent yet: a change of one's own role asks first
    confirm = own.get_by_test_id("confirm-own-role")
    expect(confirm).to_contain_text("your own role")
    owner, _ = _api_client(servers.second, OWNER)
    assert owner.get("/auth/me").json()["role"] == "owner"
    own.get_by_test_id("cancel-own-role-change").click()
    expect(confirm).to_have_count(0)
    expect(select).to_have_value("owner")
    # confirmed: the server refuses, and the page says why and what to do
    select.select_option("viewer")
    own.get_by_test_id("confirm-own-role-change").click()
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_contain_text("last owner")
    expect(banner).to_contain_text("Make another member owner first")
    expect(select).to_have_value("owner")
    assert owner.get("/auth/me").json()["role"] == "owner"
    page.reload()
    expect(page.get_by_test_id("member-row").filter(has_text="(you)").get_by_test_id("member-role-select")
           ).to_have_value("owner")  # fmt: skip
    owner.close()
    page.context.close()


def test_quota_meter_banner_partial_session_and_km_status(browser: Browser, servers: Servers) -> None:
    db = servers.db
    km("admin", "create-org", "small", "--plan", "free", "--db", db)
    _user(servers, "small@example.com", "owner", org="small")
    key = km("admin", "create-key", "--org", "small", "--scope", "ingest", "--db", db)
    home = servers.home.parent / "small-home"
    home.mkdir()
    env = {**servers.monitor_env(key), "KM_HOME": str(home)}

    def record(name: str, calls: int) -> None:
        km("monitor", "--name", name, "--", sys.executable, str(SERVER), env=env,
           stdin=b"".join(_call(i, f"{name}_tool") for i in range(calls)))  # fmt: skip

    record("first", 2)
    km("sync", env=env)
    used = _used(servers, "small@example.com")
    # the limit is set so that this is 80 %: near it
    km("admin", "set-limits", "--org", "small", "--events-per-month", str(used * 5 // 4), "--db", db)
    page = _signed_in_page(browser, servers.first, "small@example.com")
    expect(page.get_by_test_id("quota-banner")).to_have_attribute("data-state", "near")
    expect(page.get_by_test_id("overview-usage")).to_contain_text(f"{used} of {used * 5 // 4} events")
    # exactly at the limit: over; the next session is refused (402) and kept locally
    km("admin", "set-limits", "--org", "small", "--events-per-month", str(used), "--db", db)
    # uploaded through the other process, which has not cached this key's organization (and so
    # its old limit: a server reads limits again after `auth_cache_seconds`)
    env = {**env, "KM_API_URL": servers.first}
    record("cut", 2)
    result = subprocess.run([KM, "sync"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "402" in result.stderr, result.stderr
    assert result.stdout == ""
    status = km("status", env=env)
    assert "over limit:" in status and "limit of" in status, status
    page.reload()
    banner = page.get_by_test_id("quota-banner")
    expect(banner).to_have_attribute("data-state", "over")
    expect(banner).to_contain_text("Monthly limit reached")
    page.get_by_test_id("nav-settings").click()
    expect(page.get_by_test_id("usage-meter")).to_have_attribute("data-state", "over")
    expect(page.get_by_test_id("usage-text")).to_contain_text(f"{used} of {used} events this month (100%)")
    page.get_by_test_id("nav-sessions").click()
    cut = page.get_by_test_id("session-row").filter(has_text="cut")
    expect(cut.get_by_test_id("session-partial")).to_be_visible()
    expect(cut).not_to_contain_text("running")
    first = page.get_by_test_id("session-row").filter(has_text="first")
    expect(first.get_by_test_id("session-partial")).to_have_count(0)
    cut.get_by_test_id("session-link").click()
    expect(page.get_by_test_id("session-partial")).to_be_visible()
    page.context.close()


def _used(s: Servers, email: str) -> int:
    client, _ = _api_client(s.second, email)
    try:
        return int(client.get("/api/v1/org").json()["usage"]["events"])
    finally:
        client.close()


def test_sign_in_is_throttled_with_a_clear_message(browser: Browser, servers: Servers) -> None:
    """Last in this module: it leaves this address throttled for new sign-ins for up to a minute."""
    _user(servers, "target@example.com", "viewer")
    context = browser.new_context()
    page = context.new_page()
    page.goto(servers.first + "/login")
    banner = page.get_by_test_id("error-banner")
    for attempt in range(12):
        page.get_by_test_id("login-email").fill("target@example.com")
        page.get_by_test_id("login-password").fill(f"wrong guess {attempt}")
        with page.expect_response("**/auth/login") as answer:
            page.get_by_test_id("login-submit").click()
        expect(banner).to_be_visible()
        if answer.value.status == 429:
            break
        assert answer.value.status == 401
    expect(banner).to_contain_text("too many failed sign-ins")
    expect(banner).to_contain_text("login_throttled")
    assert 5 <= attempt <= 8, attempt  # five mistakes cost nothing, then each one waits
    # the right password must wait too (from this address), with a bounded delay
    r = httpx.post(servers.first + "/auth/login", json={"email": "target@example.com", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "login_throttled"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    # the owner, who signed in from here before, is not locked out by someone else's guesses
    assert (
        httpx.post(servers.first + "/auth/login", json={"email": OWNER, "password": PASSWORD}).status_code
        == 200
    )
    context.close()
