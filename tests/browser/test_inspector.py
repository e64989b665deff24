"""The session inspector in real Chromium, against a real `km serve`, on a session of 20,000
events recorded by a real `km monitor`: the first and the last event reachable, filtering within
the session, request and answer in the side panel, the JSON tree, images, linked notifications,
and hostile payloads rendered inert and visible.

Set KM_SCREENSHOTS=<dir> to keep a screenshot (docs/screenshots/inspector.png is made that way).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from km_helpers import KM, Team, chromium, km_cli, signed_in_page, team_server

SERVER = Path(__file__).with_name("inspector_server.py")
CALLS = 9_995  # with the calls below, their answers and the notifications: 20,003 events
HOSTILE = (
    '<img src=x onerror="window.__xss=1"> hostile \u202eevil\u202c zero\u200bwidth\u2066iso\u2069 '
    + "L" * 5000
)


def _call(i: int, tool: str, text: str, **params: object) -> bytes:
    message = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
               "params": {"name": tool, "arguments": {"text": text}, **params}}  # fmt: skip
    return orjson.dumps(message) + b"\n"


def _lines() -> list[bytes]:
    lines = [orjson.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                           "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                                      "clientInfo": {"name": "inspector-test"}}}) + b"\n"]  # fmt: skip
    lines.append(_call(1, "configure", "the very first call", _meta={"progressToken": "tok-1"}))
    lines.append(_call(2, "screenshot", "take one"))
    lines.append(_call(3, "echo", HOSTILE))
    lines.append(orjson.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                               "params": {"requestId": 3, "reason": "user gave up"}}) + b"\n")  # fmt: skip
    lines += [
        _call(i, "search", f"needle {i}" if i % 1000 == 0 else f"query {i}") for i in range(4, 4 + CALLS)
    ]
    lines.append(_call(4 + CALLS, "last_call", "the very last call"))
    return lines


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    with team_server(tmp_path_factory.mktemp("team")) as team:
        env = team.monitor_env()
        # 20,000 events: more time than km_cli's 2 minutes on a busy machine
        command = [KM, "monitor", "--name", "inspected", "--", sys.executable, str(SERVER)]
        done = subprocess.run(command, input=b"".join(_lines()), capture_output=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr.decode()
        km_cli("sync", env=env)
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


def _open_session(page: Page) -> None:
    page.get_by_test_id("nav-sessions").click()
    page.get_by_test_id("session-row").filter(has_text="inspected").first.get_by_test_id(
        "session-link"
    ).click()
    page.wait_for_url("**/sessions/**")
    expect(page.get_by_test_id("inspector")).to_be_visible()
    expect(page.get_by_test_id("inspector-loading")).to_have_count(0, timeout=60_000)


def _row(page: Page, text: str) -> object:
    return page.get_by_test_id("inspector-row").filter(has_text=text)


def test_the_whole_session_is_reachable(page: Page) -> None:
    _open_session(page)
    count = page.get_by_test_id("inspector-count")
    # 10,000 calls (request + answer), 2 progress notifications and one cancellation: 20,003 events
    expect(count).to_have_attribute("data-total", str(CALLS + 5 + 3))
    rows = page.get_by_test_id("inspector-row")
    expect(rows.first).to_contain_text("initialize")  # the session's start, at the top
    assert rows.count() < 200  # virtualised: only the rows in view are in the DOM

    page.get_by_test_id("jump-last").click()
    last = page.get_by_test_id("inspector-row").filter(has_text="last_call")
    expect(last).to_be_visible()
    last.click()
    panel = page.get_by_test_id("inspector-panel")
    expect(page.get_by_test_id("panel-title")).to_contain_text("tools/call last_call")
    expect(page.get_by_test_id("tool-text")).to_have_text("you said: the very last call")
    expect(page.get_by_test_id("panel-next")).to_be_disabled()
    page.get_by_test_id("panel-prev").click()
    expect(page.get_by_test_id("panel-title")).to_contain_text("search")
    expect(panel).not_to_have_attribute("data-event-id", last.get_attribute("data-event-id") or "?")

    page.get_by_test_id("jump-first").click()
    expect(page.get_by_test_id("inspector-row").filter(has_text="initialize")).to_be_visible()

    # zoom: the window over the whole session narrows, then covers it again
    window = page.get_by_test_id("timeline-window")
    full = window.bounding_box()
    page.get_by_test_id("zoom-in").click()
    page.get_by_test_id("zoom-in").click()
    zoomed = window.bounding_box()
    assert full and zoomed and zoomed["width"] < full["width"] / 3
    page.get_by_test_id("zoom-fit").click()
    expect(page.get_by_test_id("zoom-fit")).to_be_disabled()


def test_filter_select_and_the_panel(page: Page) -> None:
    _open_session(page)
    page.get_by_test_id("inspector-filter").fill("needle")
    count = page.get_by_test_id("inspector-count")
    expect(count).to_have_attribute("data-shown", "9")  # needle 1000 … needle 9000 (in the payloads)
    rows = page.get_by_test_id("inspector-row")
    expect(rows).to_have_count(9)
    rows.first.click()
    expect(page.get_by_test_id("panel-title")).to_contain_text("tools/call search")
    expect(page.get_by_test_id("tool-text")).to_have_text("you said: needle 1000")
    expect(page.get_by_test_id("tool-text").locator("mark")).to_have_text("needle")
    page.get_by_test_id("panel-tab-arguments").click()
    tree = page.get_by_test_id("panel-arguments-tree")
    expect(tree).to_contain_text('"needle 1000"')
    page.get_by_test_id("panel-next").click()
    expect(tree).to_contain_text('"needle 2000"')
    # the JSON tree collapses and opens again
    page.get_by_test_id("panel-tab-raw").click()
    expect(page.get_by_test_id("panel-raw-request")).to_contain_text('"method": "tools/call"')
    expect(page.get_by_test_id("panel-raw-answer")).to_contain_text('"result"')
    page.get_by_test_id("panel-tab-result").click()
    result = page.get_by_test_id("panel-result-tree")
    node = result.get_by_test_id("json-node").first
    expect(node).to_have_attribute("data-open", "true")
    expect(result).to_contain_text("you said")
    node.get_by_test_id("json-toggle").first.click()
    expect(node).to_have_attribute("data-open", "false")
    expect(result).not_to_contain_text("you said")
    node.get_by_test_id("json-toggle").first.click()
    expect(result).to_contain_text("you said")

    page.get_by_test_id("inspector-filter").fill("no such text anywhere")
    expect(count).to_have_attribute("data-shown", "0")
    page.get_by_test_id("inspector-filter").fill("")
    expect(count).to_have_attribute("data-shown", str(CALLS + 8))


def test_images_text_and_linked_notifications(page: Page) -> None:
    _open_session(page)
    _row(page, "screenshot").click()
    text = page.get_by_test_id("tool-text")
    expect(text).to_have_text("first line\nsecond line")  # a real line break, not "\n"
    assert text.evaluate(
        "e => e.getBoundingClientRect().height > 1.5 * parseFloat(getComputedStyle(e).lineHeight)"
    )
    image = page.get_by_test_id("result-image")
    expect(image).to_be_visible()
    expect(image).to_have_attribute("src", re.compile(r"^data:image/png;base64,iVBOR"))
    page.wait_for_function("() => document.querySelector('[data-testid=result-image]').naturalWidth === 1")
    page.get_by_test_id("inspector").evaluate("e => e.scrollIntoView({ block: 'start' })")
    shot(page, "inspector")

    configure = _row(page, "configure")
    expect(configure.get_by_test_id("row-linked-count")).to_have_text("+2")
    configure.click()
    page.get_by_test_id("panel-tab-notifications").click()
    linked = page.get_by_test_id("panel-linked-item")
    expect(linked).to_have_count(2)
    expect(linked.first).to_contain_text("notifications/progress")
    linked.first.click()
    expect(page.get_by_test_id("panel-title")).to_contain_text("notifications/progress")
    page.get_by_test_id("panel-parent").click()
    expect(page.get_by_test_id("panel-title")).to_contain_text("tools/call configure")

    _row(page, "notifications/cancelled").click()
    expect(page.get_by_test_id("panel-parent")).to_contain_text("tools/call echo")


def test_a_hostile_payload_renders_inert_and_visible(page: Page) -> None:
    _open_session(page)
    page.get_by_test_id("inspector-filter").fill("hostile")
    rows = page.get_by_test_id("inspector-row")
    expect(rows).to_have_count(1)
    rows.first.click()
    text = page.get_by_test_id("tool-text")
    expect(text).to_contain_text('<img src=x onerror="window.__xss=1">')  # as text
    marks = text.get_by_test_id("invisible-char")
    expect(marks).to_have_text(["\\u202E", "\\u202C", "\\u200B", "\\u2066", "\\u2069"])
    assert "\u202e" not in text.inner_text() and "\u200b" not in text.inner_text()
    expect(text.get_by_test_id("show-all-text")).to_be_visible()  # the 5,000 L: cut, on demand
    text.get_by_test_id("show-all-text").click()
    expect(text).to_contain_text("L" * 5000)
    page.get_by_test_id("panel-tab-raw").click()
    expect(page.get_by_test_id("panel-raw-request").get_by_test_id("invisible-char").first).to_have_text(
        "\\u202E"
    )
    page.get_by_test_id("panel-tab-arguments").click()
    expect(page.get_by_test_id("panel-arguments-tree").get_by_test_id("invisible-char").first).to_be_visible()
    assert page.locator("img[src='x'], iframe, script:not([src])").count() == 0
    assert page.evaluate("window.__xss") is None


def test_the_event_page_shows_invisible_characters_escaped_and_marked(page: Page) -> None:
    """Beyond the inspector: the event page's payload (pretty and raw) shows bidi and zero-width
    characters as marked escapes, never applied."""
    _open_session(page)
    page.get_by_test_id("inspector-filter").fill("hostile")
    rows = page.get_by_test_id("inspector-row")
    expect(rows).to_have_count(1)
    rows.first.get_by_test_id("waterfall-bar").click()
    page.wait_for_url("**/events/**")
    pretty = page.get_by_test_id("payload-pretty")
    expect(pretty.get_by_test_id("invisible-char").first).to_have_text("\\u202E")
    assert "\u202e" not in pretty.inner_text() and "\u200b" not in pretty.inner_text()
    page.get_by_test_id("payload-show-raw").click()
    raw = page.get_by_test_id("payload-raw")
    expect(raw.get_by_test_id("invisible-char").first).to_have_text("\\u202E")
    assert page.locator("img[src='x'], iframe, script:not([src])").count() == 0


def test_live_shows_server_and_session_and_orders_by_time(page: Page, team: Team, tmp_path: Path) -> None:
    """A session recorded offline and synced later arrives last but happened first: Live puts
    its rows below the newer session's, and tells the two apart by server and session."""
    page.get_by_test_id("nav-live").click()
    expect(page.get_by_test_id("live-status")).to_contain_text("connected")
    offline = {k: v for k, v in team.monitor_env().items() if k not in ("KM_API_URL", "KM_API_KEY")}
    offline["KM_HOME"] = str(tmp_path)
    km_cli("monitor", "--name", "earlier", "--", sys.executable, str(SERVER), env=offline,
           stdin=_call(1, "earlier_call", "first"))  # fmt: skip
    team_env = team.monitor_env()
    km_cli("monitor", "--name", "later", "--", sys.executable, str(SERVER), env=team_env,
           stdin=_call(1, "later_call", "second"))  # fmt: skip
    km_cli("sync", env=team_env)
    rows = page.get_by_test_id("live-row")
    expect(rows.filter(has_text="later_call")).to_have_count(2)  # request and answer
    km_cli("sync", env={**offline, "KM_API_URL": team.base, "KM_API_KEY": team.ingest_key})
    expect(rows.filter(has_text="earlier_call")).to_have_count(2)
    expect(rows.filter(has_text="later_call").first.locator(".c-server")).to_have_text("later")
    expect(rows.filter(has_text="earlier_call").first.locator(".c-server")).to_have_text("earlier")
    sessions = {r.get_attribute("data-session-id") for r in rows.all()}
    shown = {t[:8] for t in rows.get_by_test_id("live-session").all_inner_texts()}
    assert len(sessions) == 2 and shown == {(sid or "")[:8] for sid in sessions}
    labels = rows.locator(".c-label").all_inner_texts()
    assert labels.index(next(x for x in labels if "later_call" in x)) < labels.index(
        next(x for x in labels if "earlier_call" in x)
    )  # arrived last, shown below: ordered by time, not arrival
    times = [r.get_attribute("data-ts") or "" for r in rows.all()]
    assert times == sorted(times, reverse=True)


def shot(page: Page, name: str) -> None:
    folder = os.environ.get("KM_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.wait_for_timeout(400)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
