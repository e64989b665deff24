"""The reading commands and km init, run through click against a real SQLite store."""

from __future__ import annotations

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
from kilometers.store import db
from kilometers.store.writer import StoreSink


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KM_HOME", str(tmp_path))
    for var in ("KM_DB", "KM_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _recorded(home: Path) -> Session:
    session = Session(command=["srv"], cwd=str(home), name="srv")
    recorder = Recorder(Capture(session), [StoreSink()])
    recorder.start()
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"clientInfo": {"name": "cli"}}}
    recorder.submit(C2S, _line(init), 1_000_000_000)
    recorder.submit(
        S2C, _line({"jsonrpc": "2.0", "id": 0, "result": {"serverInfo": {"name": "srv"}}}), 1_001_000_000
    )
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}}
    recorder.submit(C2S, _line(call), 1_002_000_000)
    recorder.submit(
        S2C, _line({"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "no"}}), 1_005_000_000
    )
    recorder.submit(S2C, b"garbage\n", 1_006_000_000)
    recorder.stop(exit_code=0)
    return session


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_sessions_events_show_stats(home: Path) -> None:
    session = _recorded(home)
    code, out, _ = run("sessions", "--json")
    assert code == 0
    [s] = [orjson.loads(line) for line in out.splitlines()]
    assert s["id"] == session.id and s["event_count"] == 5 and s["error_count"] == 1
    assert s["client"] == {"name": "cli"} and s["server"] == {"name": "srv"} and s["exit_code"] == 0
    for key in ("started_at", "ended_at", "command", "protocol_version", "dropped_events"):
        assert key in s

    code, out, _ = run("events", "--session", "latest", "--json")
    events = [orjson.loads(line) for line in out.splitlines()]
    assert [e["kind"] for e in events] == ["request", "response", "request", "error", "invalid"]
    assert events[0]["ts"].endswith("Z") and len(events[0]["ts"]) == 27
    assert events[3]["error"] == {"code": -1, "message": "no"} and events[3]["latency_ms"] == 3.0
    assert events[4]["payload"] == "garbage"

    code, out, _ = run("events", "--errors", "--json")
    assert [orjson.loads(line)["kind"] for line in out.splitlines()] == ["error"]
    code, out, _ = run("events", "--tool", "echo", "--json")
    assert len(out.splitlines()) == 2
    code, out, _ = run("events", "--since", "1h", "--json")
    assert out == ""  # the events above are from 1970

    code, out, _ = run("show", events[3]["id"], "--json")
    shown = orjson.loads(out)
    assert shown["paired_event_id"] == events[2]["id"]
    code, out, _ = run("show", events[3]["id"])
    assert code == 0 and '"message": "no"' in out

    code, out, _ = run("stats", "--json")
    rows = {(r["method"], r["tool"]): r for r in map(orjson.loads, out.splitlines())}
    assert rows[("tools/call", "echo")]["errors"] == 1
    assert rows[("tools/call", "echo")]["p50_ms"] == 3.0
    code, out, _ = run("tail", "-n", "2")
    assert code == 0 and len(out.splitlines()) == 2 and "garbage" not in out


def test_bad_input_gets_clear_errors(home: Path) -> None:
    code, _, err = run("events", "--session", "latest")
    assert code == 1 and "no sessions recorded yet" in err
    _recorded(home)
    code, _, err = run("events", "--session", "nope")
    assert code == 1 and "no session matches 'nope'" in err
    code, _, err = run("events", "--since", "yesterday-ish")
    assert code == 2 and "neither a duration" in err
    code, _, err = run("show", "zzz")
    assert code == 1 and "no event matches" in err
    code, _, err = run("events", "--limit", "0")
    assert code == 2
    (home / "config.toml").write_text("[store]\nurl = 3\n")
    code, _, err = run("sessions")
    assert code == 2 and "config.toml" in err


def test_init_writes_and_updates_config(home: Path) -> None:
    code, out, _ = run("init", "--exclude-ping", "--payload-limit", "4096")
    assert code == 0 and str(home / "config.toml") in out
    text = (home / "config.toml").read_text()
    assert "exclude_ping = true" in text and "payload_limit = 4096" in text
    code, _, _ = run("init", "--payload-limit", "10")
    text = (home / "config.toml").read_text()
    assert "exclude_ping = true" in text and "payload_limit = 10" in text


def test_db_upgrade(home: Path) -> None:
    code, out, _ = run("db", "upgrade")
    assert code == 0 and f"schema at revision {db.HEAD}" in out
