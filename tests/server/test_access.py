"""Access ends when access ends (issue 14, item 1): a live stream is bound to the credential that
opened it and ends within seconds of sign-out, removal, role change, expiry or key revocation,
also when the change is made through a second `km serve` on the same database; the last owner
cannot demote themselves; sign-in is throttled; the plan's usage is exposed and a session cut by
the monthly limit is stored as partial."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from kilometers.server import accounts, tenancy
from kilometers.server.app import ServerSettings
from kilometers.store.schema import web_sessions

from conftest import Api
from factory import bearer, session_batch
from km_helpers import km_cli, km_serve, wait_until

PASSWORD = "correct horse battery"
DEADLINE = 5.0
"""A stream must end within this many seconds of the change."""


class Stream:
    """GET /api/v1/live on a thread: records every SSE event name and when the stream ended."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, cookies: httpx.Cookies | None = None):
        self.kinds: list[str] = []
        self.events = 0
        self.opened = threading.Event()
        self.ended = threading.Event()
        self.status = 0
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=None), cookies=cookies)
        threading.Thread(target=self._read, args=(url, headers or {}), daemon=True).start()
        assert self.opened.wait(10), "the stream did not open"
        assert self.status == 200, self.status

    def _read(self, url: str, headers: dict[str, str]) -> None:
        with (
            contextlib.suppress(httpx.HTTPError, RuntimeError),
            self.client.stream("GET", url, headers=headers) as r,
        ):
            self.status = r.status_code
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    self.opened.set()
                elif line.startswith("event: "):
                    self.kinds.append(line[7:])
                    self.events += line == "event: event"
        self.opened.set()
        self.ended.set()

    def ends_within(self, seconds: float) -> bool:
        return self.ended.wait(seconds)

    def close(self) -> None:
        self.client.close()


def _sign_in(base: str, email: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, timeout=10)
    r = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client, r.json()["csrf_token"]


@pytest.fixture
def two_servers(store_url: str) -> Iterator[tuple[str, str, str]]:
    """Two `km serve` processes on one database, an org with an owner: (first, second, ingest key)."""
    db = store_url
    km_cli("db", "upgrade", "--db", db)
    km_cli("admin", "create-org", "acme", "--plan", "unlimited", "--db", db)
    km_cli("admin", "create-user", "own@example.com", "--org", "acme", "--role", "owner",
           "--password", PASSWORD, "--db", db)  # fmt: skip
    ingest = km_cli("admin", "create-key", "--org", "acme", "--scope", "ingest", "--db", db)
    with km_serve(db) as first, km_serve(db) as second:
        yield first, second, ingest


def _viewer(db: str, email: str) -> None:
    km_cli("admin", "create-user", email, "--org", "acme", "--role", "viewer",
           "--password", PASSWORD, "--db", db)  # fmt: skip


def _post_events(base: str, ingest: str) -> int:
    session, events = session_batch(1)
    r = httpx.post(base + "/api/v1/events/batch", json={"session": session, "events": events},
                   headers=bearer(ingest))  # fmt: skip
    assert r.status_code == 200, r.text
    return len(events)


def test_streams_end_when_access_ends_across_servers(
    store_url: str, two_servers: tuple[str, str, str]
) -> None:
    """Every stream is opened on the first process; every change is made through the second."""
    first, second, ingest = two_servers
    owner, owner_csrf = _sign_in(second, "own@example.com")
    oh = {"X-CSRF-Token": owner_csrf}
    for email in ("gone@example.com", "out@example.com", "demoted@example.com", "expired@example.com"):
        _viewer(store_url, email)
    ids = {m["email"]: m["user_id"] for m in owner.get("/api/v1/members").json()["items"]}

    with ExitStack() as stack:
        streams: dict[str, Stream] = {}
        who = {
            "removed": "gone@example.com",
            "signed_out": "out@example.com",
            "role_changed": "demoted@example.com",
            "expired": "expired@example.com",
        }
        for name, email in who.items():
            client, csrf = _sign_in(first, email)
            stack.callback(client.close)
            streams[name] = Stream(first + "/api/v1/live", cookies=client.cookies)
            if name == "signed_out":
                signed_out = (client.cookies, csrf)
        r = owner.post("/api/v1/keys", json={"scope": "read", "name": "stream"}, headers=oh)
        key, key_id = r.json()["key"], r.json()["item"]["id"]
        streams["key_revoked"] = Stream(first + "/api/v1/live", headers=bearer(key))
        owner_stream = Stream(first + "/api/v1/live", cookies=owner.cookies)
        for s in [*streams.values(), owner_stream]:
            stack.callback(s.close)

        sent = _post_events(second, ingest)  # every stream is live and delivers
        wait_until(lambda: all(s.events >= sent for s in [*streams.values(), owner_stream]), 10)

        started = time.monotonic()
        assert owner.delete(f"/api/v1/members/{ids['gone@example.com']}", headers=oh).status_code == 204
        cookies, csrf = signed_out
        r = httpx.post(second + "/auth/logout", cookies=cookies, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
        r = owner.patch(f"/api/v1/members/{ids['demoted@example.com']}", json={"role": "member"}, headers=oh)
        assert r.status_code == 200
        _expire_sessions(store_url, ids["expired@example.com"])
        assert owner.delete(f"/api/v1/keys/{key_id}", headers=oh).status_code == 204

        for name, s in streams.items():
            left = max(0.0, started + DEADLINE - time.monotonic())
            assert s.ends_within(left), f"the {name} stream still runs {DEADLINE} s after the change"
            assert s.kinds[-1] == "revoked", (name, s.kinds)
        # the owner's stream is untouched and still delivers
        assert not owner_stream.ended.is_set()
        before = owner_stream.events
        more = _post_events(second, ingest)
        wait_until(lambda: owner_stream.events >= before + more, 10)
        assert all(s.events == sent for s in streams.values())  # nothing after the end
        # a removed or signed-out browser cannot open a new one
        assert httpx.get(first + "/api/v1/live", cookies=cookies).status_code == 401
        assert httpx.get(first + "/api/v1/live", headers=bearer(key)).status_code == 401
    owner.close()


def _expire_sessions(db: str, user_id: str) -> None:
    """The web session's time runs out (its expiry moved to now, as the clock would)."""
    from kilometers.store import db as store_db

    engine = store_db.make_engine(db)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(web_sessions)
                .where(web_sessions.c.user_id == user_id)
                .values(expires_ns=time.time_ns())
            )
    finally:
        engine.dispose()


# -- the last owner ----------------------------------------------------------------------------------


def _client(api: Api, address: str = "203.0.113.1") -> TestClient:
    return TestClient(api.client.app, base_url="http://km.test", client=(address, 50000))


def _member(api: Api, org: tenancy.Org, email: str, role: str) -> accounts.User:
    user = accounts.get_user(api.engine, email) or accounts.create_user(api.engine, email, PASSWORD)
    accounts.set_member(api.engine, org, user, role)
    return user


def test_the_last_owner_cannot_demote_themselves(api: Api) -> None:
    org, _, _ = api.org_with_keys("acme")
    owner = _member(api, org, "own@example.com", "owner")
    client = _client(api)
    csrf = client.post("/auth/login", json={"email": "own@example.com", "password": PASSWORD}).json()[
        "csrf_token"
    ]
    h = {"X-CSRF-Token": csrf}
    for role in ("admin", "member", "viewer"):
        r = client.patch(f"/api/v1/members/{owner.id}", json={"role": role}, headers=h)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "last_owner" and "owner" in r.json()["error"]["message"]
    assert accounts.member_role(api.engine, org.id, owner.id) == "owner"
    assert client.get("/auth/me").json()["role"] == "owner"
    # with a second owner, stepping down is allowed
    _member(api, org, "two@example.com", "owner")
    r = client.patch(f"/api/v1/members/{owner.id}", json={"role": "admin"}, headers=h)
    assert r.status_code == 200 and accounts.member_role(api.engine, org.id, owner.id) == "admin"


# -- sign-in throttling ------------------------------------------------------------------------------


def _login(client: TestClient, email: str, password: str) -> httpx.Response:
    return client.post("/auth/login", json={"email": email, "password": password})


def test_sign_in_is_throttled_per_address_and_account(api: Api) -> None:
    org, _, _ = api.org_with_keys("acme")
    _member(api, org, "ann@example.com", "member")
    home = _client(api, "198.51.100.7")
    assert _login(home, "ann@example.com", PASSWORD).status_code == 200  # a known-good address
    attacker = _client(api, "203.0.113.66")
    answers = [_login(attacker, "ann@example.com", f"guess {i}").status_code for i in range(12)]
    assert answers[:5] == [401] * 5  # a few mistakes cost nothing
    assert 429 in answers[5:7], answers  # then each failure makes the next try wait
    r = _login(attacker, "ann@example.com", PASSWORD)  # even the right password, from there, waits
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "login_throttled"
    assert "try again in" in r.json()["error"]["message"]
    assert 1 <= int(r.headers["Retry-After"]) <= 60  # bounded: never a long lock-out
    # the account throttles other (new) addresses too, for a bounded time ...
    r = _login(_client(api, "192.0.2.10"), "ann@example.com", PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) <= 60
    # ... but not the address the user signed in from before, and that success resets the account
    assert _login(home, "ann@example.com", PASSWORD).status_code == 200
    assert _login(_client(api, "192.0.2.10"), "ann@example.com", PASSWORD).status_code == 200
    # others failing behind the user's address (one office, one NAT) do not keep the user out
    assert [_login(home, "someone@example.com", "guess 0000").status_code for _ in range(8)][-1] == 429
    assert _login(home, "ann@example.com", PASSWORD).status_code == 200
    # an unknown account is throttled the same way (no hint whether it exists)
    other = _client(api, "203.0.113.99")
    codes = [_login(other, "nobody@example.com", "guess 0000").status_code for _ in range(8)]
    assert codes[:5] == [401] * 5 and codes[-1] == 429


def test_delays_grow_and_stay_bounded() -> None:
    from kilometers.server.ratelimit import LoginThrottle

    t = LoginThrottle(free=2, max_delay=60.0)
    assert [t._delay(n) for n in range(1, 12)] == [0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


# -- quota ---------------------------------------------------------------------------------------


def test_usage_and_the_session_cut_by_the_monthly_limit(api: Api) -> None:
    org, ingest, read = api.org_with_keys("small", plan="free")
    org = tenancy.set_limits(api.engine, org, events_per_month=10, retention_days=7)
    usage = api.client.get("/api/v1/org", headers=bearer(read)).json()["usage"]
    assert usage["events"] == 0 and usage["limit"] == 10 and usage["state"] == "ok"
    session, events = session_batch(3)  # 8 events
    r = api.client.post("/api/v1/events/batch", json={"session": session, "events": events},
                        headers=bearer(ingest))  # fmt: skip
    assert r.status_code == 200
    usage = api.client.get("/api/v1/org", headers=bearer(read)).json()["usage"]
    assert usage["events"] == 8 and usage["state"] == "near"
    later, more = session_batch(2)  # 6 events, and the session's end
    r = api.client.post("/api/v1/events/batch", json={"session": later, "events": more},
                        headers=bearer(ingest))  # fmt: skip
    assert r.status_code == 402 and r.json()["error"]["code"] == "quota_exceeded"
    stored = api.client.get(f"/api/v1/sessions/{later['id']}", headers=bearer(read)).json()
    assert stored["event_count"] == 0 and stored["dropped_events"] == 6  # partial: 6 not stored
    assert stored["ended_at"] is not None  # not "running" forever
    r = api.client.post("/api/v1/events/batch", json={"session": later, "events": more},
                        headers=bearer(ingest))  # fmt: skip
    assert r.status_code == 402  # a retry counts the same events once
    stored = api.client.get(f"/api/v1/sessions/{later['id']}", headers=bearer(read)).json()
    assert stored["dropped_events"] == 6
    org = tenancy.set_limits(api.engine, org, events_per_month=8, retention_days=7)
    usage = api.client.get("/api/v1/org", headers=bearer(read)).json()["usage"]
    assert usage["events"] == 8 and usage["state"] == "over"


def test_km_ui_has_no_plan_limit(engine: Engine, store_url: str) -> None:
    local = Api(engine, store_url, ServerSettings(local_token="t" * 32))
    r = local.client.get("/api/v1/org", headers={"X-KM-Token": "t" * 32})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["limit"] is None and r.json()["usage"]["state"] == "ok"
    assert local.client.get("/api/v1/org").status_code == 401
