"""Browser-facing endpoints: sign-in, CSRF, roles, keys, members, org settings, security headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from kilometers.server import accounts, tenancy
from kilometers.server.app import create_app
from kilometers.server.web import CSP

from conftest import Api
from factory import bearer, session_batch


def _signed_in(api: Api, email: str, role: str, org: tenancy.Org) -> tuple[TestClient, str]:
    user = accounts.get_user(api.engine, email) or accounts.create_user(api.engine, email, "correct horse")
    accounts.set_member(api.engine, org, user, role)
    client = TestClient(api.client.app, base_url="http://km.test")
    r = client.post("/auth/login", json={"email": email.upper(), "password": "correct horse"})
    assert r.status_code == 200, r.text
    return client, r.json()["csrf_token"]


def test_login_me_logout(api: Api) -> None:
    org, _, _ = api.org_with_keys("acme")
    client, csrf = _signed_in(api, "ann@example.com", "owner", org)
    cookie = client.cookies.jar
    assert any(c.name == "km_session" and c.has_nonstandard_attr("HttpOnly") for c in cookie)
    me = client.get("/auth/me").json()
    assert me["mode"] == "team" and me["user"]["email"] == "ann@example.com" and me["role"] == "owner"
    assert me["org"]["name"] == "acme" and me["orgs"] == [{"id": org.id, "name": "acme", "role": "owner"}]
    assert client.post("/auth/logout").status_code == 403  # no CSRF token
    assert client.post("/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/auth/me").status_code == 401


def test_bad_credentials(api: Api) -> None:
    org, _, _ = api.org_with_keys("acme")
    _signed_in(api, "ann@example.com", "member", org)
    client = TestClient(api.client.app)
    r = client.post("/auth/login", json={"email": "ann@example.com", "password": "wrong password"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    r = client.post("/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
    assert r.status_code == 401
    assert client.post("/auth/login", json={"email": "x"}).status_code == 422
    assert client.get("/api/v1/events").status_code == 401


def test_members_read_but_only_admins_manage(api: Api) -> None:
    org, ingest_key, _ = api.org_with_keys("acme")
    session, events = session_batch(2)
    api.client.post(
        "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(ingest_key)
    )
    viewer, viewer_csrf = _signed_in(api, "vic@example.com", "viewer", org)
    assert len(viewer.get("/api/v1/events").json()["items"]) == len(events)
    r = viewer.post("/api/v1/keys", json={"scope": "read"}, headers={"X-CSRF-Token": viewer_csrf})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    admin, csrf = _signed_in(api, "ada@example.com", "admin", org)
    h = {"X-CSRF-Token": csrf}
    assert admin.post("/api/v1/keys", json={"scope": "read"}).status_code == 403  # CSRF
    cross = admin.post("/api/v1/keys", json={"scope": "read"}, headers={**h, "Origin": "http://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "csrf_failed"
    created = admin.post("/api/v1/keys", json={"scope": "read", "name": "ci"}, headers=h)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("km_live_")
    assert api.client.get("/api/v1/sessions", headers=bearer(key)).status_code == 200
    listed = admin.get("/api/v1/keys").json()["items"]
    assert key not in str(listed) and any(k["name"] == "ci" for k in listed)
    key_id = created.json()["item"]["id"]
    assert admin.delete(f"/api/v1/keys/{key_id}", headers=h).status_code == 204
    fresh = Api(api.engine, str(api.engine.url.render_as_string(hide_password=False)))
    assert fresh.client.get("/api/v1/sessions", headers=bearer(key)).status_code == 401
    audit = [row for table, row in tenancy.export_org(api.engine, org) if table == "audit_log"]
    assert {"key.created", "key.revoked"} <= {a["action"] for a in audit}
    assert any(a["actor"] == "user:ada@example.com" for a in audit)


def test_members_make_ingest_keys_and_revoke_only_their_own(api: Api) -> None:
    org, _, _ = api.org_with_keys("acme")
    admin, admin_csrf = _signed_in(api, "ada@example.com", "admin", org)
    admins_key = admin.post("/api/v1/keys", json={"scope": "ingest"}, headers={"X-CSRF-Token": admin_csrf})
    member, csrf = _signed_in(api, "max@example.com", "member", org)
    h = {"X-CSRF-Token": csrf}
    r = member.post("/api/v1/keys", json={"scope": "read"}, headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    r = member.post("/api/v1/keys", json={"scope": "admin"}, headers=h)
    assert r.status_code == 403
    mine = member.post("/api/v1/keys", json={"scope": "ingest", "name": "laptop"}, headers=h)
    assert mine.status_code == 201
    session, events = session_batch(1)
    body = {"session": session, "events": events}
    assert (
        api.client.post("/api/v1/events/batch", json=body, headers=bearer(mine.json()["key"])).status_code
        == 200
    )
    member_id = member.get("/auth/me").json()["user"]["id"]
    assert [k["name"] for k in member.get("/api/v1/keys").json()["items"]] == ["laptop"]  # own keys only
    assert mine.json()["item"]["created_by"] == member_id
    every = {k["id"] for k in admin.get("/api/v1/keys").json()["items"]}
    assert {mine.json()["item"]["id"], admins_key.json()["item"]["id"]} <= every and len(every) == 4
    r = member.delete(f"/api/v1/keys/{admins_key.json()['item']['id']}", headers=h)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    assert member.delete(f"/api/v1/keys/{mine.json()['item']['id']}", headers=h).status_code == 204
    assert member.get("/api/v1/keys").json()["items"][0]["revoked"] is True
    for path in ("/api/v1/members", "/api/v1/org"):
        assert member.post(path, json={}, headers=h).status_code in (403, 405)
    viewer, viewer_csrf = _signed_in(api, "vic@example.com", "viewer", org)
    assert viewer.get("/api/v1/keys").status_code == 403
    r = viewer.post("/api/v1/keys", json={"scope": "ingest"}, headers={"X-CSRF-Token": viewer_csrf})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


def test_member_management(api: Api) -> None:
    org, _, _ = api.org_with_keys("acme")
    owner, csrf = _signed_in(api, "own@example.com", "owner", org)
    h = {"X-CSRF-Token": csrf}
    r = owner.post("/api/v1/members", json={"email": "new@example.com", "role": "member"}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["code"] == "password_required"
    r = owner.post(
        "/api/v1/members",
        json={"email": "new@example.com", "role": "member", "password": "longenough"},
        headers=h,
    )
    assert r.status_code == 201
    uid = r.json()["user_id"]
    assert owner.patch(f"/api/v1/members/{uid}", json={"role": "admin"}, headers=h).json()["role"] == "admin"
    members = {m["email"]: m["role"] for m in owner.get("/api/v1/members").json()["items"]}
    assert members == {"own@example.com": "owner", "new@example.com": "admin"}
    me_id = owner.get("/auth/me").json()["user"]["id"]
    r = owner.delete(f"/api/v1/members/{me_id}", headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_owner"
    assert owner.delete(f"/api/v1/members/{uid}", headers=h).status_code == 204
    r = owner.patch("/api/v1/org", json={"retention_days": 30}, headers=h)
    assert r.json()["retention_days"] == 30
    assert owner.patch("/api/v1/org", json={"retention_days": 0}, headers=h).status_code == 422


def test_another_orgs_member_sees_nothing(api: Api) -> None:
    a, a_ingest, _ = api.org_with_keys("org-a")
    b, _, _ = api.org_with_keys("org-b")
    session, events = session_batch(2)
    api.client.post(
        "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(a_ingest)
    )
    client, csrf = _signed_in(api, "bob@example.com", "owner", b)
    assert client.get("/api/v1/events").json()["items"] == []
    assert client.get(f"/api/v1/events/{events[0]['id']}").status_code == 404
    keys = client.get("/api/v1/keys").json()["items"]
    assert keys and all(k["org_id"] == b.id for k in keys)
    a_key = tenancy.list_keys(api.engine, a)[0]
    assert client.delete(f"/api/v1/keys/{a_key.id}", headers={"X-CSRF-Token": csrf}).status_code == 404
    r = client.post("/auth/switch-org", json={"org_id": a.id}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403


def test_security_headers_and_pages(api: Api) -> None:
    for path in ("/", "/live", "/sessions/abc", "/health", "/api/v1/events"):
        r = api.client.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
    page = api.client.get("/overview")
    assert page.status_code in (200, 503) and "text/html" in page.headers["content-type"]
    assert api.client.get("/api/v1/nope").status_code == 404


def test_a_signed_in_browsers_page_preloads_who_am_i(api: Api) -> None:
    """With a session cookie, the app's page asks the browser to fetch /auth/me at once (the
    app's first request); without one (signed out, or km ui's token) the page is left as built."""
    from kilometers.server.web import PRELOAD_ME, STATIC, preloading_me

    org, _, _ = api.org_with_keys("acme")
    client, _ = _signed_in(api, "ann@example.com", "owner", org)
    if not (STATIC / "index.html").exists():
        pytest.skip("the dashboard is not built")
    built = (STATIC / "index.html").read_bytes()
    assert PRELOAD_ME not in built
    for path in ("/", "/sessions/abc", "/overview"):
        page = client.get(path)
        assert page.status_code == 200 and page.content == preloading_me(built), path
        assert page.headers["cache-control"] == "no-cache" and page.headers["vary"] == "Cookie"
        # before the script that takes it, so the two load side by side
        assert page.content.index(PRELOAD_ME) < page.content.index(b"<script")
    assert api.client.get("/overview").content == built  # no cookie
    assert preloading_me(b"<p>no script</p>") == b"<p>no script</p>"


@pytest.mark.parametrize("store", ["sqlite"])
def test_km_ui_token_and_host_checks(store: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from kilometers.server.app import ServerSettings
    from kilometers.store import db

    url = f"sqlite:///{tmp_path / 'local.db'}"
    db.open_store(url)
    app = create_app(
        settings=ServerSettings(
            db_url=url, local_token="s3cret", allowed_hosts={"127.0.0.1:9"}, retention_interval_seconds=0
        )
    )
    client = TestClient(app, base_url="http://127.0.0.1:9")
    assert client.get("/api/v1/events").status_code == 401
    assert client.get("/api/v1/events", headers={"X-KM-Token": "wrong"}).status_code == 401
    # the token travels in a header only (tests/security/test_ui_credential.py: no cookie)
    assert "set-cookie" not in client.get("/?token=s3cret", follow_redirects=False).headers
    client.headers["X-KM-Token"] = "s3cret"
    me = client.get("/auth/me").json()
    assert me["mode"] == "local" and me["org"]["id"] == "local"
    assert client.get("/api/v1/events").status_code == 200
    # API keys mean nothing to km ui, and team-only endpoints are absent
    assert client.get("/api/v1/keys").status_code == 404
    # DNS rebinding / cross-site: wrong Host or Origin is refused even with the token
    other = TestClient(app, base_url="http://evil.example:9", headers={"X-KM-Token": "s3cret"})
    assert other.get("/api/v1/events").status_code == 403
    r = client.get("/api/v1/events", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_host"


def test_a_browser_gets_the_apps_not_found_page_and_api_clients_json(api: Api) -> None:
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    r = api.client.get("/no/such/page", headers=html)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "<!doctype html>" in r.text.lower() and r.headers["content-security-policy"] == CSP
    assert api.client.get("/pins", headers=html).status_code == 200  # an app page
    for path in ("/api/v1/nope", "/auth/nope", "/assets/nope.js"):
        r = api.client.get(path, headers=html)
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/json"), path
    r = api.client.get("/no/such/page")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.client.post("/no/such/page", headers=html)
    assert r.status_code in (404, 405) and r.headers["content-type"].startswith("application/json")


def test_the_dashboards_assets_are_cached_for_good_and_sent_compressed(api: Api) -> None:
    """Their names carry a hash of their content, so browsers keep them without asking again;
    the script and the stylesheet go gzip-compressed to a browser that accepts it."""
    import gzip
    import re

    from kilometers.server.web import STATIC

    if not (STATIC / "index.html").exists():
        pytest.skip("the dashboard is not built")
    script = re.search(r'src="(/assets/[^"]+\.js)"', (STATIC / "index.html").read_text())
    assert script is not None
    path = script.group(1)
    built = (STATIC / path.lstrip("/")).read_bytes()
    client = api.client
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.content == built
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
    for accepted in ("gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8"):
        packed = client.get(path, headers={"Accept-Encoding": accepted})
        assert packed.status_code == 200 and packed.headers["content-encoding"] == "gzip", accepted
        assert packed.content == built  # (httpx unpacks it)
        assert int(packed.headers["content-length"]) < len(built) // 2
        assert packed.headers["vary"] == "Accept-Encoding"
        assert packed.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert packed.headers["etag"] != plain.headers["etag"]
    raw = client.get(path, headers={"Accept-Encoding": "gzip"})
    with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as streamed:
        assert gzip.decompress(b"".join(streamed.iter_raw())) == built
    # revalidation: each representation by its own validator
    again = client.get(path, headers={"Accept-Encoding": "gzip", "If-None-Match": raw.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == raw.headers["etag"]
    again = client.get(path, headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304
    refused = client.get(path, headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers and refused.content == built
    assert client.get("/assets/nope.js", headers={"Accept-Encoding": "gzip"}).status_code == 404
    head = client.head(path, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and "content-encoding" not in head.headers
