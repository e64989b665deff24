"""Red-team item 20: the team server answers what its OpenAPI schema says, and the schema says
what the handlers enforce (405 ``Allow``, cursor, time range, e-mail, bucket, error answers).

The whole schema is fuzzed with every key scope in tests/server/test_fuzz.py; these are the
explicit cases. Every API test runs on SQLite and a real PostgreSQL 15 (the ``api`` fixture).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from kilometers.server import tenancy
from kilometers.store import queries
from server.factory import bearer, session_batch

if TYPE_CHECKING:
    from server.conftest import Api


def _parameter(api: Api, path: str, name: str, method: str = "get") -> dict[str, Any]:
    operation = api.client.get("/openapi.json").json()["paths"][path][method]
    return next(p for p in operation["parameters"] if p["name"] == name)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/v1/keys", "GET, POST"),
        ("DELETE", "/api/v1/members", "GET, POST"),
        ("PUT", "/api/v1/org", "GET, PATCH"),
        ("GET", "/api/v1/members/0190", "DELETE, PATCH"),
        ("PUT", "/auth/invitations/0190", "DELETE, POST"),
        ("PUT", "/api/v1/events/batch", "POST"),  # not /api/v1/events/{event_id}'s GET
        ("HEAD", "/api/v1/events/batch", "POST"),
        # HEAD and OPTIONS are not served: a 405 like any other method, with the same Allow
        ("OPTIONS", "/api/v1/keys", "GET, POST"),
        ("HEAD", "/api/v1/org", "GET, PATCH"),
        ("OPTIONS", "/api/v1/sessions/0190", "GET"),
        ("POST", "/overview", "GET"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(api: Api, method: str, path: str, allow: str) -> None:
    _, _, read_key = api.org_with_keys("acme")
    r = api.client.request(method, path, headers=bearer(read_key))
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    if method != "HEAD":
        assert r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "email",
    ["not-an-address", "two words@example.com", "a@b@example.com", "\x01@x.test", "a\x85b@x.test", ""],
)
def test_malformed_member_email_is_a_declared_422(api: Api, email: str) -> None:
    org, _, _ = api.org_with_keys("acme")
    admin = tenancy.create_key(api.engine, org, "admin")
    body = {"email": email, "role": "member", "password": "correct horse"}
    r = api.client.post("/api/v1/members", json=body, headers=bearer(admin))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
    schema = api.client.get("/openapi.json").json()["components"]["schemas"]["MemberIn"]
    # the pattern is the whole contract: no "format: email", whose RFC 5321 reading the server does not apply
    assert schema["properties"]["email"]["pattern"] and "format" not in schema["properties"]["email"]
    ok = api.client.post("/api/v1/members", json={**body, "email": "New@Example.com"}, headers=bearer(admin))
    assert ok.status_code == 201 and ok.json()["email"] == "new@example.com", ok.text


@pytest.mark.parametrize("password", ["", "1234567", "\u00e9" * 7])
def test_short_member_password_is_a_declared_422(api: Api, password: str) -> None:
    """The schema declares the 8-character minimum the server enforces (a schema-valid short
    password once came back as an undeclared 400)."""
    org, _, _ = api.org_with_keys("acme")
    admin = tenancy.create_key(api.engine, org, "admin")
    body = {"email": "new@example.com", "role": "member", "password": password}
    r = api.client.post("/api/v1/members", json=body, headers=bearer(admin))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", r.text
    schema = api.client.get("/openapi.json").json()["components"]["schemas"]["MemberIn"]
    password_schema = next(s for s in schema["properties"]["password"]["anyOf"] if s.get("type") == "string")
    assert password_schema["minLength"] == 8
    ok = api.client.post("/api/v1/members", json={**body, "password": "\u00e9" * 8}, headers=bearer(admin))
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/sessions"])
def test_cursor_format_is_declared_and_enforced(api: Api, path: str) -> None:
    _, key, read_key = api.org_with_keys("acme")
    for _ in range(3):
        session, events = session_batch(1)
        posted = api.client.post(
            "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(key)
        )
        assert posted.status_code == 200
    assert _parameter(api, path, "cursor")["schema"]["anyOf"][0]["pattern"] == queries.CURSOR_PATTERN
    first = api.client.get(path, params={"limit": 2}, headers=bearer(read_key)).json()
    second = api.client.get(
        path, params={"limit": 2, "cursor": first["next_cursor"]}, headers=bearer(read_key)
    )
    assert second.status_code == 200 and second.json()["items"]
    for bad in ("AAAA", "MTIzOmFiYw", "12_a b", "-1_0190", f"{2**70}_0190", "5_"):
        r = api.client.get(path, params={"cursor": bad}, headers=bearer(read_key))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", (bad, r.text)
    # the largest time the pattern allows is past what the databases store: it starts at the newest
    r = api.client.get(path, params={"limit": 2, "cursor": f"{10**19 - 1}_z"}, headers=bearer(read_key))
    assert r.status_code == 200 and r.json()["items"] == first["items"]


def test_time_range_is_rfc3339_and_bucket_limits_are_declared(api: Api) -> None:
    _, _, read_key = api.org_with_keys("acme")
    h = bearer(read_key)
    since = _parameter(api, "/api/v1/stats", "since")["schema"]
    assert since["format"] == "date-time" or since["anyOf"][0]["format"] == "date-time"
    assert _parameter(api, "/api/v1/stats", "bucket")["schema"]["enum"] == ["minute", "hour", "day"]
    assert "7 days" in _parameter(api, "/api/v1/stats", "bucket")["description"]
    assert (
        _parameter(api, "/api/v1/events", "limit")["schema"] | {"maximum": 1000, "minimum": 1}
        == (_parameter(api, "/api/v1/events", "limit")["schema"])
    )
    # an RFC 3339 bound before 1970 or after 2262 is that end of the range, not an error
    for params in ({"since": "1900-01-01T00:00:00Z"}, {"until": "9999-12-31T23:59:59.999999-23:59"}):
        assert api.client.get("/api/v1/events", params=params, headers=h).status_code == 200, params
        assert api.client.get("/api/v1/stats", params=params, headers=h).status_code == 200, params
    # what the schema's date-time is not, the handler refuses
    for bad in ("2026-01-01", "2026-01-01T00:00:00", "20260101T000000Z", "2026-02-30T00:00:00Z", "now"):
        r = api.client.get("/api/v1/events", params={"since": bad}, headers=h)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parameter", (bad, r.text)
    r = api.client.get("/api/v1/stats", params={"bucket": "week"}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    eight_days = {"bucket": "minute", "since": "2026-01-01T00:00:00Z", "until": "2026-01-09T00:00:00Z"}
    r = api.client.get("/api/v1/stats", params=eight_days, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_range"


def test_every_error_status_is_declared_with_the_error_shape(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert spec["components"]["schemas"]["ErrorOut"]["required"] == ["error"]
    paths = spec["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path in ("/health", "/auth/config") or path.startswith("/auth/oidc"):
                continue
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)
    assert {"400", "402", "413", "415", "429"} <= set(paths["/api/v1/events/batch"]["post"]["responses"])
    assert {"400", "409", "422"} <= set(paths["/api/v1/members"]["post"]["responses"])
    assert {"409"} <= set(paths["/api/v1/members/{user_id}"]["delete"]["responses"])


def test_a_whole_number_is_an_integer(api: Api) -> None:
    org, _, _ = api.org_with_keys("acme")
    admin = tenancy.create_key(api.engine, org, "admin")
    r = api.client.patch("/api/v1/org", json={"retention_days": 30.0}, headers=bearer(admin))
    assert r.status_code == 200 and r.json()["retention_days"] == 30, r.text
    for bad in ("30", 30.5, True, {}):
        r = api.client.patch("/api/v1/org", json={"retention_days": bad}, headers=bearer(admin))
        assert r.status_code == 422, (bad, r.text)
    assert api.client.patch("/api/v1/org", json={}, headers=bearer(admin)).status_code == 422
