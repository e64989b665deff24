"""km export (jsonl, csv, har) and km import, round-tripped through real SQLite stores."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from kilometers.cli.main import cli
from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Session
from kilometers.recorder import Recorder
from kilometers.store.writer import StoreSink


def _record(url: str, calls: int = 3) -> Session:
    session = Session(command=["srv"], cwd="/", name="files")
    rec = Recorder(Capture(session), [StoreSink(url)], batch_window=0)
    rec.start()
    for i in range(calls):
        call = {
            "jsonrpc": "2.0",
            "id": i,
            "method": "tools/call",
            "params": {"name": "read", "arguments": {"p": i}},
        }
        rec.submit(C2S, orjson.dumps(call) + b"\n", 10**18 + i * 10**6)
        reply = {"jsonrpc": "2.0", "id": i, "result": {"content": [{"type": "text", "text": f"ünïcode {i}"}]}}
        rec.submit(S2C, orjson.dumps(reply) + b"\n", 10**18 + i * 10**6 + 500_000)
    rec.submit(S2C, b"not json\n", 10**18 + 10**9)
    rec.stop(0)
    return session


def run(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout_bytes, result.stderr


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    return f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"


def test_jsonl_round_trip_is_lossless_and_idempotent(stores: tuple[str, str], tmp_path: Path) -> None:
    a, b = stores
    session = _record(a)
    code, out, err = run("export", "--db", a)
    assert code == 0 and "exported 7 events" in err
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert lines[0]["record"] == "session" and lines[0]["id"] == session.id
    assert [line["record"] for line in lines[1:]] == ["event"] * 7
    dump = tmp_path / "dump.jsonl"
    dump.write_bytes(out)
    code, _, err = run("import", str(dump), "--db", b)
    assert code == 0 and "imported 7 events (0 already present, 0 invalid)" in err
    code, _, err = run("import", str(dump), "--db", b)
    assert "imported 0 events (7 already present" in err
    _, a_events, _ = run("events", "--json", "--db", a)
    _, b_events, _ = run("events", "--json", "--db", b)
    assert a_events == b_events
    _, b_sessions, _ = run("sessions", "--json", "--db", b)
    [s] = [orjson.loads(line) for line in b_sessions.splitlines()]
    assert s["id"] == session.id and s["event_count"] == 7 and s["exit_code"] == 0


def test_csv_and_har(stores: tuple[str, str]) -> None:
    a, _ = stores
    _record(a)
    code, out, _ = run("export", "--format", "csv", "--db", a)
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert len(rows) == 7 and rows[1]["tool"] == "read" and "ünïcode 0" in rows[1]["payload"]
    code, out, _ = run("export", "--format", "har", "--session", "latest", "--db", a)
    assert code == 0
    har = orjson.loads(out)
    entries = har["log"]["entries"]
    assert len(entries) == 3 and entries[0]["request"]["url"] == "mcp://files/tools/call/read"
    assert entries[0]["time"] == 0.5 and "ünïcode 0" in entries[0]["response"]["content"]["text"]


def test_import_rejects_foreign_files_clearly(stores: tuple[str, str], tmp_path: Path) -> None:
    _, b = stores
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"hello": 1}\n')
    code, _, err = run("import", str(bad), "--db", b)
    assert code == 1 and "line 1" in err and "record" in err
    bad.write_text("not json\n")
    code, _, err = run("import", str(bad), "--db", b)
    assert code == 1 and "line 1: not JSON" in err
    orphan = tmp_path / "orphan.jsonl"
    orphan.write_text('{"record": "event", "id": "x", "session_id": "y"}\n')
    code, _, err = run("import", str(orphan), "--db", b)
    assert code == 1 and "before its session" in err


def test_import_redacts_secrets_an_export_still_holds(stores: tuple[str, str], tmp_path: Path) -> None:
    """An export from a store recorded with analysis off keeps secrets in clear; import redacts them."""
    a, b = stores
    _record(a)
    _, out, _ = run("export", "--db", a)
    token = "ghp_" + "Zq8xT2mLp4Rv9sKd3Wc7Nb6Yh1Fj5Ge0Ua2Q"
    lines = [orjson.loads(line) for line in out.splitlines()]
    lines[2]["payload"]["result"]["content"][0]["text"] = f"token {token}"
    dump = tmp_path / "leaky.jsonl"
    dump.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    code, _, err = run("import", str(dump), "--db", b)
    assert code == 0 and "imported 7 events" in err, err
    _, events, _ = run("events", "--json", "--db", b)
    assert token not in events.decode() and "[REDACTED:secret.github_token]" in events.decode()
    [leaky] = [e for e in map(orjson.loads, events.splitlines()) if e["id"] == lines[2]["id"]]
    assert leaky["risk"]["findings"][0]["rule"] == "secret.github_token"
