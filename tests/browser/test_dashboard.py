"""The dashboard in real headless Chromium (Debian's package, driven by Playwright), against a real
`km serve`, with traffic recorded by real `km monitor` processes uploading to it.

Set KM_SCREENSHOTS=<dir> to keep a screenshot of every page (docs/screenshots is made that way).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from km_helpers import (
    KM,
    OWNER_EMAIL,
    OWNER_PASSWORD,
    TOOL_SERVER,
    Team,
    chromium,
    signed_in_page,
    team_server,
)
from km_helpers import km_cli as km

EMAIL, PASSWORD = OWNER_EMAIL, OWNER_PASSWORD
SERVER = TOOL_SERVER
XSS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=1</script>",
    '"><svg onload=window.__xss=1>',
    "javascript:window.__xss=1",
    "</textarea><iframe src=javascript:window.__xss=1>",
    "{{constructor.constructor('window.__xss=1')()}}",
    '<a href="javascript:window.__xss=1">click</a>',
    "<style>@import 'http://evil.example/x.css';</style>",
]


def _call(i: int, tool: str, text: str) -> bytes:
    import orjson

    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": tool, "arguments": {"text": text}}}) + b"\n"  # fmt: skip


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with team_server(tmp_path_factory.mktemp("team")) as team:
        team.record([_call(1, "read_file", "hello"), _call(2, "search", "world")], name="filesystem")
        yield team


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Browser, team: Team) -> Iterator[Page]:
    with signed_in_page(browser, team) as (page, problems):
        yield page
        assert problems == []
        assert page.evaluate("window.__xss") is None


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("KM_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(400)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def test_sign_in_is_required(browser: Browser, team: Team) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(team.base + "/sessions")
    page.wait_for_url("**/login?next=*")
    page.get_by_test_id("login-email").fill(EMAIL)
    page.get_by_test_id("login-password").fill("wrong password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("error-banner")).to_be_visible()
    shot(page, "login")
    context.close()


def test_a_signed_in_first_load_takes_its_preloaded_who_am_i(page: Page, team: Team) -> None:
    """The page's preload of /auth/me is what the app uses: one request, started by the link
    while the script loaded (a fetch the preload did not match would be a second one)."""
    page.goto(team.base + "/sessions")
    expect(page.get_by_test_id("page-sessions")).to_be_visible()
    expect(page.get_by_test_id("org-name").first).to_have_text("acme")
    initiators = page.evaluate(
        "() => performance.getEntriesByType('resource')"
        ".filter(r => new URL(r.name).pathname === '/auth/me').map(r => r.initiatorType)"
    )
    assert initiators == ["link"]


def test_a_page_asks_for_its_data_in_the_render_that_shows_it(page: Page, team: Team) -> None:
    """A page's requests leave in the commit of the render that mounts it, not after the next
    frame (an effect waits for one: tens of milliseconds of every first load). With the page's
    clock paused, no frame runs, and the data still comes."""
    page.clock.install()
    page.goto(team.base + "/sessions")
    expect(page.get_by_test_id("session-row").first).to_be_visible()
    page.clock.pause_at(datetime.now() + timedelta(hours=1))  # no frame nor timer runs from here
    page.get_by_test_id("session-row").first.click()
    expect(page.get_by_test_id("inspector-row").first).to_be_visible()
    expect(page.get_by_test_id("session-findings")).to_be_visible()
    page.get_by_test_id("nav-overview").click()
    expect(page.get_by_test_id("card-events-per-min-value")).not_to_be_empty()
    page.clock.resume()


def test_a_call_through_km_monitor_appears_live(page: Page, team: Team) -> None:
    page.get_by_test_id("nav-live").click()
    expect(page.get_by_test_id("live-status")).to_contain_text("connected")
    monitor = subprocess.Popen(
        [KM, "monitor", "--name", "live", "--", sys.executable, str(SERVER)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=team.monitor_env(),
    )  # fmt: skip
    assert monitor.stdin is not None and monitor.stdout is not None
    monitor.stdin.write(_call(6, "warm_up", "x"))
    monitor.stdin.flush()
    monitor.stdout.readline()  # km and the server are up
    started = time.monotonic()
    monitor.stdin.write(_call(7, "live_probe", "now"))
    monitor.stdin.flush()
    row = page.get_by_test_id("live-row").filter(has_text="live_probe").first
    expect(row).to_be_visible(timeout=10_000)
    elapsed = time.monotonic() - started
    print(f"call visible in the browser {elapsed * 1000:.0f} ms after it was made")
    monitor.stdin.close()
    assert monitor.wait(30) == 0
    shot(page, "live")
    page.get_by_test_id("pause-button").click()
    team.record([_call(8, "while_paused", "x")], name="live")
    expect(page.get_by_test_id("buffered-count")).to_contain_text("new", timeout=10_000)
    page.get_by_test_id("pause-button").click()
    expect(page.get_by_test_id("live-row").filter(has_text="while_paused").first).to_be_visible()


def test_search_filters_and_shareable_url(page: Page, team: Team) -> None:
    page.get_by_test_id("nav-search").click()
    page.get_by_test_id("filter-tool").fill("search")
    page.get_by_test_id("filter-submit").click()
    page.wait_for_url("**tool=search**")
    results = page.get_by_test_id("search-result")
    expect(results.first).to_be_visible()
    assert all("search" in t for t in results.all_inner_texts())
    shot(page, "search")
    page.reload()
    expect(page.get_by_test_id("filter-tool")).to_have_value("search")


def test_session_waterfall_and_event_detail(page: Page, team: Team) -> None:
    page.get_by_test_id("nav-sessions").click()
    page.get_by_test_id("session-row").filter(has_text="filesystem").first.click()
    page.wait_for_url("**/sessions/**")
    bars = page.get_by_test_id("waterfall-bar")
    expect(bars.first).to_be_visible()
    assert bars.count() == 2
    shot(page, "session")
    bars.first.click()
    page.wait_for_url("**/events/**")
    expect(page.get_by_test_id("payload-pretty")).to_contain_text("read_file")
    expect(page.get_by_test_id("paired-event-link")).to_be_visible()
    shot(page, "event")


def test_overview_and_analytics_render_charts(page: Page) -> None:
    page.get_by_test_id("nav-overview").click()
    expect(page.get_by_test_id("card-events-per-min")).to_be_visible()
    expect(page.locator(".uplot").first).to_be_visible()
    shot(page, "overview")
    page.get_by_test_id("nav-analytics").click()
    page.get_by_test_id("analytics-tool-row").first.click()
    expect(page.get_by_test_id("tool-est-tokens").first).to_be_visible()
    shot(page, "analytics")


def test_overview_protocol_radar(page: Page, team: Team) -> None:
    """The deprecation radar panel (issue 12, item 4): a client that still uses the initialize
    handshake and ping is listed with those features; the radar of km stats, read over the API."""
    import orjson

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"clientInfo": {"name": "old-client"}},
    }
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    team.record([orjson.dumps(init) + b"\n", orjson.dumps(ping) + b"\n"], name="legacy")
    page.get_by_test_id("nav-overview").click()
    page.reload()  # signing in showed the Overview before this session existed
    panel = page.get_by_test_id("radar")
    expect(panel).to_be_visible()
    row = panel.get_by_test_id("radar-row").filter(has_text="old-client")
    expect(row.get_by_test_id("radar-feature-handshake")).to_have_text("initialize handshake and sessions")
    expect(row.get_by_test_id("radar-feature-ping")).to_be_visible()
    expect(panel.get_by_test_id("radar-summary")).to_contain_text("still rel")
    shot(page, "radar")


def test_create_and_revoke_an_api_key(page: Page, team: Team) -> None:
    page.get_by_test_id("nav-settings").click()
    expect(page.get_by_test_id("key-row").first).to_be_visible()
    before = page.get_by_test_id("revoke-key").count()
    page.get_by_test_id("key-scope").select_option("read")
    page.get_by_test_id("create-key").click()
    key = page.get_by_test_id("new-key").inner_text().strip()
    assert key.startswith("km_live_")
    assert (
        httpx.get(team.base + "/api/v1/sessions", headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )
    expect(page.get_by_test_id("revoke-key")).to_have_count(before + 1)
    shot(page, "settings")
    page.get_by_test_id("key-row").filter(has_text=key[:12]).get_by_test_id("revoke-key").click()
    page.get_by_test_id("confirm-revoke").click()
    expect(page.get_by_test_id("revoke-key")).to_have_count(before)
    assert (
        httpx.get(team.base + "/api/v1/sessions", headers={"Authorization": f"Bearer {key}"}).status_code
        == 401
    )


def test_members_create_ingest_keys_viewers_only_read(browser: Browser, team: Team) -> None:
    for email, role in (("max@example.com", "member"), ("vic@example.com", "viewer")):
        km("admin", "create-user", email, "--org", "acme", "--role", role, "--password", PASSWORD,
           "--db", team.db)  # fmt: skip
        context = browser.new_context()
        page = context.new_page()
        page.goto(team.base + "/login")
        page.get_by_test_id("login-email").fill(email)
        page.get_by_test_id("login-password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("nav-settings").click()
        expect(page.get_by_test_id("read-only-note")).to_contain_text(role)
        if role == "member":
            options = page.get_by_test_id("key-scope").locator("option").all_inner_texts()
            assert options == ["ingest"]
            page.get_by_test_id("create-key").click()
            assert page.get_by_test_id("new-key").inner_text().strip().startswith("km_live_")
            expect(page.get_by_test_id("key-row")).to_have_count(1)  # only the member's own key
        else:
            expect(page.get_by_test_id("key-settings")).to_have_count(0)
        expect(page.get_by_test_id("page-settings")).to_be_visible()
        expect(page.get_by_test_id("member-settings")).to_have_count(0)  # e-mails and roles: admins only
        context.close()


def test_an_existing_user_accepts_an_invitation_with_their_own_password(
    page: Page, browser: Browser, team: Team
) -> None:
    email, own = "ivy@example.com", "ivys own password"
    km("admin", "create-org", "elsewhere", "--db", team.db)
    km(
        "admin",
        "create-user",
        email,
        "--org",
        "elsewhere",
        "--role",
        "member",
        "--password",
        own,
        "--db",
        team.db,
    )
    page.get_by_test_id("nav-settings").click()
    page.get_by_test_id("member-email").fill(email)
    page.get_by_test_id("member-role").select_option("viewer")
    page.get_by_test_id("member-password").fill("chosen by acme")
    page.get_by_test_id("add-member").click()
    row = page.get_by_test_id("member-row").filter(has_text=email)
    expect(row.get_by_test_id("member-invited")).to_be_visible()

    context = browser.new_context()
    ivy = context.new_page()
    ivy.goto(team.base + "/login")
    ivy.get_by_test_id("login-email").fill(email)
    ivy.get_by_test_id("login-password").fill("chosen by acme")  # never applied to Ivy's account
    ivy.get_by_test_id("login-submit").click()
    expect(ivy.get_by_test_id("error-banner")).to_be_visible()
    ivy.get_by_test_id("login-password").fill(own)
    ivy.get_by_test_id("login-submit").click()
    expect(ivy.get_by_test_id("org-name").first).to_have_text("elsewhere")
    ivy.get_by_test_id("nav-settings").click()
    invitation = ivy.get_by_test_id("invitation")
    expect(invitation).to_contain_text("acme")
    invitation.get_by_test_id("accept-invitation").click()
    expect(ivy.get_by_test_id("invitations")).to_have_count(0)
    expect(ivy.get_by_test_id("org-switch").locator("option")).to_have_text(["acme", "elsewhere"])
    context.close()
    page.reload()
    expect(row.get_by_test_id("member-invited")).to_have_count(0)


def test_onboarding_turns_green_on_the_first_event(page: Page, team: Team) -> None:
    page.get_by_test_id("nav-onboarding").click()
    status = page.get_by_test_id("first-event-status")
    expect(status).to_contain_text("waiting")
    page.get_by_test_id("onboarding-create-key").click()
    key = page.get_by_test_id("new-key").inner_text().strip()
    commands = page.get_by_test_id("onboarding-commands")
    expect(commands).to_contain_text(f"km init --api-url {team.base} --api-key -")
    expect(commands).not_to_contain_text(key)  # a key on the command line stays in the history
    expect(commands).not_to_contain_text("pip install kilometers")  # not published
    page.wait_for_timeout(500)
    team.record([_call(1, "first", "event")], name="onboarding")
    expect(status).to_contain_text("received", timeout=10_000)
    shot(page, "onboarding")


def test_xss_payloads_stay_inert_in_every_view(page: Page, team: Team) -> None:
    page.get_by_test_id("nav-live").click()
    expect(page.get_by_test_id("live-status")).to_contain_text("connected")
    team.record([_call(i, f"xss_{i}", payload) for i, payload in enumerate(XSS)], name="<b>evil</b>")
    expect(page.get_by_test_id("live-row").filter(has_text="xss_0").first).to_be_visible(timeout=10_000)
    for view in ("search", "sessions"):
        page.get_by_test_id(f"nav-{view}").click()
        page.wait_for_timeout(500)
    page.get_by_test_id("session-row").filter(has_text="evil").first.click()
    page.get_by_test_id("waterfall-bar").first.click()
    expect(page.get_by_test_id("payload-pretty")).to_contain_text("onerror")  # shown, as text
    page.get_by_test_id("nav-search").click()
    page.get_by_test_id("filter-q").fill("svg onload")
    page.get_by_test_id("filter-submit").click()
    expect(page.get_by_test_id("search-result").first).to_be_visible()
    page.wait_for_timeout(500)
    assert page.locator("img[src='x'], svg[onload], iframe, script:not([src])").count() == 0
    assert page.evaluate("window.__xss") is None
