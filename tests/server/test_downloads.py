"""Downloading a session or a search from the dashboard (issue 14, item 4): GET /api/v1/export
streams what `km export` writes, JSON Lines (lossless: `km import` reads it back) or HAR 1.2, for
one session or every event a search matches, within the caller's organization; on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import orjson

from server.conftest import Api
from server.factory import BASE_NS, bearer, session_batch

from km_helpers import km_cli, km_env, km_events


def _upload(api: Api, key: str, **kw: object) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    session, events = session_batch(**kw)  # type: ignore[arg-type]
    r = api.client.post(
        "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(key)
    )
    assert r.status_code == 200 and r.json()["errors"] == [], r.text
    return session, events


def test_a_session_downloads_as_json_lines_that_km_import_reads_back(api: Api, tmp_path: Path) -> None:
    _, ingest, read = api.org_with_keys("acme")
    session, events = _upload(api, ingest, n_calls=4)
    _upload(api, ingest, n_calls=2, name="other", start_ns=BASE_NS + 10**12)
    r = api.client.get("/api/v1/export", params={"session_id": session["id"]}, headers=bearer(read))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert r.headers["content-disposition"] == f'attachment; filename="km-session-{session["id"][:8]}.jsonl"'
    records = [orjson.loads(line) for line in r.content.splitlines()]
    assert records[0]["record"] == "session" and records[0]["id"] == session["id"]
    assert [e["id"] for e in records[1:]] == [e["id"] for e in events]  # time order, this session only
    path = tmp_path / "session.jsonl"
    path.write_bytes(r.content)
    home = tmp_path / "home"
    home.mkdir()
    km_cli("import", str(path), env=km_env(home))
    assert sorted(e["id"] for e in km_events(home)) == sorted(e["id"] for e in events)


def test_a_search_downloads_as_har_with_one_entry_per_call(api: Api) -> None:
    _, ingest, read = api.org_with_keys("acme")
    _upload(api, ingest, n_calls=3, error_every=3)
    _upload(api, ingest, n_calls=2, name="other", tool="write_file", start_ns=BASE_NS + 10**12)
    r = api.client.get("/api/v1/export", params={"format": "har", "tool": "read_file"}, headers=bearer(read))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"].startswith('attachment; filename="km-search-')
    assert r.headers["content-disposition"].endswith('.har"')
    har = orjson.loads(r.content)
    entries = har["log"]["entries"]
    assert har["log"]["version"] == "1.2" and len(entries) == 3
    assert all("/tools/call" in e["request"]["url"] for e in entries)
    r = api.client.get("/api/v1/export", params={"format": "jsonl", "errors": "true"}, headers=bearer(read))
    events = [orjson.loads(line) for line in r.content.splitlines() if b'"record":"event"' in line]
    assert len(events) == 1 and events[0]["error"]["message"] == "disk on fire"


def test_downloads_stay_within_the_organization_and_refuse_bad_input(api: Api) -> None:
    _, ingest, read = api.org_with_keys("acme")
    session, _ = _upload(api, ingest)
    _, _, other_read = api.org_with_keys("globex")
    r = api.client.get("/api/v1/export", params={"session_id": session["id"]}, headers=bearer(other_read))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.client.get("/api/v1/export", headers=bearer(other_read))
    assert r.status_code == 200 and r.content == b""  # another organization's search finds nothing
    assert api.client.get("/api/v1/export", params={"format": "csv"}, headers=bearer(read)).status_code == 422
    assert (
        api.client.get("/api/v1/export", params={"since": "yesterday"}, headers=bearer(read)).status_code
        == 422
    )
    assert api.client.get("/api/v1/export").status_code == 401
    assert api.client.get("/api/v1/export", headers=bearer(ingest)).status_code == 403


def test_a_har_larger_than_the_limit_is_refused_with_the_way_out(api: Api, monkeypatch: object) -> None:
    from kilometers.server import downloads

    monkeypatch.setattr(downloads, "MAX_HAR_EVENTS", 5)  # type: ignore[attr-defined]
    _, ingest, read = api.org_with_keys("acme")
    _upload(api, ingest, n_calls=4)
    r = api.client.get("/api/v1/export", params={"format": "har"}, headers=bearer(read))
    assert r.status_code == 413 and r.json()["error"]["code"] == "export_too_large"
    assert "download JSON Lines" in r.json()["error"]["message"]
    assert api.client.get("/api/v1/export", headers=bearer(read)).status_code == 200
