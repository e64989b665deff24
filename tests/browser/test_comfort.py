"""Everyday comfort of the dashboard in real headless Chromium (issue 14, item 4), against a real
`km serve` with traffic from real `km monitor` processes: one time format with its zone and a UTC
toggle, dark mode from the system preference, tables that scroll at 390 px, Sessions sorted and
filtered, refreshing by itself only while the tab is visible, downloads as JSON Lines and HAR,
and the smaller defects (organization switch, unknown paths, a session that ends by itself).

Set KM_SCREENSHOTS=<dir> to keep screenshots (docs/screenshots is made that way)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from km_helpers import OWNER_EMAIL, OWNER_PASSWORD, TOOL_SERVER, Team, chromium, km_cli, team_server

# the module's team server records three real km monitor sessions first: on a loaded machine that
# alone can take a minute
pytestmark = pytest.mark.timeout(300)


def _call(i: int, tool: str, text: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": tool, "arguments": {"text": text}}}) + b"\n"  # fmt: skip


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with team_server(tmp_path_factory.mktemp("comfort")) as team:
        env = team.monitor_env()
        for name, lines in (
            ("filesystem", [_call(1, "read_file", "a")]),
            ("mailer", [_call(i, "send_mail", f"mail {i}") for i in range(1, 6)]),
            ("search-tools", [_call(1, "search", "x"), _call(2, "search", "y")]),
        ):
            km_cli("monitor", "--name", name, "--", sys.executable, str(TOOL_SERVER), env=env,
                   stdin=b"".join(lines))  # fmt: skip
        km_cli("sync", env=env)
        yield team


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _signed_in(context: BrowserContext, team: Team) -> Page:
    page = context.new_page()
    page.goto(team.base + "/login")
    page.get_by_test_id("login-email").fill(OWNER_EMAIL)
    page.get_by_test_id("login-password").fill(OWNER_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("org-name").first).to_have_text("acme")
    return page


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Paris")
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, team: Team) -> Iterator[Page]:
    page = _signed_in(context, team)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    yield page
    assert problems == []


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("KM_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(400)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def _sessions(page: Page, base: str) -> list[dict[str, Any]]:
    r = page.request.get(base + "/api/v1/sessions")
    assert r.ok, r.text()
    return list(r.json()["items"])


def _started(session: dict[str, Any], hours: int) -> str:
    utc = datetime.fromisoformat(session["started_at"].replace("Z", "+00:00"))
    return (utc + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")


def test_one_time_format_with_its_zone_and_a_utc_toggle(page: Page, team: Team) -> None:
    page.get_by_test_id("nav-sessions").click()
    newest = _sessions(page, team.base)[0]
    row = page.locator(f'[data-testid="session-row"][data-session-id="{newest["id"]}"]')
    started = row.get_by_test_id("session-started")
    # Paris in winter is UTC+1; the zone is named on every time
    expect(started).to_have_text(f"{_started(newest, 1)} GMT+1")
    page.get_by_test_id("zone-utc").click()
    expect(started).to_have_text(f"{_started(newest, 0)} UTC")
    expect(page.get_by_test_id("zone-utc")).to_have_attribute("aria-pressed", "true")
    page.reload()  # remembered
    expect(started).to_have_text(f"{_started(newest, 0)} UTC")
    page.get_by_test_id("nav-overview").click()
    expect(page.get_by_test_id("chart-traffic").get_by_test_id("chart-zone")).to_contain_text("UTC")
    page.get_by_test_id("zone-local").click()
    expect(page.get_by_test_id("chart-traffic").get_by_test_id("chart-zone")).to_contain_text("GMT+1")


def test_dark_mode_follows_the_system_preference(browser: Browser, team: Team) -> None:
    for scheme, background in (("dark", "rgb(15, 18, 22)"), ("light", "rgb(246, 247, 249)")):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
        try:
            page = _signed_in(context, team)
            color = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
            assert color == background, (scheme, color)
            if scheme == "dark":
                card = page.get_by_test_id("card-error-rate")
                expect(card).to_be_visible()
                assert card.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(23, 27, 33)"
                shot(page, "overview-dark")
                page.goto(team.base + "/sessions")
                expect(page.get_by_test_id("session-row").first).to_be_visible()
                shot(page, "sessions-dark")
        finally:
            context.close()


def test_tables_scroll_sideways_at_390_px_instead_of_breaking_words(browser: Browser, team: Team) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = _signed_in(context, team)
        page.goto(team.base + "/sessions")
        table = page.get_by_test_id("sessions-table")
        expect(table.get_by_test_id("session-row").first).to_be_visible()
        wrap = table.locator("xpath=..")
        sizes = wrap.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert sizes[0] > sizes[1], sizes  # the table scrolls inside its card
        # the page itself does not scroll sideways
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # a time is one line, not broken into pieces
        started = table.locator("tbody tr").first.locator("td").nth(2)  # Started
        expect(started).to_contain_text(":")
        lines = started.evaluate(
            "e => { const r = document.createRange(); r.selectNodeContents(e);"
            " return r.getClientRects().length; }"
        )
        assert lines == 1
        # every column is there: scrolled to the end, the last one is on screen
        wrap.evaluate("e => { e.scrollLeft = e.scrollWidth; }")
        last = table.locator("thead th").last
        box = last.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 391, box
        shot(page, "sessions-390px")
    finally:
        context.close()


def _column(page: Page, index: int) -> list[str]:
    rows = page.get_by_test_id("session-row")
    return [rows.nth(i).locator("td").nth(index).inner_text() for i in range(rows.count())]


def test_sessions_sort_and_filter_by_server_client_status_and_range(page: Page, team: Team) -> None:
    page.goto(team.base + "/sessions")
    rows = page.get_by_test_id("session-row")
    expect(rows).to_have_count(3)
    page.get_by_test_id("sessions-filter-server").fill("MAIL")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("mailer")
    assert "server=MAIL" in page.url
    page.reload()  # the view is in the URL
    expect(page.get_by_test_id("sessions-filter-server")).to_have_value("MAIL")
    expect(rows).to_have_count(1)
    page.get_by_test_id("sessions-filter-server").fill("")
    expect(rows).to_have_count(3)
    page.get_by_test_id("sessions-filter-client").fill("no such client")
    expect(rows).to_have_count(0)
    expect(page.get_by_test_id("empty")).to_contain_text("No loaded session matches")
    page.get_by_test_id("sessions-filter-client").fill("")
    page.get_by_test_id("sessions-filter-status").select_option("running")
    expect(rows).to_have_count(0)
    page.get_by_test_id("sessions-filter-status").select_option("ended")
    expect(rows).to_have_count(3)
    page.get_by_test_id("sessions-filter-errors").check()
    expect(rows).to_have_count(0)
    page.get_by_test_id("sessions-filter-errors").uncheck()
    page.get_by_test_id("sessions-range").get_by_test_id("range-15m").click()
    expect(rows).to_have_count(3)  # all recorded just now
    assert "range=15m" in page.url

    page.get_by_test_id("sort-events").click()  # most events first
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Events")
    counts = [int(c) for c in _column(page, 4)]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1], counts
    page.get_by_test_id("sort-events").click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Events")
    counts = [int(c) for c in _column(page, 4)]
    assert counts == sorted(counts), counts
    page.get_by_test_id("sort-server").click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Server")
    assert _column(page, 1) == ["filesystem", "mailer", "search-tools"]


def _hide(page: Page, hidden: bool) -> None:
    state = "hidden" if hidden else "visible"
    page.evaluate(
        "state => { Object.defineProperty(document, 'visibilityState',"
        " {configurable: true, get: () => state});"
        " document.dispatchEvent(new Event('visibilitychange')); }",
        state,
    )


def test_sessions_refresh_by_themselves_only_while_the_tab_is_visible(page: Page, team: Team) -> None:
    page.clock.install()
    page.clock.resume()  # time flows (Preact's effects run on animation frames); we jump ahead below
    page.goto(team.base + "/sessions")
    rows = page.get_by_test_id("session-row")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 3
    team.record([_call(1, "fresh", "new")], name="arrives-later")
    page.clock.fast_forward("00:31")
    expect(page.locator('[data-testid="session-row"]', has_text="arrives-later")).to_have_count(1)

    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/sessions" in r.url else None)
    _hide(page, True)
    page.clock.fast_forward("01:05")
    page.wait_for_timeout(300)
    assert asked == []  # a hidden tab asks the server for nothing
    with page.expect_request(re.compile(r"/api/v1/sessions\?")):
        _hide(page, False)  # back: refreshed at once, the interval having passed unseen


def test_overview_refreshes_by_itself(page: Page, team: Team) -> None:
    page.clock.install()
    page.clock.resume()
    page.goto(team.base + "/overview")
    value = page.get_by_test_id("card-error-rate")
    expect(value).to_be_visible()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/v1/stats" in r.url else None)
    with page.expect_request(re.compile(r"/api/v1/stats\?")):
        page.clock.fast_forward("00:31")
    assert asked


def test_download_a_session_and_a_search_as_jsonl_and_har(page: Page, team: Team) -> None:
    page.goto(team.base + "/sessions?server=mailer")
    row = page.get_by_test_id("session-row")
    expect(row).to_have_count(1)
    with page.expect_download() as info:
        row.get_by_test_id("session-download-jsonl").click()
    download = info.value
    assert re.fullmatch(r"km-session-[0-9a-f]{8}\.jsonl", download.suggested_filename)
    records = [orjson.loads(line) for line in Path(download.path()).read_bytes().splitlines()]
    assert records[0]["record"] == "session" and records[0]["name"] == "mailer"
    calls = [r for r in records if r.get("method") == "tools/call" and r["kind"] == "request"]
    assert len(calls) == 5

    page.goto(team.base + "/search?tool=search")
    expect(page.get_by_test_id("search-results")).to_be_visible()
    with page.expect_download() as info:
        page.get_by_test_id("search-download-har").click()
    download = info.value
    assert download.suggested_filename.startswith("km-search-") and download.suggested_filename.endswith(
        ".har"
    )
    har = orjson.loads(Path(download.path()).read_bytes())
    assert [e["request"]["url"].rsplit("/", 1)[-1] for e in har["log"]["entries"]] == ["search", "search"]


def test_search_offers_relative_ranges(page: Page, team: Team) -> None:
    page.goto(team.base + "/search")
    page.get_by_test_id("search-range").get_by_test_id("range-1h").click()
    page.wait_for_url(re.compile(r"range=1h"))
    expect(page.get_by_test_id("search-range").get_by_test_id("range-1h")).to_have_attribute(
        "aria-pressed", "true"
    )
    since = page.get_by_test_id("filter-since").input_value()
    assert since, "the form shows the range's start"
    expect(page.get_by_test_id("search-results")).to_be_visible()


def test_switching_organization_shows_the_new_ones_figures(page: Page, team: Team) -> None:
    km_cli("admin", "create-org", "beta", "--plan", "unlimited", "--db", team.db)
    km_cli("admin", "create-user", OWNER_EMAIL, "--org", "beta", "--role", "owner", "--db", team.db)
    page.goto(team.base + "/overview?range=24h")
    hint = page.get_by_test_id("card-events-per-min").locator(".stat-hint")
    expect(hint).to_contain_text(re.compile(r"\b[1-9][0-9]* events"))
    page.get_by_test_id("org-switch").select_option(label="beta")
    expect(page.get_by_test_id("org-name").first).to_have_text("beta")
    expect(hint).to_contain_text(re.compile(r"\b0 events"))
    page.get_by_test_id("org-switch").select_option(label="acme")
    expect(hint).to_contain_text(re.compile(r"\b[1-9][0-9]* events"))


def test_an_unknown_path_shows_the_apps_not_found_page(page: Page, team: Team) -> None:
    response = page.goto(team.base + "/no/such/page")
    assert response is not None and response.status == 404
    expect(page.get_by_test_id("page-notfound")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text('"error"')


def test_a_session_that_ends_by_itself_is_explained_on_the_sign_in_page(
    context: BrowserContext, page: Page, team: Team
) -> None:
    page.goto(team.base + "/sessions")
    expect(page.get_by_test_id("session-row").first).to_be_visible()
    context.clear_cookies()  # as when the web session expires
    page.get_by_test_id("nav-search").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    expect(page.get_by_test_id("session-ended")).to_contain_text("Your session ended")
    assert "next=%2Fsearch" in page.url
    # signing out on purpose says nothing of the kind
    page.get_by_test_id("login-email").fill(OWNER_EMAIL)
    page.get_by_test_id("login-password").fill(OWNER_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url("**/search")
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("login-form")).to_be_visible()
    expect(page.get_by_test_id("session-ended")).to_have_count(0)
