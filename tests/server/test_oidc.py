"""OpenID Connect sign-in against a real OpenID Provider (panva's node-oidc-provider, run by
tests/server/oidc_provider.mjs), on SQLite and PostgreSQL.

The provider's pages are driven with httpx like a browser would (its development login form,
then its consent form); the team server is called in-process over ASGI and itself talks to the
provider over real HTTP (discovery, token endpoint, JWKS)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from kilometers.cli.main import cli as km_main
from kilometers.server import accounts, tenancy
from kilometers.server.app import ServerSettings, create_app
from kilometers.server.oidc import FLOW_COOKIE, OidcSettings, check_discovery
from kilometers.store import db
from kilometers.store.schema import organizations

from km_helpers import oidc_provider

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_SCRIPT = Path(__file__).parent / "oidc_provider.mjs"
KM_BASE = "http://km.test"
CLIENT_ID, CLIENT_SECRET = "kilometers", "a-long-client-secret-for-the-tests"
ACCOUNTS = {  # login name at the provider -> the claims it asserts
    "ann": {"email": "Ann@Example.com", "email_verified": True, "name": "Ann"},
    "sso": {"email": "sso@example.com", "email_verified": True},
    "stranger": {"email": "stranger@example.com", "email_verified": True},
    "unverified": {"email": "ann@example.com", "email_verified": False},
    "noemail": {"name": "No Mail"},
}


@dataclass
class Provider:
    issuer: str


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with oidc_provider(CLIENT_ID, CLIENT_SECRET, f"{KM_BASE}/auth/oidc/callback", ACCOUNTS) as issuer:
        yield Provider(issuer)


def _settings(issuer: str, **overrides: str) -> ServerSettings:
    oidc = OidcSettings(
        issuer=overrides.get("issuer", issuer),
        client_id=overrides.get("client_id", CLIENT_ID),
        client_secret=overrides.get("client_secret", CLIENT_SECRET),
        name="Test IdP",
        scopes="openid email profile",
    )
    return ServerSettings(oidc=oidc)


class Km:
    """The team server as one browser sees it (its own cookie jar, redirects not followed)."""

    def __init__(self, engine: Engine, store_url: str, settings: ServerSettings) -> None:
        self.engine = engine
        self.app = create_app(store_url, settings)
        self.client = self.browser()

    def browser(self) -> TestClient:
        return TestClient(self.app, base_url=KM_BASE, follow_redirects=False, raise_server_exceptions=False)


@pytest.fixture
def km(engine: Engine, store_url: str, provider: Provider) -> Km:
    server = Km(engine, store_url, _settings(provider.issuer))
    acme = tenancy.create_org(engine, "acme")
    ann = accounts.create_user(engine, "ann@example.com", "correct horse")
    accounts.set_member(engine, acme, ann, "admin")
    sso = accounts.create_user(engine, "sso@example.com", None)
    accounts.set_member(engine, acme, sso, "viewer")
    return server


def _at_provider(start: str, login: str) -> str:
    """Sign in at the provider as ``login`` (login form, consent form); the URL it sends the
    browser back to (the team server's callback)."""
    url = start
    with httpx.Client(timeout=10) as browser:
        for _ in range(20):
            if url.startswith(KM_BASE):
                return url
            response = browser.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            assert response.status_code == 200, response.text
            action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
            prompt = re.search(r'name="prompt" value="(\w+)"', response.text)
            assert action and prompt, response.text
            form = {"prompt": prompt[1]}
            if prompt[1] == "login":
                form.update(login=login, password="any password")
            response = browser.post(urljoin(url, action[1]), data=form)
            assert response.is_redirect, response.text
            url = urljoin(url, response.headers["location"])
    raise AssertionError("the provider never sent the browser back")


def _start(browser: TestClient) -> str:
    r = browser.get("/auth/oidc/login")
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith("http://127.0.0.1:"), location
    query = parse_qs(urlsplit(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0] and query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"{KM_BASE}/auth/oidc/callback"]
    flow = next(c for c in browser.cookies.jar if c.name == FLOW_COOKIE)
    assert flow.has_nonstandard_attr("HttpOnly") and flow.path == "/auth/oidc"
    assert "samesite=lax" in r.headers["set-cookie"].lower()
    return location


def _sign_in(browser: TestClient, login: str) -> TestClient | str:
    """Sign in through the provider; the browser when signed in, else the login page's sso_error."""
    callback = _at_provider(_start(browser), login)
    r = browser.get(callback)
    assert r.status_code == 303, r.text
    if r.headers["location"] == "/":
        return browser
    target = urlsplit(r.headers["location"])
    assert target.path == "/login", r.headers["location"]
    return parse_qs(target.query)["sso_error"][0]


def _error_of(browser: TestClient, callback: str) -> str:
    r = browser.get(callback)
    assert r.status_code == 303, r.text
    target = urlsplit(r.headers["location"])
    assert target.path == "/login", r.headers["location"]
    return parse_qs(target.query)["sso_error"][0]


def test_sign_in_gives_a_working_session(km: Km) -> None:
    browser = _sign_in(km.client, "ann")
    assert isinstance(browser, TestClient)
    session = next(c for c in browser.cookies.jar if c.name == "km_session")
    assert session.has_nonstandard_attr("HttpOnly")
    assert not any(c.name == FLOW_COOKIE for c in browser.cookies.jar)  # used once, then dropped
    me = browser.get("/auth/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"]["email"] == "ann@example.com" and body["role"] == "admin"
    assert body["org"]["name"] == "acme"
    # the session is the ordinary one: CSRF-protected writes work, logout ends it
    h = {"X-CSRF-Token": body["csrf_token"]}
    assert browser.post("/api/v1/keys", json={"scope": "read"}, headers=h).status_code == 201
    assert browser.post("/auth/logout", headers=h).status_code == 204
    assert browser.get("/auth/me").status_code == 401


def test_sso_only_user_has_no_usable_password(km: Km) -> None:
    browser = _sign_in(km.client, "sso")
    assert isinstance(browser, TestClient)
    assert browser.get("/auth/me").json()["user"]["email"] == "sso@example.com"
    fresh = km.browser()
    for password in ("", "not a real password", "correct horse"):
        r = fresh.post("/auth/login", json={"email": "sso@example.com", "password": password})
        assert r.status_code == 401, (password, r.text)
    assert accounts.verify_login(km.engine, "sso@example.com", "not a real password") is None


def _org_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(organizations)).scalar_one())


@pytest.mark.parametrize(
    ("login", "error"),
    [
        ("stranger", "sso_unknown_user"),
        ("unverified", "sso_email_unverified"),
        ("noemail", "sso_no_email"),
    ],
)
def test_refused_identities(km: Km, login: str, error: str) -> None:
    orgs = _org_count(km.engine)
    assert _sign_in(km.client, login) == error
    assert km.client.get("/auth/me").status_code == 401
    assert not any(c.name == "km_session" for c in km.client.cookies.jar)
    assert _org_count(km.engine) == orgs  # nothing auto-created
    assert accounts.get_user(km.engine, "stranger@example.com") is None


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_tampered_or_absent_state_is_refused(km: Km) -> None:
    callback = _at_provider(_start(km.client), "ann")
    assert _error_of(km.client, _with_query(callback, state="forged")) == "sso_state"
    # the refusal dropped the flow cookie: even the genuine state is now refused
    assert _error_of(km.client, callback) == "sso_state"
    # another browser (no flow cookie) cannot use a callback URL meant for someone else
    callback = _at_provider(_start(km.client), "ann")
    assert _error_of(km.browser(), callback) == "sso_state"
    # a flow cookie whose signature does not match is no flow cookie
    cookie = next(c for c in km.client.cookies.jar if c.name == FLOW_COOKIE)
    assert cookie.value
    body, mac = cookie.value.split(".")
    forged = body[:-1] + ("A" if body[-1] != "A" else "B")  # another payload, the old signature
    km.client.cookies.jar.clear()
    km.client.cookies.set(FLOW_COOKIE, f"{forged}.{mac}", domain=cookie.domain, path=cookie.path)
    assert _error_of(km.client, callback) == "sso_state"
    # no state at all
    callback = _at_provider(_start(km.client), "ann")
    stateless = urlunsplit(
        urlsplit(callback)._replace(query=f"code={parse_qs(urlsplit(callback).query)['code'][0]}")
    )
    assert _error_of(km.client, stateless) == "sso_state"
    assert km.client.get("/auth/me").status_code == 401


def test_a_provider_error_is_shown_not_crashed(km: Km) -> None:
    location = _start(km.client)
    state = parse_qs(urlsplit(location).query)["state"][0]
    callback = f"{KM_BASE}/auth/oidc/callback?" + urlencode(
        {"error": "access_denied", "error_description": "End-User aborted interaction", "state": state}
    )
    assert _error_of(km.client, callback) == "sso_denied"


def test_wrong_client_secret_is_a_clear_error(engine: Engine, store_url: str, provider: Provider) -> None:
    server = Km(engine, store_url, _settings(provider.issuer, client_secret="not-the-registered-secret"))
    callback = _at_provider(_start(server.client), "ann")
    assert _error_of(server.client, callback) == "sso_failed"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_issuer_is_a_clear_error(engine: Engine, store_url: str) -> None:
    issuer = f"http://127.0.0.1:{_closed_port()}"
    server = Km(engine, store_url, _settings(issuer))
    assert server.client.get("/auth/config").json()["sso"]["enabled"] is True
    r = server.client.get("/auth/oidc/login")
    assert r.status_code == 303 and r.headers["location"] == "/login?sso_error=sso_unavailable"
    problem = check_discovery(_settings(issuer).oidc)  # type: ignore[arg-type]
    assert problem and "cannot reach the OpenID Connect discovery document" in problem


@pytest.fixture
def discovery_only() -> Iterator[str]:
    """An issuer whose discovery document answers but whose token endpoint is a closed port."""
    closed = _closed_port()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            body = json.dumps(
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/auth",
                    "token_endpoint": f"http://127.0.0.1:{closed}/token",
                    "jwks_uri": f"{base}/jwks",
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_token_endpoint_is_a_clear_error(
    engine: Engine, store_url: str, discovery_only: str
) -> None:
    """authlib's client is an httpx2 client: its connection errors end on the login page too."""
    server = Km(engine, store_url, _settings(discovery_only))
    state = parse_qs(urlsplit(_start(server.client)).query)["state"][0]
    callback = f"{KM_BASE}/auth/oidc/callback?" + urlencode({"code": "a-code", "state": state})
    assert _error_of(server.client, callback) == "sso_unavailable"


def test_wrong_issuer_in_discovery_is_refused(
    engine: Engine, store_url: str, provider: Provider, capsys: pytest.CaptureFixture[str]
) -> None:
    other = provider.issuer.replace("127.0.0.1", "localhost")  # same server, another issuer name
    server = Km(engine, store_url, _settings(other))
    r = server.client.get("/auth/oidc/login")
    assert r.status_code == 303 and r.headers["location"] == "/login?sso_error=sso_unavailable"
    assert f"names issuer '{provider.issuer}'" in capsys.readouterr().err


def test_disabled_when_not_configured(engine: Engine, store_url: str) -> None:
    client = TestClient(create_app(store_url), follow_redirects=False)
    config = client.get("/auth/config")
    assert config.status_code == 200
    assert config.json() == {
        "mode": "team",
        "sso": {"enabled": False, "name": None, "login_url": None},
    }
    for path in ("/auth/oidc/login", "/auth/oidc/callback?code=x&state=y"):
        r = client.get(path)
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "sso_not_configured"
        assert "--oidc-issuer" in r.json()["error"]["message"]


def test_config_names_the_provider(km: Km) -> None:
    assert km.client.get("/auth/config").json()["sso"] == {
        "enabled": True,
        "name": "Test IdP",
        "login_url": "/auth/oidc/login",
    }


def test_km_serve_flags_need_all_three() -> None:
    result = CliRunner().invoke(km_main, ["serve", "--oidc-issuer", "https://id.example.com"], env={})
    assert result.exit_code == 2
    assert "--oidc-client-id" in result.output and "--oidc-client-secret" in result.output
    result = CliRunner().invoke(
        km_main,
        ["serve"],
        env={"KM_OIDC_ISSUER": "ftp://x", "KM_OIDC_CLIENT_ID": "a", "KM_OIDC_CLIENT_SECRET": "b"},
    )
    assert result.exit_code == 2 and "must be an http(s) URL" in result.output


def test_create_user_sso_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db.open_store(url).dispose()  # migrated
    runner = CliRunner()
    assert runner.invoke(km_main, ["admin", "create-org", "acme", "--db", url]).exit_code == 0
    result = runner.invoke(
        km_main, ["admin", "create-user", "eve@example.com", "--org", "acme", "--sso-only", "--db", url]
    )
    assert result.exit_code == 0, result.output
    engine = db.make_engine(url)
    try:
        assert accounts.get_user(engine, "eve@example.com") is not None
        assert accounts.verify_login(engine, "eve@example.com", "") is None
        assert accounts.verify_login(engine, "eve@example.com", "not a real password") is None
    finally:
        engine.dispose()


def test_settings_add_password_less_members_only_with_sso(km: Km, engine: Engine, store_url: str) -> None:
    admin = _sign_in(km.client, "ann")
    assert isinstance(admin, TestClient)
    h = {"X-CSRF-Token": admin.get("/auth/me").json()["csrf_token"]}
    r = admin.post("/api/v1/members", json={"email": "new@example.com", "role": "member"}, headers=h)
    assert r.status_code == 201, r.text
    assert admin.post("/auth/login", json={"email": "new@example.com", "password": ""}).status_code in (
        401,
        422,
    )
    assert accounts.verify_login(engine, "new@example.com", "not a real password") is None
    # without SSO a new member still needs a password
    plain = TestClient(create_app(store_url), base_url=KM_BASE)
    login = plain.post("/auth/login", json={"email": "ann@example.com", "password": "correct horse"})
    h = {"X-CSRF-Token": login.json()["csrf_token"]}
    r = plain.post("/api/v1/members", json={"email": "other@example.com"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "password_required"
