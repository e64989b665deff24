"""The uploader sends each stored payload as the text it is: spliced into the request body, not
parsed into objects and encoded again. The team server's ingest format stays ``Event.to_dict``."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, insert, select

from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Event, Session
from kilometers.recorder import Recorder
from kilometers.store import db
from kilometers.store.codec import event_from_row, event_row
from kilometers.store.schema import events
from kilometers.store.writer import StoreSink
from kilometers.sync.uploader import event_body

SPACED = (
    b'{"jsonrpc": "2.0",  "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {"n": 1.50}}}'
)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    for var in list(os.environ):
        if var.startswith("KM_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    return db.open_store(None)


def _rows(store: Engine) -> list[dict[str, object]]:
    with store.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(events).order_by(events.c.seq))]


def test_stored_payloads_are_spliced_as_they_are(store: Engine) -> None:
    session = Session(command=["srv"], cwd="/", name="srv")
    recorder = Recorder(Capture(session), [StoreSink()], batch_window=0, payload_limit=120)
    recorder.start()
    recorder.submit(CLIENT_TO_SERVER, SPACED + b"\n", 10**18)
    recorder.submit(
        SERVER_TO_CLIENT, b'{"jsonrpc":"2.0","id":1,"result":{"v":"' + b"x" * 200 + b'"}}\n', 10**18 + 1
    )
    recorder.submit(CLIENT_TO_SERVER, b"\xff not json\n", 10**18 + 2)
    recorder.stop(0, timeout=30)
    spaced, cut, invalid = _rows(store)
    body = event_body(spaced)
    assert SPACED in body  # the payload as stored, byte for byte (not re-encoded compactly)
    for row in (spaced, cut, invalid):  # what the server reads is Event.to_dict, as before
        expected = orjson.loads(orjson.dumps(event_from_row(row).to_dict()))
        assert expected.pop("mcp_headers") is None  # left out when empty (see the test below)
        assert orjson.loads(event_body(row)) == expected
    assert cut["truncated"] and isinstance(
        orjson.loads(event_body(cut))["payload"], str
    )  # cut text: a string
    assert orjson.loads(event_body(invalid))["payload"] == "\\xff not json"


def test_a_payload_too_deep_from_an_older_store_is_sent_as_the_marker(store: Engine) -> None:
    deep = "[" * 200 + "]" * 200
    row = event_row(Event("s1", 10**18, CLIENT_TO_SERVER, "request", 400, deep, method="x"))
    with store.begin() as conn:
        conn.execute(insert(events).values(**row))
    (stored,) = _rows(store)
    sent = orjson.loads(event_body(stored))
    assert sent["payload"]["km_omitted"].startswith("payload nested deeper")
    assert "payload.too_deep" in {f["rule"] for f in sent["risk"]["findings"]}


def test_fields_newer_than_older_servers_are_left_out_when_empty(store: Engine) -> None:
    """A team server one release older refuses unknown fields: an upload carries mcp_headers only
    on the events that have them."""
    plain = Event("s1", 10**18, CLIENT_TO_SERVER, "request", 40, '{"jsonrpc":"2.0","id":1}', method="x")
    headed = Event("s1", 10**18 + 1, CLIENT_TO_SERVER, "request", 40, '{"jsonrpc":"2.0","id":2}', method="x")
    headed.mcp_headers = {"mcp-method": "x"}
    with store.begin() as conn:
        conn.execute(insert(events), [event_row(plain), event_row(headed)])
    first, second = (orjson.loads(event_body(r)) for r in _rows(store))
    assert "mcp_headers" not in first
    assert second["mcp_headers"] == {"mcp-method": "x"}
