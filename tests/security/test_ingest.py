"""Red-team items on the team server's ingest and settings (4 server side, 7, 12, 14, 18, 19).

Every API test runs on SQLite and a real PostgreSQL 15 (the ``api`` / ``store_url`` fixtures).
"""

from __future__ import annotations

import os
import re
import threading
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from kilometers.jsonlimits import MAX_DEPTH, TOO_DEEP_RULE
from kilometers.server import tenancy
from kilometers.store.schema import events as events_table
from kilometers.store.schema import org_usage
from server.factory import bearer, session_batch

from km_helpers import km_serve

if TYPE_CHECKING:
    from server.conftest import Api


def _post(api: Api, key: str, session: dict[str, Any], events: list[Any]) -> httpx.Response:
    """POST a batch; each ``_nested(n)`` in it is sent as arrays nested ``n`` deep (more than
    orjson, or any client library, would encode)."""
    body = orjson.dumps({"session": session, "events": events})
    body = re.sub(rb'"nested:(\d+)"', lambda m: b"[" * int(m[1]) + b'"bottom"' + b"]" * int(m[1]), body)
    return api.client.post("/api/v1/events/batch", content=body, headers=bearer(key))


def _nested(levels: int) -> str:
    return f"nested:{levels}"


def _stored_ids(api: Api) -> set[str]:
    with api.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(events_table.c.id))}


# -- item 4: over-deep JSON in a batch costs only its own field --------------------------------


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 300, 1023, 5000])
def test_over_deep_payload_is_stored_as_the_marker_and_the_batch_is_kept(api: Api, levels: int) -> None:
    _, key, read_key = api.org_with_keys("acme")
    session, events = session_batch(2)
    deep = {**events[2], "payload": {"jsonrpc": "2.0", "id": 1, "result": _nested(levels)}}
    r = _post(api, key, session, [*events[:2], deep, *events[3:]])
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": len(events), "duplicates": 0, "errors": []}
    stored = api.client.get(f"/api/v1/events/{deep['id']}", headers=bearer(read_key)).json()
    assert stored["payload"] == {
        "km_omitted": f"payload nested deeper than {MAX_DEPTH} levels",
        "size_bytes": deep["size_bytes"],
    }
    assert TOO_DEEP_RULE in [f["rule"] for f in stored["risk"]["findings"]]
    assert stored["risk"]["level"] != "none"
    # the rest of the batch is stored untouched
    other = api.client.get(f"/api/v1/events/{events[3]['id']}", headers=bearer(read_key)).json()
    assert other["payload"] == events[3]["payload"]


def test_brackets_in_strings_do_not_count_and_a_broken_deep_body_is_a_400(api: Api) -> None:
    _, key, read_key = api.org_with_keys("acme")
    session, events = session_batch(1)
    text = '"[{' * 3000 + "\\"  # brackets, quotes and a backslash inside one string
    batch = [{**events[0], "payload": {"text": text}}, {**events[1], "payload": _nested(2000)}]
    r = _post(api, key, session, [*batch, *events[2:]])
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text
    stored = api.client.get(f"/api/v1/events/{events[0]['id']}", headers=bearer(read_key)).json()
    assert stored["payload"] == {"text": text}
    assert api.client.get(f"/api/v1/events/{events[1]['id']}", headers=bearer(read_key)).json()["payload"][
        "km_omitted"
    ]
    broken = b'{"session": {}, "events": [' + b"[" * 2000 + b"]" * 1999 + b"}"
    r = api.client.post("/api/v1/events/batch", content=broken, headers=bearer(key))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_payload_at_the_limit_is_kept_as_is(api: Api) -> None:
    _, key, read_key = api.org_with_keys("acme")
    session, events = session_batch(1)
    r = _post(api, key, session, [{**events[0], "payload": _nested(MAX_DEPTH)}])
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    stored = api.client.get(f"/api/v1/events/{events[0]['id']}", headers=bearer(read_key)).json()
    payload: Any = "bottom"
    for _ in range(MAX_DEPTH):
        payload = [payload]
    assert stored["payload"] == payload


def test_over_deep_risk_rejects_only_its_event(api: Api) -> None:
    _, key, _ = api.org_with_keys("acme")
    session, events = session_batch(2)
    risk = {"score": 50, "level": "medium", "findings": [{"rule": "x", "path": "", "extra": _nested(400)}]}
    r = _post(api, key, session, [*events[:1], {**events[1], "risk": risk}, *events[2:]])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == len(events) - 1
    assert [e["index"] for e in body["errors"]] == [1]
    assert f"deeper than {MAX_DEPTH}" in body["errors"][0]["message"]
    assert _stored_ids(api) == {e["id"] for e in events} - {events[1]["id"]}


@pytest.mark.parametrize("field", ["client", "server", "capabilities"])
def test_over_deep_session_field_is_dropped_and_the_events_kept(api: Api, field: str) -> None:
    _, key, read_key = api.org_with_keys("acme")
    session, events = session_batch(2)
    deep_session = {**session, "name": "fs", field: {"name": "x", "nested": _nested(300)}}
    r = _post(api, key, deep_session, events)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == len(events)
    stored = api.client.get(f"/api/v1/sessions/{session['id']}", headers=bearer(read_key)).json()
    assert stored[field] is None  # refused, the rest of the session is kept
    assert stored["name"] == "fs" and stored["event_count"] == len(events)
    # a later upload with the field in range fills it
    r = _post(api, key, {**session, field: {"name": "ok"}}, [])
    assert r.status_code == 200
    stored = api.client.get(f"/api/v1/sessions/{session['id']}", headers=bearer(read_key)).json()
    assert stored[field] == {"name": "ok"}


# -- item 7: the monthly quota is exact under concurrency --------------------------------------


def test_quota_is_exact_under_eight_concurrent_batches(store_url: str, engine: Any) -> None:
    """8 threads post 2,000-event batches at once to a real `km serve`; the limit is 10,000."""
    org = tenancy.create_org(engine, "tight", "free")
    tenancy.set_limits(engine, org, events_per_month=10_000, retention_days=7)
    key = tenancy.create_key(engine, org, "ingest")
    bodies = [
        orjson.dumps(dict(zip(("session", "events"), session_batch(999), strict=True))) for _ in range(8)
    ]
    assert all(len(orjson.loads(b)["events"]) == 2000 for b in bodies)
    codes: list[int] = []
    start = threading.Barrier(len(bodies))
    with km_serve(store_url, env=dict(os.environ)) as base:

        def post(body: bytes) -> None:
            with httpx.Client(base_url=base, timeout=120) as client:
                start.wait()
                r = client.post("/api/v1/events/batch", content=body, headers=bearer(key))
                codes.append(r.status_code)

        threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(codes) == [200] * 5 + [402] * 3
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(events_table)).scalar()
        used = conn.execute(select(func.sum(org_usage.c.events)).where(org_usage.c.org_id == org.id)).scalar()
    assert stored == used == 10_000


# -- item 12: PATCH /api/v1/org validates every field against the plan ---------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"retention_days": True}, "retention_days"),
        ({"retention_days": "3"}, "retention_days"),
        ({"retention_days": 3.5}, "retention_days"),  # 3.0 is JSON Schema's integer 3 (item 20)
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": 2**70}, "retention_days"),
        ({}, "retention_days: Field required"),
        ({"events_per_month": None}, "events_per_month"),
        ({"retention_days": None}, "at most 7 days on the free plan"),
        ({"retention_days": 8}, "at most 7 days on the free plan"),
    ],
)
def test_org_settings_are_validated_against_the_plan(api: Api, body: Any, message: str) -> None:
    org = tenancy.create_org(api.engine, "small", "free")
    admin_key = tenancy.create_key(api.engine, org, "admin")
    r = api.client.patch("/api/v1/org", json=body, headers=bearer(admin_key))
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]["message"]
    after = tenancy.get_org(api.engine, org.id)
    assert (after.retention_days, after.events_per_month) == (7, 10_000)  # nothing changed
    r = api.client.patch("/api/v1/org", json={"retention_days": 3}, headers=bearer(admin_key))
    assert r.status_code == 200 and r.json()["retention_days"] == 3
    assert tenancy.get_org(api.engine, org.id).events_per_month == 10_000


def test_org_settings_within_the_plan(api: Api) -> None:
    team = tenancy.create_org(api.engine, "team", "team")
    key = tenancy.create_key(api.engine, team, "admin")
    assert (
        api.client.patch("/api/v1/org", json={"retention_days": 91}, headers=bearer(key)).status_code == 422
    )
    assert (
        api.client.patch("/api/v1/org", json={"retention_days": 90}, headers=bearer(key)).status_code == 200
    )
    big = tenancy.create_org(api.engine, "big", "unlimited")
    key = tenancy.create_key(api.engine, big, "admin")
    r = api.client.patch("/api/v1/org", json={"retention_days": None}, headers=bearer(key))
    assert r.status_code == 200 and r.json()["retention_days"] is None


# -- item 14: out-of-range cursors are a JSON 400 on both databases ------------------------------


@pytest.mark.parametrize(
    "raw",
    [f"{2**70}_0190", f"-{2**70}_0190", "-1_0190", "5_\x00", "5_", "1e9_a", "OTIyMzM3MjAzNjg1NDc3NTgwODp4"],
)
@pytest.mark.parametrize("path", ["/api/v1/events", "/api/v1/sessions"])
def test_out_of_range_cursors_and_numbers_never_fail(api: Api, raw: str, path: str) -> None:
    _, key, read_key = api.org_with_keys("acme")
    session, events = session_batch(1)
    assert _post(api, key, session, events).status_code == 200
    r = api.client.get(path, params={"cursor": raw}, headers=bearer(read_key))
    assert r.status_code == 422, r.text  # the cursor pattern the schema declares (item 20)
    assert r.json()["error"]["code"] == "invalid_request"
    # a time past 2**63 fits the pattern's 19 digits: it starts at the newest, never a 500
    r = api.client.get(path, params={"cursor": f"{2**63}_x"}, headers=bearer(read_key))
    assert r.status_code == 200 and r.json()["items"], r.text
    r = api.client.get(path, params={"limit": 2**70}, headers=bearer(read_key))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


# -- item 18: a NUL costs only its own event, the same on both databases ------------------------


def test_nul_characters_cost_only_their_event(api: Api) -> None:
    _, key, read_key = api.org_with_keys("acme")
    session, events = session_batch(3)
    truncated = {**events[2], "truncated": True, "payload": '{"jsonrpc":"2.0","params":"a\x00b'}
    in_string = {**events[3], "payload": {"text": "a\x00b"}}
    bad_method = {**events[4], "method": "tools/\x00call"}
    bad_error = {**events[5], "error": {"code": 1, "message": "x\x00"}, "is_error": True}
    batch = [*events[:2], truncated, in_string, bad_method, bad_error, *events[6:]]
    r = _post(api, key, session, batch)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["index"] for e in body["errors"]] == [4, 5]
    assert all("NUL" in e["message"] for e in body["errors"])
    assert body["accepted"] == len(events) - 2
    assert _stored_ids(api) == {e["id"] for e in events} - {events[4]["id"], events[5]["id"]}
    got = api.client.get(f"/api/v1/events/{truncated['id']}", headers=bearer(read_key)).json()
    assert got["payload"] == '{"jsonrpc":"2.0","params":"a\\u0000b'  # escaped the JSON way, on both
    got = api.client.get(f"/api/v1/events/{in_string['id']}", headers=bearer(read_key)).json()
    assert got["payload"] == {"text": "a\x00b"}


# -- item 19: session metadata is first-write-wins -----------------------------------------------


def test_another_key_cannot_rewrite_a_sessions_metadata(api: Api) -> None:
    org, key, read_key = api.org_with_keys("acme")
    other_key = tenancy.create_key(api.engine, org, "ingest")
    session, events = session_batch(2)
    running = {**session, "ended_at": None, "exit_code": None, "duration_ms": None}
    assert _post(api, key, running, events[:2]).status_code == 200
    forged = {
        **session,
        "name": "evil",
        "client": {"name": "evil"},
        "server": {"name": "evil"},
        "protocol_version": "evil",
        "capabilities": {"evil": {}},
        "ended_at": "2030-01-01T00:00:00.000000Z",
        "exit_code": 66,
    }
    # the stored session had no end yet: a later upload may fill it, but nothing else
    assert _post(api, other_key, forged, events[2:]).status_code == 200
    stored = api.client.get(f"/api/v1/sessions/{session['id']}", headers=bearer(read_key)).json()
    for field in ("name", "client", "server", "protocol_version", "capabilities"):
        assert stored[field] == session[field], field
    assert (stored["ended_at"], stored["exit_code"]) == ("2030-01-01T00:00:00.000000Z", 66)
    assert stored["event_count"] == len(events)
    # once set, the end time and exit code are not rewritten either
    again = {**forged, "ended_at": session["ended_at"], "exit_code": 0, "name": "evil2"}
    assert _post(api, key, again, []).status_code == 200
    stored = api.client.get(f"/api/v1/sessions/{session['id']}", headers=bearer(read_key)).json()
    assert (stored["ended_at"], stored["exit_code"], stored["name"]) == (
        "2030-01-01T00:00:00.000000Z",
        66,
        session["name"],
    )
