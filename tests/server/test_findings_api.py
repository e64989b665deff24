"""The security view's read API: GET /api/v1/findings and /api/v1/findings/summary, and the
risk filters of /api/v1/sessions and /api/v1/events (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from kilometers.analysis.findings import SEVERITIES
from kilometers.model import Event, Session, format_ts
from kilometers.server.app import ServerSettings, create_app
from kilometers.store import db, findings
from kilometers.store.codec import event_row, session_row
from kilometers.store.schema import events as events_table
from kilometers.store.schema import sessions as sessions_table

from conftest import Api
from factory import BASE_NS, bearer, session_batch


def _risk(*found: tuple[str, str, str]) -> dict[str, Any]:
    weights = {"info": 0, "low": 10, "medium": 40, "high": 70, "critical": 90}
    top = max(found, key=lambda f: weights[f[1]])[1]
    return {
        "score": weights[top],
        "level": "none" if top == "info" else top,
        "findings": [{"rule": r, "severity": s, "path": p, "message": f"{r} at {p}"} for r, s, p in found],
    }


def _ingest(api: Api, key: str, session: dict[str, Any], evs: list[dict[str, Any]]) -> None:
    r = api.client.post("/api/v1/events/batch", json={"session": session, "events": evs}, headers=bearer(key))
    assert r.status_code == 200 and not r.json()["errors"], r.text


class Recorded:
    """Two servers' sessions with five findings on four events, and another org's finding."""

    def __init__(self, api: Api) -> None:
        _, ingest, self.key = api.org_with_keys("acme")
        self.fs, fs_events = session_batch(3, tool="read_file", name="filesystem")
        # events: 0 init, 1 init answer, 2/3 call 1, 4/5 call 2, 6/7 call 3
        fs_events[2]["risk"] = _risk(
            ("secret.aws_access_key", "high", "/params/arguments/env/AWS_KEY"),
            ("pii.email", "low", "/params/arguments/to"),
        )
        fs_events[4]["risk"] = _risk(("danger.shell", "critical", "/params/arguments/command"))
        self.shell, shell_events = session_batch(2, tool="run", name="shell", start_ns=BASE_NS + 60 * 10**9)
        shell_events[1]["risk"] = _risk(
            ("poisoning.hidden_instructions", "critical", "/result/tools/0/description"),
        )
        shell_events[2]["risk"] = _risk(("analysis.partial", "info", ""))
        _ingest(api, ingest, self.fs, fs_events)
        _ingest(api, ingest, self.shell, shell_events)
        self.fs_events, self.shell_events = fs_events, shell_events
        _, other_ingest, self.other_key = api.org_with_keys("other")
        other, other_events = session_batch(1, name="filesystem")
        other_events[2]["risk"] = _risk(("secret.github_token", "critical", "/params/arguments/token"))
        _ingest(api, other_ingest, other, other_events)

    def get(self, api: Api, path: str = "/api/v1/findings", **params: Any) -> Any:
        r = api.client.get(path, params=params, headers=bearer(self.key))
        assert r.status_code == 200, r.text
        return r.json()

    def rules(self, api: Api, **params: Any) -> list[str]:
        return [f["rule"] for f in self.get(api, **params)["items"]]


@pytest.fixture
def rec(api: Api) -> Recorded:
    return Recorded(api)


def test_every_finding_with_its_event_session_server_tool_and_path(api: Api, rec: Recorded) -> None:
    page = rec.get(api)
    assert page["next_cursor"] is None
    # newest first; within one event, the later finding first (a stable keyset order)
    assert [(f["rule"], f["index"]) for f in page["items"]] == [
        ("analysis.partial", 0),
        ("poisoning.hidden_instructions", 0),
        ("danger.shell", 0),
        ("pii.email", 1),
        ("secret.aws_access_key", 0),
    ]
    secret = page["items"][-1]
    call = rec.fs_events[2]
    assert secret == {
        "event_id": call["id"],
        "session_id": rec.fs["id"],
        "ts": call["ts"],
        "rule": "secret.aws_access_key",
        "severity": "high",
        "path": "/params/arguments/env/AWS_KEY",
        "message": "secret.aws_access_key at /params/arguments/env/AWS_KEY",
        "index": 0,
        "server": "filesystem",
        "tool": "read_file",
        "method": "tools/call",
        "kind": "request",
        "direction": "client_to_server",
        "event_level": "high",
    }
    other = api.client.get("/api/v1/findings", headers=bearer(rec.other_key)).json()["items"]
    assert [f["rule"] for f in other] == ["secret.github_token"]  # never another org's


def test_filters(api: Api, rec: Recorded) -> None:
    assert rec.rules(api, severity="critical") == ["poisoning.hidden_instructions", "danger.shell"]
    assert rec.rules(api, severity=["low", "info"]) == ["analysis.partial", "pii.email"]
    assert rec.rules(api, min_severity="high") == [
        "poisoning.hidden_instructions",
        "danger.shell",
        "secret.aws_access_key",
    ]
    assert rec.rules(api, rule="danger.shell") == ["danger.shell"]
    assert rec.rules(api, rule="secret.*") == ["secret.aws_access_key"]
    assert rec.rules(api, rule="secret.aws") == []  # exact unless it ends in *
    assert rec.rules(api, rule="%") == [] and rec.rules(api, rule="_*") == []  # no LIKE wildcards
    assert rec.rules(api, server="shell") == ["analysis.partial", "poisoning.hidden_instructions"]
    assert rec.rules(api, server="file*") == ["danger.shell", "pii.email", "secret.aws_access_key"]
    assert rec.rules(api, server="nothing-like-it") == []
    assert rec.rules(api, session_id=rec.shell["id"].upper()) == [
        "analysis.partial",
        "poisoning.hidden_instructions",
    ]
    assert rec.rules(api, tool="read_file", severity="critical") == ["danger.shell"]
    call2 = rec.fs_events[4]["ts"]
    assert rec.rules(api, since=call2, until=rec.shell_events[0]["ts"]) == ["danger.shell"]
    assert rec.rules(api, until=call2) == ["pii.email", "secret.aws_access_key"]


def test_sorting(api: Api, rec: Recorded) -> None:
    assert rec.rules(api, sort="severity") == [
        "poisoning.hidden_instructions",  # critical, newest first
        "danger.shell",
        "secret.aws_access_key",
        "pii.email",
        "analysis.partial",
    ]
    assert rec.rules(api, sort="oldest") == list(reversed(rec.rules(api)))


@pytest.mark.parametrize("sort", ["newest", "oldest", "severity"])
def test_pagination_visits_every_finding_once(api: Api, rec: Recorded, sort: str) -> None:
    whole = rec.get(api, sort=sort)["items"]
    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        page = rec.get(api, sort=sort, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == whole and len(seen) == 5


def test_summary_by_rule_and_by_server(api: Api, rec: Recorded) -> None:
    by_rule = rec.get(api, "/api/v1/findings/summary", group="rule")
    assert by_rule["group"] == "rule" and by_rule["total"] == 5 and not by_rule["truncated"]
    assert by_rule["by_severity"] == {"info": 1, "low": 1, "medium": 0, "high": 1, "critical": 2}
    keys = [g["key"] for g in by_rule["items"]]
    assert keys == [  # highest severity first, then count, then name
        "danger.shell",
        "poisoning.hidden_instructions",
        "secret.aws_access_key",
        "pii.email",
        "analysis.partial",
    ]
    poisoning = by_rule["items"][1]
    assert poisoning["count"] == 1 and poisoning["highest"] == "critical" and poisoning["sessions"] == 1
    assert poisoning["related"] == 1  # found on one server
    assert poisoning["first_seen"] == poisoning["last_seen"] == rec.shell_events[1]["ts"]

    by_server = rec.get(api, "/api/v1/findings/summary", group="server")
    assert [(g["key"], g["count"], g["highest"], g["related"]) for g in by_server["items"]] == [
        ("filesystem", 3, "critical", 3),
        ("shell", 2, "critical", 2),
    ]
    fs = by_server["items"][0]
    assert fs["by_severity"] == {"info": 0, "low": 1, "medium": 0, "high": 1, "critical": 1}
    assert fs["first_seen"] == rec.fs_events[2]["ts"] and fs["last_seen"] == rec.fs_events[4]["ts"]
    # the summary takes the list's filters, and a limit on the groups
    one = rec.get(api, "/api/v1/findings/summary", group="server", min_severity="high", limit=1)
    assert [(g["key"], g["count"]) for g in one["items"]] == [("filesystem", 2)] and one["truncated"]
    assert one["total"] == 3
    session = rec.get(api, "/api/v1/findings/summary", session_id=rec.fs["id"])
    assert session["total"] == 3 and len(session["items"]) == 3
    # filters that exclude each other: nothing, whatever the rule filter (no empty OR in SQL)
    for extra in ({}, {"rule": "danger.*"}):
        none = rec.get(api, "/api/v1/findings/summary", severity="high", min_severity="critical", **extra)
        assert none["total"] == 0 and none["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/findings", {"severity": "severe"}, 422, "invalid_request"),
        ("/api/v1/findings", {"min_severity": "none"}, 422, "invalid_request"),
        ("/api/v1/findings", {"sort": "rule"}, 422, "invalid_request"),
        ("/api/v1/findings", {"limit": "0"}, 422, "invalid_request"),
        ("/api/v1/findings", {"limit": "501"}, 422, "invalid_request"),
        ("/api/v1/findings", {"cursor": "not-a-cursor"}, 422, "invalid_request"),
        ("/api/v1/findings", {"since": "yesterday"}, 422, "invalid_parameter"),
        ("/api/v1/findings", {"rule": "x" * 201}, 422, "invalid_request"),
        ("/api/v1/findings/summary", {"group": "tool"}, 422, "invalid_request"),
        ("/api/v1/findings/summary", {"until": "2026-13-01T00:00:00Z"}, 422, "invalid_parameter"),
        ("/api/v1/sessions", {"min_level": "severe"}, 422, "invalid_request"),
        ("/api/v1/events", {"min_level": "none"}, 422, "invalid_request"),
    ],
)
def test_bad_parameters_are_declared_4xx(
    api: Api, rec: Recorded, path: str, params: dict[str, str], status: int, code: str
) -> None:
    r = api.client.get(path, params=params, headers=bearer(rec.key))
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    spec = api.client.get("/openapi.json").json()
    assert str(status) in spec["paths"][path]["get"]["responses"]


def test_needs_a_read_credential(api: Api, rec: Recorded) -> None:
    for path in ("/api/v1/findings", "/api/v1/findings/summary"):
        assert api.client.get(path).status_code == 401
        assert api.client.get(path, headers=bearer("km_live_nope")).status_code == 401


def test_a_cursor_past_the_end_and_a_huge_time(api: Api, rec: Recorded) -> None:
    assert rec.get(api, cursor="4_9999999999999999999_zzzz_0")["items"] != []  # clamped: starts at the newest
    assert rec.get(api, cursor="0_0_0_0")["items"] == []


def test_openapi_describes_the_responses(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    ok = spec["paths"]["/api/v1/findings"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"]["$ref"].endswith("/FindingPage")
    item = spec["components"]["schemas"]["FindingItem"]
    assert {"event_id", "session_id", "rule", "severity", "path", "server", "tool", "ts"} <= set(
        item["required"]
    )
    summary = spec["paths"]["/api/v1/findings/summary"]["get"]["responses"]["200"]["content"]
    assert summary["application/json"]["schema"]["$ref"].endswith("/FindingSummaryOut")


def test_risk_filters_of_sessions_and_events(api: Api, rec: Recorded) -> None:
    def ids(path: str, **params: Any) -> list[str]:
        return [x["id"] for x in rec.get(api, path, **params)["items"]]

    assert ids("/api/v1/sessions", min_level="critical") == [rec.shell["id"], rec.fs["id"]]
    assert ids("/api/v1/sessions", min_level="high") == [rec.shell["id"], rec.fs["id"]]
    listed = rec.get(api, "/api/v1/sessions", min_level="low")["items"]
    assert [s["risk"]["level"] for s in listed] == ["critical", "critical"]
    assert ids("/api/v1/events", min_level="critical") == [rec.shell_events[1]["id"], rec.fs_events[4]["id"]]
    assert ids("/api/v1/events", min_level="high", session_id=rec.fs["id"]) == [
        rec.fs_events[4]["id"],
        rec.fs_events[2]["id"],
    ]
    # the info-only event has findings but no level: not a risky event
    assert rec.shell_events[2]["id"] not in ids("/api/v1/events", min_level="low")


def test_sessions_min_level_paginates(api: Api) -> None:
    _, ingest, key = api.org_with_keys("acme")
    risky = []
    for i in range(5):
        session, evs = session_batch(1, name=f"s{i}", start_ns=BASE_NS + i * 10**9)
        if i % 2 == 0:
            evs[2]["risk"] = _risk(("danger.shell", "high", "/params"))
            risky.append(session["id"])
        _ingest(api, ingest, session, evs)
    seen: list[str] = []
    params: dict[str, Any] = {"min_level": "medium", "limit": 1}
    while True:
        page = api.client.get("/api/v1/sessions", params=params, headers=bearer(key)).json()
        seen += [s["id"] for s in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == list(reversed(risky))


def test_hostile_finding_fields_come_back_as_text(api: Api) -> None:
    _, ingest, key = api.org_with_keys("acme")
    session, evs = session_batch(1)
    evs[2]["risk"] = {
        "score": 90,
        "level": "critical",
        "findings": [
            {"rule": "poisoning.bidi", "severity": "critical", "path": "/a\u0000b/\u202eevil", "message": 7},
            {"rule": "odd.severity", "severity": "apocalyptic"},
            {"rule": 'quote"rule', "severity": "low", "path": "/x"},
        ],
    }
    _ingest(api, ingest, session, evs)
    r = api.client.get("/api/v1/findings", params={"sort": "oldest"}, headers=bearer(key))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(f["rule"], f["severity"], f["path"], f["message"]) for f in items] == [
        ("poisoning.bidi", "critical", "/a\u0000b/\u202eevil", ""),
        ("odd.severity", "info", "", ""),  # an unknown severity reads as info, as analysis reads it
        ('quote"rule', "low", "/x", ""),
    ]
    r = api.client.get("/api/v1/findings", params={"rule": 'quote"rule'}, headers=bearer(key))
    assert [f["rule"] for f in r.json()["items"]] == ['quote"rule']
    summary = api.client.get("/api/v1/findings/summary", headers=bearer(key)).json()
    assert {g["key"] for g in summary["items"]} == {"poisoning.bidi", "odd.severity", 'quote"rule'}


def test_store_severities_are_the_analysis_scale() -> None:
    assert findings.SEVERITIES == SEVERITIES


def test_km_ui_serves_the_local_store_findings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'local.db'}"
    engine = db.open_store(url)
    session = Session(command=["srv"], cwd="/", name="local-srv", started_ns=BASE_NS)
    event = Event(session_id=session.id, ts_ns=BASE_NS + 1, direction="client_to_server", kind="request",
                  size_bytes=2, payload="{}", method="tools/call", tool="run",
                  risk=_risk(("danger.shell", "critical", "/params/arguments/cmd")))  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sessions_table.insert(), [session_row(session)])
        conn.execute(events_table.insert(), [event_row(event)])
    engine.dispose()
    app = create_app(
        settings=ServerSettings(
            db_url=url, local_token="s3cret", allowed_hosts={"127.0.0.1:9"}, retention_interval_seconds=0
        )
    )
    client = TestClient(app, base_url="http://127.0.0.1:9", headers={"X-KM-Token": "s3cret"})
    items = client.get("/api/v1/findings").json()["items"]
    assert [(f["rule"], f["server"], f["ts"]) for f in items] == [
        ("danger.shell", "local-srv", format_ts(BASE_NS + 1))
    ]
    assert client.get("/api/v1/findings/summary", params={"group": "server"}).json()["items"][0]["key"] == (
        "local-srv"
    )


def test_live_filter_by_minimum_risk_level() -> None:
    from kilometers.server.live import LiveFilter

    def event(level: str | None) -> Event:
        risk = None if level is None else {"score": 1, "level": level, "findings": [{"rule": "x"}]}
        return Event(session_id="s", ts_ns=1, direction="client_to_server", kind="request",
                     size_bytes=2, payload="{}", risk=risk)  # fmt: skip

    high = LiveFilter(min_level="high")
    assert [high.matches(event(lv)) for lv in (None, "none", "low", "medium", "high", "critical")] == [
        False, False, False, False, True, True,
    ]  # fmt: skip
    assert high.matches(event("bogus")) is False
    assert LiveFilter().matches(event(None))


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_small_read_chunks_give_the_same_answers(
    api: Api, rec: Recorded, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events are read a chunk at a time, filtered inside each chunk: the answers must not
    depend on where the chunks fall (a matching event past a chunk of non-matching ones)."""
    queries_ = [
        {},
        {"sort": "oldest"},
        {"sort": "severity"},
        {"rule": "secret.*"},
        {"min_severity": "critical"},
        {"severity": "info"},
        {"sort": "severity", "min_severity": "low"},
    ]
    expected = [rec.get(api, **q)["items"] for q in queries_]
    monkeypatch.setattr(findings, "CHUNK", chunk)
    for q, want in zip(queries_, expected, strict=True):
        assert rec.get(api, **q)["items"] == want, q
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = rec.get(api, limit=1, **q, **({"cursor": cursor} if cursor else {}))
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == want, q


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/findings/summary", {"session_id": "a\x00b", "group": "server"}),
        ("/api/v1/findings", {"tool": "x\x00"}),
        ("/api/v1/events", {"session_id": "\x00"}),
        ("/api/v1/events", {"q": "needle\x00"}),
        ("/api/v1/stats", {"server": "\x00"}),
        ("/api/v1/radar", {"server": "a\x00"}),
        ("/api/v1/sessions/a%00b", {}),
        ("/api/v1/events/0123456789abcdef0123456789abcdef%00%00%00%00", {}),
    ],
)
def test_a_nul_in_a_filter_is_a_bad_parameter_on_either_database(
    api: Api, path: str, params: dict[str, str]
) -> None:
    """PostgreSQL takes no NUL in a parameter: it used to answer 422 "a value is out of range for
    the database" there (and search SQLite); the schema now says a filter holds none, and both
    databases refuse it alike (found by the fuzz test)."""
    _, _, read = api.org_with_keys("acme")
    r = api.client.get(path, params=params, headers=bearer(read))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and "pattern" in error["message"], r.text


def test_the_findings_read_the_partial_risk_index_that_unflagged_events_skip(api: Api, rec: Recorded) -> None:
    """Revision 0015: ``ix_events_org_risk`` holds only events with a risk (most events have
    none, and no longer pay for a write to it), and ``ix_events_tool`` is gone (served by
    ``(org_id, tool, ts_ns)``). The findings summary's ``risk_score >= 0`` still reads the index,
    on both databases: each proves that the comparison implies the index's predicate."""
    from sqlalchemy import event

    seen: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        if "risk_score >=" in args[2]:
            seen.append((args[2], args[3]))

    with api.engine.connect() as conn:
        org_id = conn.execute(events_table.select().where(events_table.c.risk_score == 0)).first().org_id
    event.listen(api.engine, "before_cursor_execute", record)
    try:
        summary = findings.summarize_findings(api.engine, findings.FindingFilter(org_id=org_id))
        assert summary.total == 5  # with the info finding (its event's risk_score is 0)
    finally:
        event.remove(api.engine, "before_cursor_execute", record)
    sql, params = seen[0]
    with api.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            indexes = "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
            defined = dict(conn.exec_driver_sql(indexes).all())
            assert "ix_events_tool" not in defined
            assert defined["ix_events_org_risk"].endswith("WHERE risk_score IS NOT NULL")
            plan = " ".join(str(r) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
            assert "ix_events_org_risk" in plan, plan
        else:
            defined = dict(conn.exec_driver_sql("SELECT indexname, indexdef FROM pg_indexes").all())
            assert "ix_events_tool" not in defined
            assert defined["ix_events_org_risk"].endswith("WHERE (risk_score IS NOT NULL)")
            conn.exec_driver_sql("SET enable_seqscan = off")  # (a tiny table is read whole otherwise)
            plan = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params))
            assert "ix_events_org_risk" in plan or "org_id_risk_score_idx" in plan, plan
