"""The team server's ingest and the local store map an event onto the schema the same way: both go
through ``store.codec`` (issue "One engine, one host", item 3). A fully populated event and session,
sent in the wire shape the uploader and ``km events --json`` use, become exactly the rows the local
store would write for them, and every column of the tables is filled."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select

from kilometers.model import Event, Session
from kilometers.server import tenancy
from kilometers.server.ingest import Checks, parse_batch
from kilometers.server.ingest import _session_row as ingest_session_row
from kilometers.store import codec
from kilometers.store.schema import events, sessions
from kilometers.store.writer import StoreSink
from kilometers.sync.uploader import Uploader

from factory import bearer
from km_helpers import km_serve

ORG = "org-1"


def _full_session() -> Session:
    return Session(
        id="0190aaaa-0000-7000-8000-000000000001",
        command=["python", "server.py", "--flag"],
        cwd="/work",
        name="notes",
        transport="http",
        pid=4242,
        started_ns=1_760_000_000_000_001_000,
        ended_ns=1_760_000_005_000_002_000,
        exit_code=3,
        client={"name": "claude-code", "version": "2.1"},
        server={"name": "notes", "version": "1.0"},
        protocol_version="2026-07-28",
        capabilities={"tools": {"listChanged": True}},
        client_capabilities={"elicitation": {}},
        log_level="debug",
        dropped_events=2,
    )


def _full_events(session: Session) -> list[Event]:
    request = Event(
        id="0190aaaa-0000-7000-8000-000000000011",
        session_id=session.id,
        ts_ns=1_760_000_001_000_003_000,
        direction="client_to_server",
        kind="request",
        size_bytes=120,
        payload='{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_note"}}',
        jsonrpc_id=7,
        method="tools/call",
        tool="read_note",
        resource_uri="note://plans",
        prompt_name="summarise",
        call_id="0190aaaa-0000-7000-8000-000000000011",
        round=1,
        mcp_headers={"mcp-method": "tools/call", "mcp-name": "read_note"},
    )
    answer = Event(
        id="0190aaaa-0000-7000-8000-000000000012",
        session_id=session.id,
        ts_ns=1_760_000_001_500_004_000,
        direction="server_to_client",
        kind="response",
        size_bytes=90,
        payload='{"jsonrpc":"2.0","id":7,"error":{"code":-32020,"message":"needs input"}}',
        jsonrpc_id=7,
        method="tools/call",
        tool="read_note",
        latency_ms=500.001,
        error_code=-32020,
        error_message="needs input",
        is_error=True,
        truncated=False,
        request_event_id=request.id,
        call_id=request.id,
        round=2,
        call_latency_ms=812.5,
        risk={
            "score": 40,
            "level": "medium",
            "findings": [{"rule": "pii.email", "severity": "medium", "path": "$.error.message"}],
        },
    )
    return [request, answer]


def _columns(table: Any) -> set[str]:
    return {c.name for c in table.columns}


def test_ingest_stores_an_event_exactly_as_the_local_store_does() -> None:
    session = _full_session()
    sent = _full_events(session)
    body = {"session": session.to_dict(), "events": [e.to_dict() for e in sent]}
    parsed, rows, errors = parse_batch(body, checks=Checks(analysis=False, redact=False))
    assert errors == []
    assert [{**r, "org_id": ORG} for r in rows] == [codec.event_row(e, ORG) for e in sent]
    assert set(rows[0]) == _columns(events) - {"seq"}  # no column is left to its default

    row = ingest_session_row(ORG, parsed, redact=False)
    # the server counts events and errors itself, as they are stored
    assert row == {**codec.session_row(session, ORG, host=None), "event_count": 0, "error_count": 0}
    assert set(row) == _columns(sessions)


def test_a_stored_row_reads_back_as_the_event_that_was_sent() -> None:
    session = _full_session()
    sent = _full_events(session)
    body = {"session": session.to_dict(), "events": [e.to_dict() for e in sent]}
    _, rows, _ = parse_batch(body, checks=Checks(analysis=False, redact=False))
    assert [codec.event_from_row(r).to_dict() for r in rows] == [e.to_dict() for e in sent]


def test_the_server_adds_its_own_findings_to_the_clients_risk() -> None:
    session = _full_session()
    leaked = Event(
        id="0190aaaa-0000-7000-8000-000000000021",
        session_id=session.id,
        ts_ns=1_760_000_002_000_000_000,
        direction="server_to_client",
        kind="response",
        size_bytes=80,
        payload='{"jsonrpc":"2.0","id":8,"result":{"token":"ghp_R8x2Lq9Zt4Wm7Vn3Kp6Yb1Hc5Jd0Fg2Se8A"}}',
        jsonrpc_id=8,
        risk={"score": 10, "level": "low", "findings": [{"rule": "client.own", "severity": "low"}]},
    )
    body = {"session": session.to_dict(), "events": [leaked.to_dict()]}
    _, rows, errors = parse_batch(body, checks=Checks(analysis=False, redact=True))
    assert errors == []
    risk = codec.risk_of(rows[0])
    assert risk is not None
    rules = [f["rule"] for f in risk["findings"]]
    assert "client.own" in rules and any(r.startswith("secret.") for r in rules)
    assert risk["score"] > 10 and risk["level"] != "low"
    assert "ghp_R8x2" not in rows[0]["payload"]


def test_text_columns_repeated_across_a_batch_are_checked_for_every_event() -> None:
    """The server remembers, within a batch, the findings of text columns that needed no
    redaction (events repeat their method and tool); every event still gets them, whatever its
    JSON-RPC id, and columns holding a secret are redacted in each event."""
    session = _full_session()
    mail, token = "ops.lead@example.com", "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"

    def call(n: int, tool: str) -> Event:
        return Event(
            id=f"0190aaaa-0000-7000-8000-0000000001{n:02d}",
            session_id=session.id,
            ts_ns=1_760_000_001_000_000_000 + n,
            direction="client_to_server",
            kind="request",
            size_bytes=60,
            payload=f'{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"x"}}}}',
            jsonrpc_id=n if n % 2 else f"request-{n}",
            method="tools/call",
            tool=tool,
        )

    sent = [call(n, f"notify {mail}") for n in range(1, 5)] + [call(n, f"push {token}") for n in range(5, 8)]
    body = {"session": session.to_dict(), "events": [e.to_dict() for e in sent]}
    _, rows, errors = parse_batch(body, checks=Checks(redact=True, redact_pii=False))
    assert errors == [] and len(rows) == 7
    for row in rows[:4]:
        risk = codec.risk_of(row)
        assert risk is not None and [f["path"] for f in risk["findings"]] == ["/tool"], risk
        assert row["tool"] == f"notify {mail}"  # (personal data is not redacted unless asked)
    for row in rows[4:]:
        risk = codec.risk_of(row)
        assert risk is not None and any(f["rule"].startswith("secret.") for f in risk["findings"])
        assert token not in row["tool"]


def test_every_field_survives_local_store_upload_team_server_and_api(
    store_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The whole way a recording travels: written by the local store's writer, read back and sent
    by the uploader, stored by a real `km serve` (checks off: nothing is added or redacted), and
    read through the API. Every field of the session and of the events arrives as it was, and
    every column of the team server's events table holds a value."""
    session = _full_session()
    sent = _full_events(session)
    session.event_count, session.error_count = len(sent), sum(e.is_error for e in sent)
    sink = StoreSink(f"sqlite:///{tmp_path / 'local.db'}")
    sink.on_session_start(session)
    sink.on_events(session, sent)
    sink.on_session_end(session)
    org = tenancy.create_org(engine, "acme", "unlimited")
    ingest_key, read_key = (tenancy.create_key(engine, org, scope) for scope in ("ingest", "read"))

    with km_serve(store_url, env=dict(os.environ), args=["--no-analysis", "--no-redact"]) as base:
        with Uploader(sink.open(), base, ingest_key, host="devbox") as uploader:
            result = uploader.sync()
        with httpx.Client(base_url=base, headers=bearer(read_key), timeout=30) as client:
            listed = client.get(f"/api/v1/sessions/{session.id}").json()
            page = client.get("/api/v1/events", params={"session_id": session.id, "limit": 10}).json()
    sink.close()

    assert (result.accepted, result.rejected) == (len(sent), 0)
    assert list(reversed(page["items"])) == [e.to_dict() for e in sent]
    expected = session.to_dict()
    assert {k: v for k, v in listed.items() if k in expected} == expected
    with engine.connect() as conn:
        rows = conn.execute(select(events).where(events.c.org_id == org.id)).mappings().all()
        stored_session = conn.execute(select(sessions).where(sessions.c.org_id == org.id)).mappings().one()
    assert [codec.event_from_row(r).to_dict() for r in sorted(rows, key=lambda r: r["ts_ns"])] == [
        e.to_dict() for e in sent
    ]
    assert {c for c in _columns(events) if any(r[c] is not None for r in rows)} == _columns(events)
    assert {c for c in _columns(sessions) if stored_session[c] is None} == set()
    assert stored_session["host"] == "devbox"
