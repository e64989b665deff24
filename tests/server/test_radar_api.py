"""GET /api/v1/radar (issue 12, item 4): the deprecation radar of the caller's organization,
on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Api
from factory import bearer, session_batch

SINCE = "2000-01-01T00:00:00Z"


def _ingest(api: Api, key: str, session: dict[str, Any], events: list[dict[str, Any]]) -> None:
    r = api.client.post(
        "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(key)
    )
    assert r.status_code == 200, r.text


def _radar(api: Api, key: str, **params: str) -> dict[str, Any]:
    r = api.client.get("/api/v1/radar", params=params, headers=bearer(key))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_radar_per_organization_with_filters(api: Api) -> None:
    _, ingest_a, read_a = api.org_with_keys("acme")
    _, ingest_b, read_b = api.org_with_keys("globex")
    _ingest(api, ingest_a, *session_batch(2, name="filesystem"))  # initialize: the handshake
    _ingest(api, ingest_b, *session_batch(1, name="github"))

    body = _radar(api, read_a, since=SINCE)
    assert body["current_version"] == "2026-07-28" and body["since"].startswith("2000-01-01")
    peers = {(p["role"], p["name"]): p for p in body["peers"]}
    assert set(peers) == {("server", "filesystem"), ("client", "claude")}  # not globex's github
    server = peers[("server", "filesystem")]
    assert server["versions"] == ["2025-11-25"] and not server["current"] and server["sessions"] == 1
    assert server["features"] == [
        {
            "feature": "handshake",
            "label": "initialize handshake and sessions",
            "status": "removed",
            "sessions": 1,
            "messages": 1,
        }
    ]
    assert [p["name"] for p in _radar(api, read_b, since=SINCE)["peers"]] == ["github", "claude"]
    assert _radar(api, read_a, since=SINCE, server="git*")["peers"] == []
    assert _radar(api, read_a)["peers"] == []  # the default: the last 30 days (the batch is older)


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01T00:00:00Z"])
def test_radar_bad_input_and_no_credentials(api: Api, since: str) -> None:
    _, _, read = api.org_with_keys("acme")
    r = api.client.get("/api/v1/radar", params={"since": since}, headers=bearer(read))
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parameter"
    assert api.client.get("/api/v1/radar").status_code == 401
    spec = api.client.get("/openapi.json").json()
    assert "/api/v1/radar" in spec["paths"]


def test_the_radar_reads_only_its_index(api: Api) -> None:
    """The radar counts a few methods per session; it used to read every event of every
    session in the window (9.8 s at 10M events on SQLite). Its statement is covered by the
    partial index that holds only those methods, on both databases."""
    from sqlalchemy import event

    from kilometers.store.radar import radar

    org, ingest, _ = api.org_with_keys("acme")
    _ingest(api, ingest, *session_batch(40, name="filesystem"))
    seen: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        if "GROUP BY" in args[2]:
            seen.append((args[2], args[3]))

    event.listen(api.engine, "before_cursor_execute", record)
    try:
        [server, _client] = radar(api.engine, org.id, since_ns=0)
    finally:
        event.remove(api.engine, "before_cursor_execute", record)
    assert server.uses["handshake"].messages == 1
    [(sql, params)] = seen
    with api.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = " ".join(str(r) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
            assert "COVERING INDEX ix_events_org_radar" in plan, plan
        else:  # a tiny table is read whole; the point is that the index can answer the query
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
            assert "Index Only Scan" in plan and ("radar" in plan or "method_session_id" in plan), plan
