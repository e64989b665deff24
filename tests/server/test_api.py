"""The ingestion and query API against SQLite and PostgreSQL."""

from __future__ import annotations

import gzip

import orjson
import pytest
from sqlalchemy import func, select

from kilometers.model import format_ts
from kilometers.server import tenancy
from kilometers.server.app import ServerSettings
from kilometers.store.schema import events as events_table

from conftest import Api
from factory import BASE_NS, bearer, session_batch


def _ingest(api: Api, key: str, session: dict, events: list, **kw: object) -> dict:  # type: ignore[type-arg]
    r = api.client.post(
        "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(key)
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_health_ready_openapi(api: Api) -> None:
    assert api.client.get("/health").json()["status"] == "ok"
    assert api.client.get("/ready").json() == {"status": "ready"}
    spec = api.client.get("/openapi.json").json()
    for path in ("/api/v1/events/batch", "/api/v1/sessions", "/api/v1/events", "/api/v1/stats"):
        assert path in spec["paths"]


def test_ingest_is_idempotent_and_readable(api: Api) -> None:
    _, ingest_key, read_key = api.org_with_keys("acme")
    session, events = session_batch(5)
    assert _ingest(api, ingest_key, session, events) == {"accepted": 12, "duplicates": 0, "errors": []}
    assert _ingest(api, ingest_key, session, events) == {"accepted": 0, "duplicates": 12, "errors": []}
    with api.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events_table)).scalar() == 12
    s = api.client.get(f"/api/v1/sessions/{session['id']}", headers=bearer(read_key)).json()
    assert s["event_count"] == 12 and s["exit_code"] == 0 and s["server"] == {"name": "filesystem"}
    listed = api.client.get(
        "/api/v1/events", params={"session_id": session["id"]}, headers=bearer(read_key)
    ).json()
    assert [e["id"] for e in listed["items"]] == [e["id"] for e in reversed(events)]  # newest first
    one = api.client.get(f"/api/v1/events/{events[3]['id']}", headers=bearer(read_key)).json()
    assert one["payload"] == events[3]["payload"] and one["paired_event_id"] == events[2]["id"]
    assert one["latency_ms"] == events[3]["latency_ms"]


def test_gzip_bodies(api: Api) -> None:
    _, key, _ = api.org_with_keys("acme")
    session, events = session_batch(2)
    body = gzip.compress(orjson.dumps({"session": session, "events": events}))
    headers = {**bearer(key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    r = api.client.post("/api/v1/events/batch", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["accepted"] == len(events)
    r = api.client.post("/api/v1/events/batch", content=b"\x1f\x8bnot gzip", headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_gzip"


def test_per_event_errors_do_not_reject_valid_events(api: Api) -> None:
    _, key, _ = api.org_with_keys("acme")
    session, events = session_batch(1)
    bad = [
        {**events[0], "id": "not-a-uuid"},
        {**events[0], "kind": "gossip"},
        {**events[0], "size_bytes": "big"},
        {**events[0], "surprise": 1},
        {**events[0], "session_id": "01a21f2b-0000-7000-8000-000000000000"},
        {**events[0], "ts": "yesterday"},
        "not an object",
    ]
    result = _ingest(api, key, session, events + bad)
    assert result["accepted"] == len(events)
    assert [e["index"] for e in result["errors"]] == list(range(len(events), len(events) + len(bad)))
    assert "session_id differs" in result["errors"][4]["message"]
    assert "ts" in result["errors"][5]["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[]", "invalid_batch"),
        (b'{"events": []}', "invalid_batch"),
        (b'{"session": {"id": "x"}, "events": []}', "invalid_batch"),
        (b'{"session": {}, "events": [], "extra": 1}', "invalid_batch"),
        (b'{"session": null, "events": {}}', "invalid_batch"),
    ],
)
def test_malformed_batches_are_400_and_store_nothing(api: Api, body: bytes, code: str) -> None:
    _, key, _ = api.org_with_keys("acme")
    r = api.client.post("/api/v1/events/batch", content=body, headers=bearer(key))
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    with api.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events_table)).scalar() == 0


def test_body_limit_413(engine, store_url: str) -> None:  # type: ignore[no-untyped-def]
    api = Api(engine, store_url, ServerSettings(max_body_bytes=2000))
    _, key, _ = api.org_with_keys("acme")
    session, events = session_batch(20)
    r = api.client.post(
        "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(key)
    )
    assert r.status_code == 413 and "exceeds 2000 bytes" in r.json()["error"]["message"]
    bomb = gzip.compress(b'{"session": ' + b" " * 100_000 + b"}")
    headers = {**bearer(key), "Content-Encoding": "gzip"}
    assert api.client.post("/api/v1/events/batch", content=bomb, headers=headers).status_code == 413


def test_rate_limit_429_with_retry_after(engine, store_url: str) -> None:  # type: ignore[no-untyped-def]
    api = Api(engine, store_url, ServerSettings(rate_per_second=0.5, rate_burst=2))
    _, _, key = api.org_with_keys("acme")
    codes = [api.client.get("/api/v1/sessions", headers=bearer(key)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    r = api.client.get("/api/v1/sessions", headers=bearer(key))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_auth_errors(api: Api) -> None:
    org, ingest_key, read_key = api.org_with_keys("acme")
    session, events = session_batch(1)
    body = {"session": session, "events": events}
    r = api.client.post("/api/v1/events/batch", json=body)
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = api.client.get("/api/v1/events", headers=bearer("km_live_" + "x" * 43))
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = api.client.post("/api/v1/events/batch", json=body, headers=bearer(read_key))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    r = api.client.get("/api/v1/events", headers=bearer(ingest_key))
    assert r.status_code == 403
    assert api.client.get("/api/v1/events", headers={"X-API-Key": read_key}).status_code == 200
    [key] = [k for k in tenancy.list_keys(api.engine, org) if k.scope == "read"]
    tenancy.revoke_key(api.engine, key.id)
    fresh = Api(api.engine, str(api.engine.url.render_as_string(hide_password=False)))  # no auth cache
    r = fresh.client.get("/api/v1/events", headers=bearer(read_key))
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"


def test_admin_scope_can_ingest_and_read(api: Api) -> None:
    org = tenancy.create_org(api.engine, "acme", "unlimited")
    key = tenancy.create_key(api.engine, org, "admin")
    session, events = session_batch(1)
    assert _ingest(api, key, session, events)["accepted"] == len(events)
    assert len(api.client.get("/api/v1/events", headers=bearer(key)).json()["items"]) == len(events)


def test_filters_and_cursor_pagination(api: Api) -> None:
    _, ingest_key, read_key = api.org_with_keys("acme")
    session, events = session_batch(30, error_every=10)
    _ingest(api, ingest_key, session, events)
    h = bearer(read_key)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/api/v1/events", params=params, headers=h).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [e["id"] for e in reversed(events)]
    errs = api.client.get("/api/v1/events", params={"errors": "true"}, headers=h).json()["items"]
    assert len(errs) == 3 and all(e["kind"] == "error" for e in errs)
    reqs = api.client.get("/api/v1/events", params={"kind": "request", "tool": "read_file"}, headers=h).json()
    assert len(reqs["items"]) == 30
    text = api.client.get("/api/v1/events", params={"q": "FILE17.TXT"}, headers=h).json()["items"]
    assert [e["jsonrpc_id"] for e in text] == [17]
    since = format_ts(BASE_NS + 25 * 10**9)
    recent = api.client.get("/api/v1/events", params={"since": since}, headers=h).json()["items"]
    assert {e["jsonrpc_id"] for e in recent} == set(range(25, 31))
    bad = api.client.get("/api/v1/events", params={"cursor": "AAAA"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert api.client.get("/api/v1/events", params={"cursor": "!!!"}, headers=h).status_code == 422
    assert api.client.get("/api/v1/events", params={"since": "soon"}, headers=h).status_code == 422
    assert api.client.get("/api/v1/events", params={"limit": 0}, headers=h).status_code == 422
    sessions = api.client.get("/api/v1/sessions", headers=h).json()
    assert [s["id"] for s in sessions["items"]] == [session["id"]] and sessions["next_cursor"] is None


def test_stats_come_from_rollups(api: Api) -> None:
    _, ingest_key, read_key = api.org_with_keys("acme")
    session, events = session_batch(70, error_every=10)
    _ingest(api, ingest_key, session, events)
    _ingest(api, ingest_key, session, events)  # duplicates must not count twice
    params = {
        "since": format_ts(BASE_NS - 10**9),
        "until": format_ts(BASE_NS + 3600 * 10**9),
        "bucket": "minute",
    }
    stats = api.client.get("/api/v1/stats", params=params, headers=bearer(read_key)).json()
    [tool] = stats["by_tool"]
    assert (tool["server"], tool["tool"], tool["calls"], tool["errors"]) == ("filesystem", "read_file", 70, 7)
    assert tool["error_rate"] == 0.1
    # latencies are 1..7 ms; percentiles come from a log histogram (within ~10%)
    assert 3.6 <= tool["p50_ms"] <= 4.4 and 6.3 <= tool["p99_ms"] <= 7.7
    assert sum(b["calls"] for b in stats["series"]) == 71  # initialize + 70 calls
    assert len(stats["series"]) == 2  # 70 calls a second apart span two minutes
    assert {m["method"] for m in stats["by_method"]} == {"initialize", "tools/call"}
    bad = api.client.get("/api/v1/stats", params={"since": params["until"], "until": params["since"]},
                         headers=bearer(read_key))  # fmt: skip
    assert bad.status_code == 422


def test_monthly_quota_402_names_the_limit(api: Api) -> None:
    org, key, _ = api.org_with_keys("tiny")
    tenancy.set_limits(api.engine, org, events_per_month=10, retention_days=7)
    fresh = Api(api.engine, str(api.engine.url.render_as_string(hide_password=False)))
    session, events = session_batch(2)  # 6 events
    assert _ingest(fresh, key, session, events)["accepted"] == 6
    session2, events2 = session_batch(2)
    r = fresh.client.post(
        "/api/v1/events/batch", json={"session": session2, "events": events2}, headers=bearer(key)
    )
    assert r.status_code == 402
    assert "limit of 10 events per month" in r.json()["error"]["message"]
    assert _ingest(fresh, key, session, events)["duplicates"] == 6  # re-sends of stored data still succeed


def test_retention_drops_old_data_per_org(api: Api) -> None:
    from kilometers.server.retention import DAY_NS, apply_retention

    short, short_key, short_read = api.org_with_keys("short")
    tenancy.set_limits(api.engine, short, events_per_month=None, retention_days=7)
    _, long_key, long_read = api.org_with_keys("forever")
    old_session, old_events = session_batch(2, start_ns=BASE_NS)
    new_session, new_events = session_batch(2, start_ns=BASE_NS + 30 * DAY_NS)
    for key in (short_key, long_key):
        _ingest(api, key, old_session, old_events)
        _ingest(api, key, new_session, new_events)
    removed = apply_retention(api.engine, now_ns=BASE_NS + 31 * DAY_NS)
    assert removed == {"short": len(old_events)}
    fresh = Api(api.engine, str(api.engine.url.render_as_string(hide_password=False)))
    short_items = fresh.client.get("/api/v1/events", params={"limit": 100}, headers=bearer(short_read)).json()
    assert {e["session_id"] for e in short_items["items"]} == {new_session["id"]}
    sessions = fresh.client.get("/api/v1/sessions", headers=bearer(short_read)).json()["items"]
    assert [s["id"] for s in sessions] == [new_session["id"]]
    long_items = fresh.client.get("/api/v1/events", params={"limit": 100}, headers=bearer(long_read)).json()
    assert len(long_items["items"]) == len(old_events) + len(new_events)
    window = {
        "since": format_ts(BASE_NS - DAY_NS),
        "until": format_ts(BASE_NS + 32 * DAY_NS),
        "bucket": "day",
    }
    stats = fresh.client.get("/api/v1/stats", params=window, headers=bearer(short_read)).json()
    assert stats["totals"]["events"] == len(new_events)
    [day] = stats["series"]  # one day bucket, aggregated in the database
    assert day["events"] == len(new_events) and day["minute"] % 1440 == 0


def test_prometheus_metrics_need_the_operator_token(engine, store_url: str) -> None:  # type: ignore[no-untyped-def]
    closed = Api(engine, store_url)
    assert closed.client.get("/metrics").status_code == 404
    api = Api(engine, store_url, ServerSettings(metrics_token="op-secret"))
    _, ingest_key, _ = api.org_with_keys("acme")
    session, events = session_batch(3, error_every=3)
    _ingest(api, ingest_key, session, events)
    _ingest(api, ingest_key, session, events)
    assert api.client.get("/metrics").status_code == 401
    assert api.client.get("/metrics", headers=bearer(ingest_key)).status_code == 401
    text = api.client.get("/metrics", headers=bearer("op-secret")).text
    assert 'km_ingest_events_total{result="accepted"} 8.0' in text
    assert 'km_ingest_events_total{result="duplicate"} 8.0' in text
    assert 'km_tool_calls_total{server="filesystem",tool="read_file"} 3.0' in text
    assert 'km_tool_errors_total{server="filesystem",tool="read_file"} 1.0' in text
    assert 'km_tool_latency_seconds_count{server="filesystem",tool="read_file"} 3.0' in text
    assert 'km_ingest_batches_total{status="ok"} 2.0' in text


def test_metric_labels_are_bounded() -> None:
    from prometheus_client import CollectorRegistry

    from kilometers.export.prometheus import ToolMetrics

    tools = ToolMetrics(CollectorRegistry(), max_series=3)
    for i in range(50):
        tools.observe("srv", "request", "client_to_server", f"tool{i}", False, None)
    labels = {s.labels["tool"] for m in tools.calls.collect() for s in m.samples if s.name.endswith("_total")}
    assert labels == {"tool0", "tool1", "tool2", "other"}


def test_findings_are_stored_and_aggregated(api: Api) -> None:
    _, ingest_key, read_key = api.org_with_keys("acme")
    session, events = session_batch(3)
    finding = {
        "rule": "secret.github_token",
        "severity": "high",
        "path": "/result",
        "message": "ghp_… (40 chars)",
    }
    events[3]["risk"] = {"score": 70, "level": "high", "findings": [finding]}
    events[4]["risk"] = {
        "score": 999,
        "level": "high",
        "findings": [finding],
    }  # invalid: reported, not stored
    result = _ingest(api, ingest_key, session, events)
    assert result["accepted"] == len(events) - 1 and result["errors"][0]["index"] == 4
    h = bearer(read_key)
    stored = api.client.get(f"/api/v1/events/{events[3]['id']}", headers=h).json()
    assert stored["risk"] == {"score": 70, "level": "high", "findings": [finding]}
    [listed] = api.client.get("/api/v1/sessions", headers=h).json()["items"]
    assert listed["risk"] == {"events_with_findings": 1, "max_score": 70, "level": "high"}
    window = {"since": format_ts(BASE_NS - 10**9), "until": format_ts(BASE_NS + 3600 * 10**9)}
    assert api.client.get("/api/v1/stats", params=window, headers=h).json()["totals"]["findings"] == 1


def _token() -> str:
    import random
    import string

    rng = random.Random(11)
    return "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


def test_server_redacts_secrets_clients_left_in(engine, store_url: str) -> None:  # type: ignore[no-untyped-def]
    """The backstop: a client with analysis off (no risk, secrets in clear) still stores nothing secret."""
    token = _token()
    for redact in (True, False):
        api = Api(engine, store_url, ServerSettings(redact_secrets=redact))
        _, ingest_key, read_key = api.org_with_keys(f"acme-{redact}")
        session, events = session_batch(2, error_every=2)
        session["command"] = ["server", f"--token={token}"]
        events[3]["payload"]["result"]["content"][0]["text"] = f"here: {token}"
        events[-1]["error"]["message"] = f"bad token {token}"
        for e in events:
            e.pop("risk", None)
        assert _ingest(api, ingest_key, session, events)["accepted"] == len(events)
        h = bearer(read_key)
        stored = api.client.get(f"/api/v1/events/{events[3]['id']}", headers=h).json()
        failed = api.client.get(f"/api/v1/events/{events[-1]['id']}", headers=h).json()
        command = api.client.get(f"/api/v1/sessions/{session['id']}", headers=h).json()["command"]
        with api.engine.connect() as conn:
            everything = str([tuple(r) for r in conn.execute(select(events_table))])  # a Row shortens values
        if redact:
            assert token not in everything and token not in str(command)
            assert "[REDACTED:secret.github_token]" in stored["payload"]["result"]["content"][0]["text"]
            assert stored["risk"]["level"] in ("high", "critical")
            assert [f["rule"] for f in stored["risk"]["findings"]] == ["secret.github_token"]
            assert token not in failed["error"]["message"] and failed["risk"]["findings"]
        else:
            assert token in stored["payload"]["result"]["content"][0]["text"]
            assert stored["risk"]["findings"] == []
        api.client.close()


def test_free_text_pages_read_a_bounded_number_of_events(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rare word must not make one request read every payload: a page stops after
    TEXT_SCAN_ROWS events and its cursor continues the search further back."""
    from kilometers.store import queries

    monkeypatch.setattr(queries, "TEXT_SCAN_ROWS", 10)
    _, ingest_key, read_key = api.org_with_keys("acme")
    old_session, old_events = session_batch(3, start_ns=BASE_NS)
    old_events[-1]["payload"]["result"]["content"][0]["text"] = "the Needle is here"
    _ingest(api, ingest_key, old_session, old_events)
    new_session, new_events = session_batch(15, start_ns=BASE_NS + 3600 * 10**9)
    _ingest(api, ingest_key, new_session, new_events)
    h = bearer(read_key)
    pages, found, cursor = 0, [], None
    while True:
        params = {"q": "needle", "limit": 5, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/api/v1/events", params=params, headers=h).json()
        pages += 1
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            assert "searched_to" not in page
            break
        assert page["searched_to"] and len(page["items"]) <= 5
    assert [e["id"] for e in found] == [old_events[-1]["id"]]
    assert pages == 5  # 40 events, 10 read per page, then one empty page ends the search
    # without free text nothing changes: full pages, no searched_to
    plain = api.client.get("/api/v1/events", params={"limit": 5}, headers=h).json()
    assert len(plain["items"]) == 5 and "searched_to" not in plain


def test_a_session_pages_oldest_first(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """order=oldest reads a session from its start (the inspector): every event once, in time
    order, across pages and events that share a time; other sessions and orgs stay out."""
    from kilometers.store import queries

    _, ingest_key, read_key = api.org_with_keys("acme")
    session, events = session_batch(20)
    for e in events[4:8]:  # four events at one instant: the id breaks the tie
        e["ts"] = events[4]["ts"]
    _ingest(api, ingest_key, session, events)
    other, other_events = session_batch(5, start_ns=BASE_NS - 3600 * 10**9)
    _ingest(api, ingest_key, other, other_events)
    _, other_ingest, _ = api.org_with_keys("other")
    _ingest(api, other_ingest, session, events)  # the same ids in another org
    h = bearer(read_key)

    def read_all(**extra: str) -> list[dict]:  # type: ignore[type-arg]
        seen: list[dict] = []  # type: ignore[type-arg]
        cursor = None
        while True:
            params = {"session_id": session["id"], "order": "oldest", "limit": 3, **extra}
            page = api.client.get(
                "/api/v1/events", params={**params, **({"cursor": cursor} if cursor else {})}, headers=h
            )
            assert page.status_code == 200, page.text
            seen += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return seen

    seen = read_all()
    expected = sorted(events, key=lambda e: (e["ts"], e["id"]))
    assert [e["id"] for e in seen] == [e["id"] for e in expected]
    assert seen[0]["method"] == "initialize"
    newest = api.client.get(
        "/api/v1/events", params={"session_id": session["id"], "limit": 1}, headers=h
    ).json()
    assert newest["items"][0]["id"] == expected[-1]["id"]  # the default stays newest first
    # free text, oldest first, with a bounded scan per page: still every match, in order
    monkeypatch.setattr(queries, "TEXT_SCAN_ROWS", 4)
    matches = read_all(q="CONTENTS 1")
    assert [e["jsonrpc_id"] for e in matches] == [1, *range(10, 20)]
    bad = api.client.get("/api/v1/events", params={"order": "sideways"}, headers=h)
    assert bad.status_code == 422
