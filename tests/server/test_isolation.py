"""Tenant isolation: another organization's key can never read, count or infer this one's data."""

from __future__ import annotations

from kilometers.model import format_ts

from conftest import Api
from factory import BASE_NS, bearer, session_batch


def test_every_read_endpoint_is_scoped_to_the_keys_org(api: Api) -> None:
    _, a_ingest, a_read = api.org_with_keys("org-a")
    _, b_ingest, b_read = api.org_with_keys("org-b")
    a_session, a_events = session_batch(5, tool="secret_tool", name="a-server")
    r = api.client.post("/api/v1/events/batch", json={"session": a_session, "events": a_events},
                        headers=bearer(a_ingest))  # fmt: skip
    assert r.json()["accepted"] == len(a_events)
    hb = bearer(b_read)
    window = {"since": format_ts(BASE_NS - 10**12), "until": format_ts(BASE_NS + 10**13)}

    assert api.client.get("/api/v1/sessions", headers=hb).json() == {"items": [], "next_cursor": None}
    r = api.client.get(f"/api/v1/sessions/{a_session['id']}", headers=hb)
    assert r.status_code == 404
    for params in ({}, {"session_id": a_session["id"]}, {"tool": "secret_tool"}, {"q": "file1"}, window):
        assert api.client.get("/api/v1/events", params=params, headers=hb).json()["items"] == []
    for event in a_events[:3]:
        assert api.client.get(f"/api/v1/events/{event['id']}", headers=hb).status_code == 404
    stats = api.client.get("/api/v1/stats", params=window, headers=hb).json()
    assert stats["totals"]["events"] == 0 and stats["by_tool"] == [] and stats["by_server"] == []
    assert api.client.get("/api/v1/org", headers=hb).json()["name"] == "org-b"

    # org B re-sending A's ids stores B's own copy: no conflict reveals that A has them
    r = api.client.post("/api/v1/events/batch", json={"session": a_session, "events": a_events},
                        headers=bearer(b_ingest))  # fmt: skip
    assert r.json() == {"accepted": len(a_events), "duplicates": 0, "errors": []}
    # and A's view is unchanged by B's writes
    a_view = api.client.get(f"/api/v1/sessions/{a_session['id']}", headers=bearer(a_read)).json()
    assert a_view["event_count"] == len(a_events)
    a_stats = api.client.get("/api/v1/stats", params=window, headers=bearer(a_read)).json()
    assert a_stats["totals"]["events"] == len(a_events)
    # a cursor minted for A's data does not open B's
    page = api.client.get("/api/v1/events", params={"limit": 2}, headers=bearer(a_read)).json()
    other = api.client.get("/api/v1/events", params={"limit": 50, "cursor": page["next_cursor"]},
                           headers=bearer(b_read)).json()  # fmt: skip
    assert {e["id"] for e in other["items"]} <= {e["id"] for e in a_events}  # B's own copies only
    assert all(e["session_id"] == a_session["id"] for e in other["items"])
