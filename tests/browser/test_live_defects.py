"""Issue 14's smaller defects of the Live and Session pages, in real Chromium against a real
`km ui` (and a real `km monitor` recording into its store)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, Page, expect

from km_helpers import (
    KM,
    OWNER_EMAIL,
    OWNER_PASSWORD,
    TOOL_SERVER,
    chromium,
    free_port,
    km_cli,
    km_env,
    only_session,
    signed_in_page,
    team_server,
)


def _call(i: int, text: str) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                         "params": {"name": "echo", "arguments": {"text": text}}}) + b"\n"  # fmt: skip


ERROR_REPLY = b'{"jsonrpc": "2.0", "id": 99, "error": {"code": -32601, "message": "no such method"}}\n'


def record(home: Path, calls: int, *extra: bytes) -> None:
    """One real km monitor session of ``calls`` tool calls (and ``extra`` lines) into the local store."""
    lines = b"".join(_call(i, f"call {i}") for i in range(1, calls + 1)) + b"".join(extra)
    km_cli("monitor", "--name", "echo", "--", "python3", str(TOOL_SERVER), env=km_env(home), stdin=lines)


@contextlib.contextmanager
def km_ui(home: Path, port: int) -> Iterator[str]:
    """A real `km ui` on ``port``; yields the launch link it printed, once /health answers."""
    proc = subprocess.Popen([KM, "ui", "--port", str(port), "--no-open"], stderr=subprocess.PIPE, text=True,
                            env=km_env(home))  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("km ui: http://127.0.0.1:"), line
        launch = line.split(" ", 2)[2].strip()
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "km ui did not answer"
            time.sleep(0.1)
        yield launch
    finally:
        proc.terminate()
        proc.wait(10)


def token_of(launch: str) -> str:
    match = re.search(r"#token=([A-Za-z0-9_-]+)$", launch)
    assert match, launch
    return match.group(1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield p
        assert errors == []
    finally:
        context.close()


def test_live_after_a_km_ui_restart_says_to_open_the_new_link(page: Page, home: Path) -> None:
    port = free_port()
    with km_ui(home, port) as launch:
        page.goto(launch.replace("/#token=", "/live#token="))
        expect(page.get_by_test_id("live-status")).to_have_text("connected")
    # stopped: after a few failed attempts the page says so instead of "reconnecting…"
    expect(page.get_by_test_id("live-status")).to_have_text(
        "km ui is not answering: is it still running? retrying…", timeout=15_000
    )
    with km_ui(home, port) as relaunch:
        assert token_of(relaunch) != token_of(launch)
        # the stream reconnects, is refused (new token), and the page says what to do
        expect(page.get_by_test_id("local-link-needed")).to_contain_text("use the new link", timeout=15_000)
        expect(page.get_by_test_id("live-status")).to_have_count(0)
        page.goto(relaunch)
        expect(page.get_by_test_id("page-overview")).to_be_visible()


@pytest.mark.parametrize("form", ["query", "fragment"])
def test_a_token_link_to_a_sub_page_lands_on_that_page(page: Page, home: Path, form: str) -> None:
    record(home, 1)
    with km_ui(home, free_port()) as launch:
        base, token = launch.split("/#token=")
        link = (
            f"{base}/live?kind=request&token={token}"
            if form == "query"
            else f"{base}/live?kind=request#token={token}"
        )
        page.goto(link)
        expect(page.get_by_test_id("page-live")).to_be_visible()
        expect(page.get_by_test_id("live-status")).to_have_text("connected")
        assert page.url == f"{base}/live?kind=request"  # the token left the address bar (and history)
        page.reload()
        expect(page.get_by_test_id("page-live")).to_be_visible()  # kept in this origin's storage


def test_paused_live_says_how_many_events_wait(page: Page, home: Path) -> None:
    with km_ui(home, free_port()) as launch:
        page.goto(launch.replace("/#token=", "/live#token="))
        expect(page.get_by_test_id("live-status")).to_have_text("connected")
        expect(page.get_by_test_id("live-empty")).to_contain_text("Waiting for events")
        page.get_by_test_id("pause-button").click()
        record(home, 2)
        empty = page.get_by_test_id("live-empty")
        expect(empty).to_contain_text(
            re.compile(r"Paused: \d+ new events? (is|are) waiting\. Resume to show (it|them)\.")
        )
        expect(empty).not_to_contain_text("Waiting for events")
        page.get_by_test_id("pause-button").click()
        expect(page.get_by_test_id("live-row").first).to_be_visible()
        expect(empty).to_have_count(0)


def test_a_missing_session_shows_only_the_error(page: Page, home: Path) -> None:
    record(home, 1, ERROR_REPLY)  # the client answers with an error: one error in the session
    assert only_session(home)["error_count"] == 1
    with km_ui(home, free_port()) as launch:
        page.goto(launch.replace("/#token=", "/sessions/00000000-0000-0000-0000-000000000000#token="))
        expect(page.get_by_test_id("page-session")).to_be_visible()
        expect(page.get_by_role("alert").first).to_be_visible()
        expect(page.get_by_text("No events recorded")).to_have_count(0)
        page.goto(launch.replace("/#token=", f"/sessions/{only_session(home)['id']}#token="))
        meta = page.get_by_test_id("session-meta")
        expect(meta).to_contain_text("Events")
        expect(meta).not_to_contain_text("1 errors")
        expect(meta).to_contain_text("(1 error)")


def test_what_was_typed_comes_back_after_signing_in_again(page: Page, home: Path) -> None:
    port = free_port()
    with km_ui(home, port) as launch:
        page.goto(launch.replace("/#token=", "/live#token="))
        expect(page.get_by_test_id("live-status")).to_have_text("connected")
        page.get_by_test_id("filter-q").fill("invoice 2024")
        page.get_by_test_id("filter-tool").fill("search_docs")
    with km_ui(home, port) as relaunch:
        expect(page.get_by_test_id("local-link-needed")).to_be_visible(timeout=15_000)
        page.goto(relaunch.replace("/#token=", "/live#token="))
        expect(page.get_by_test_id("live-status")).to_have_text("connected")
        expect(page.get_by_test_id("filter-q")).to_have_value("invoice 2024")  # not sent yet: still a draft
        expect(page.get_by_test_id("filter-tool")).to_have_value("search_docs")
        page.reload()  # handed back once
        expect(page.get_by_test_id("filter-q")).to_have_value("")


def test_lagged_messages_are_shown_in_the_counts_line(page: Page, home: Path) -> None:
    # A real lag needs a tab that stops reading 10,000 events; the server's message is replayed
    # here, once, exactly as server/live.py writes it, then the real stream takes over.
    with km_ui(home, free_port()) as launch:
        page.route(
            "**/api/v1/live*",
            lambda route: route.fulfill(
                status=200,
                content_type="text/event-stream",
                body=": connected\n\nevent: lagged\ndata: 1234\n\n",
            ),
            times=1,
        )
        page.goto(launch.replace("/#token=", "/live#token="))
        counts = page.get_by_test_id("live-counts")
        expect(counts).to_contain_text("1,234 events were skipped because this tab fell behind")
        expect(page.get_by_test_id("live-status")).to_have_text("connected")


def test_a_team_session_that_ends_keeps_the_typed_filters(browser: Browser, tmp_path: Path) -> None:
    with team_server(tmp_path) as team, signed_in_page(browser, team) as (page, problems):
        page.get_by_test_id("nav-live").click()
        expect(page.get_by_test_id("live-status")).to_have_text("connected")
        page.get_by_test_id("filter-q").fill("invoice 2024")
        # the sign-in ends elsewhere (another tab signs out): the stream is refused, sign-in shows
        cookie = next(c for c in page.context.cookies() if c["name"] == "km_session")
        csrf = page.evaluate("fetch('/auth/me').then(r => r.json()).then(m => m.csrf_token)")
        r = httpx.post(team.base + "/auth/logout", cookies={"km_session": cookie["value"]},
                       headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert r.status_code == 204
        page.wait_for_url("**/login**", timeout=15_000)
        page.get_by_test_id("login-email").fill(OWNER_EMAIL)
        page.get_by_test_id("login-password").fill(OWNER_PASSWORD)
        page.get_by_test_id("login-submit").click()
        expect(page.get_by_test_id("page-live")).to_be_visible()
        expect(page.get_by_test_id("filter-q")).to_have_value("invoice 2024")
        assert problems == []
