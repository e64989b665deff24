"""Red-team item 5: the `km ui` credential leaked to every other port of 127.0.0.1.

`km ui` kept its token in a `km_ui` cookie (Path=/, 7 days); browsers do not scope cookies by
port, so any other web server on 127.0.0.1 received it. Now the token rides in the launch URL's
fragment (never sent to a server), lives in the dashboard origin's localStorage and travels only
as the `X-KM-Token` header. Real `km ui`, real `km monitor` recordings, real Chromium.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from km_helpers import ECHO_SERVER, KM, chromium, km_cli, km_env


def _mcp_session(tool: str) -> bytes:
    """What an MCP client sends: the handshake, then one tool call."""
    lines = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
         "params": {"name": tool, "arguments": {"text": "x"}}},
    ]  # fmt: skip
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


@dataclass
class Ui:
    launch: str  # exactly what km ui printed
    base: str
    token: str
    home: Path

    def record(self, tool: str) -> None:
        """One real km monitor session (through the mcp-SDK echo server) into km ui's store."""
        km_cli("monitor", "--name", "echo", "--", sys.executable, ECHO_SERVER,
               env=km_env(self.home), stdin=_mcp_session(tool))  # fmt: skip


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    home = tmp_path_factory.mktemp("ui") / "home"
    home.mkdir()
    km_cli("db", "upgrade", env=km_env(home))
    proc = subprocess.Popen(
        [KM, "ui", "--port", "0", "--no-open"], stderr=subprocess.PIPE, text=True, env=km_env(home)
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("km ui: http://127.0.0.1:"), line
        launch = line.split(" ", 2)[2].strip()
        parts = urlsplit(launch)
        token = re.search(r"token=([A-Za-z0-9_-]+)", launch)
        assert token, launch
        ui = Ui(launch, f"{parts.scheme}://{parts.netloc}", token.group(1), home)
        for _ in range(300):  # until it answers
            try:
                httpx.get(ui.base + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        ui.record("first_tool")
        yield ui
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Spy:
    """A plain web server on another 127.0.0.1 port (a dev server, another user's process)."""

    url: str
    requests: list[dict[str, str]]


@pytest.fixture
def spy() -> Iterator[Spy]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            body = b"<!doctype html><title>another local server</title><p>hello"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Spy(f"http://127.0.0.1:{server.server_address[1]}/", seen)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


def _sessions_load(page: Page) -> None:
    expect(page.get_by_test_id("nav-sessions")).to_be_visible()
    page.get_by_test_id("nav-sessions").click()
    expect(page.get_by_test_id("session-row").first).to_be_visible()


def test_the_credential_never_reaches_another_port(ui: Ui, spy: Spy, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(ui.launch)
    _sessions_load(page)
    assert ui.token not in page.url  # out of the address bar (and the history)
    page.goto(spy.url)
    expect(page).to_have_title("another local server")
    assert spy.requests
    for headers in spy.requests:
        assert ui.token not in repr(headers), headers
        assert "km_ui" not in headers.get("cookie", ""), headers
        assert "x-km-token" not in headers
    # nor can the other origin's scripts read it
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("JSON.stringify(Object.assign({}, localStorage))") == "{}"


def test_reload_second_tab_and_live_work_without_any_cookie(ui: Ui, context: BrowserContext) -> None:
    page = context.new_page()
    page.goto(ui.launch)
    _sessions_load(page)
    page.reload()
    expect(page.get_by_test_id("session-row").first).to_be_visible()
    second = context.new_page()
    second.goto(ui.base + "/live")
    expect(second.get_by_test_id("live-status")).to_contain_text("connected")
    ui.record("live_probe")
    expect(second.get_by_test_id("live-row").filter(has_text="live_probe").first).to_be_visible()
    assert context.cookies() == []  # the token is in no cookie, so no port receives it


def test_without_the_token_the_dashboard_asks_for_the_link(ui: Ui, browser: Browser) -> None:
    for start in (ui.base + "/sessions", ui.base + "/#token=" + "A" * 43):  # no token, a wrong one
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(start)
        expect(page.get_by_test_id("local-link-needed")).to_be_visible()
        expect(page.get_by_test_id("session-row")).to_have_count(0)
        assert page.evaluate("localStorage.length") == 0  # a refused token is not kept
        assert "token" not in page.url
        ctx.close()


def test_the_api_takes_the_token_from_the_header_only(ui: Ui) -> None:
    api = ui.base + "/api/v1/sessions"
    refused = [
        {},
        {"Cookie": f"km_ui={ui.token}"},  # the old cookie
        {"X-KM-Token": ui.token[:-1]},
        {"X-KM-Token": ui.token + "x"},
        {"X-KM-Token": "\u00e9" * 43},  # not ASCII: refused, not a server error
        {"X-KM-Token": ""},
    ]
    for headers in refused:
        r = httpx.get(api, headers={k: v.encode("latin-1") for k, v in headers.items()})
        assert r.status_code == 401, headers
        assert r.json()["error"]["code"] == "not_signed_in"
    assert httpx.get(api, headers={"X-KM-Token": ui.token}).status_code == 200
    assert httpx.get(api, params={"token": ui.token}).status_code == 401
    assert httpx.get(ui.base + "/auth/me", cookies={"km_ui": ui.token}).status_code == 401
    # the live stream too
    with httpx.stream("GET", ui.base + "/api/v1/live", cookies={"km_ui": ui.token}) as r:
        assert r.status_code == 401
    with httpx.stream("GET", ui.base + "/api/v1/live", headers={"X-KM-Token": ui.token}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    # the old exchange of ?token= for a cookie is gone: the page is served, no cookie is set
    r = httpx.get(ui.base + "/", params={"token": ui.token}, follow_redirects=False)
    assert r.status_code == 200 and "set-cookie" not in r.headers
