"""OpenID Connect sign-in in real headless Chromium: a real `km serve --oidc-*` (configured through
its environment variables) and a real OpenID Provider (node-oidc-provider), through the login page's
"Sign in with …" button, the provider's login and consent forms, and back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from km_helpers import chromium, free_port, km_cli, km_serve, oidc_provider

CLIENT_ID, CLIENT_SECRET = "kilometers-browser", "another-long-client-secret"
ACCOUNTS = {
    "ann": {"email": "ann@example.com", "email_verified": True},
    "stranger": {"email": "stranger@example.com", "email_verified": True},
}


@dataclass
class Server:
    base: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = f"sqlite:///{tmp_path_factory.mktemp('sso') / 'team.db'}"
    km_cli("db", "upgrade", "--db", db)
    km_cli("admin", "create-org", "acme", "--db", db)
    km_cli(
        "admin",
        "create-user",
        "ann@example.com",
        "--org",
        "acme",
        "--role",
        "owner",
        "--sso-only",
        "--db",
        db,
    )
    # the callback URL is registered at the provider before km serve exists: pick its port first
    port = free_port()
    callback = f"http://127.0.0.1:{port}/auth/oidc/callback"
    with oidc_provider(CLIENT_ID, CLIENT_SECRET, callback, ACCOUNTS) as issuer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        env.update(
            KM_OIDC_ISSUER=issuer,
            KM_OIDC_CLIENT_ID=CLIENT_ID,
            KM_OIDC_CLIENT_SECRET=CLIENT_SECRET,
            KM_OIDC_NAME="Test IdP",
        )
        with km_serve(db, env=env, port=port) as base:
            yield Server(base)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _through_provider(page: Page, server: Server, login: str) -> list[str]:
    """Click the SSO button, sign in and consent at the provider; the page's CSP complaints."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(server.base + "/login")
    button = page.get_by_test_id("login-sso")
    expect(button).to_have_text("Sign in with Test IdP")
    button.click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.locator("button[type=submit]").click()
    page.locator("button[type=submit]").click()  # consent
    return problems


def test_sign_in_with_the_provider(browser: Browser, server: Server) -> None:
    context = browser.new_context()
    page = context.new_page()
    problems = _through_provider(page, server, "ann")
    expect(page.get_by_test_id("org-name").first).to_have_text("acme")
    assert page.url.startswith(server.base)
    me = page.evaluate("fetch('/auth/me').then(r => r.json())")
    assert me["user"]["email"] == "ann@example.com" and me["role"] == "owner"
    assert problems == []
    context.close()


def test_unknown_email_is_told_on_the_login_page(browser: Browser, server: Server) -> None:
    context = browser.new_context()
    page = context.new_page()
    problems = _through_provider(page, server, "stranger")
    page.wait_for_url("**/login?sso_error=sso_unknown_user")
    expect(page.get_by_test_id("login-error")).to_contain_text("no Kilometers account")
    expect(page.get_by_test_id("login-sso")).to_be_visible()  # can try again
    if os.environ.get("KM_SCREENSHOTS"):
        page.screenshot(path=str(Path(os.environ["KM_SCREENSHOTS"]) / "login-sso-error.png"))
    assert page.evaluate("fetch('/auth/me').then(r => r.status)") == 401
    assert problems == []
    context.close()
