"""`--server NAME` (a glob on the session's server: km's name for it or the name it reports) on
km sessions, events, tail, stats, findings and export; `--session NAME` for the latest session
of a server. The store is written by the real recording pipeline (capture, security analysis,
store writer), as km monitor writes it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from kilometers import config
from kilometers.cli.main import cli
from kilometers.host import Host
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Session

from km_helpers import KM, OutputReader, km_env

TOKEN = "ghp_" + "R8x2Lq9Zt4Wm7Vn3Kp6Yb1Hc5Jd0Fg2Se8Ab"
"""A GitHub token one server leaks: its session has a finding."""
A, B, C, D = (f"01900000-0000-7000-8000-00000000000{x}" for x in "abcd")


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def record(
    url: str, sid: str, name: str | None, reported: str, tool: str, start_ns: int, leak: bool = False
) -> Session:
    """One session through the real pipeline: initialize, one tool call (its result leaking a
    token when ``leak``), as km monitor records it."""
    session = Session(id=sid, command=["srv"], cwd="/", name=name, started_ns=start_ns)
    host = Host(config.Settings(db_url=url)).start()
    recorder = host.open_session(session)
    ts = start_ns
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"clientInfo": {"name": "cli"}}}
    recorder.submit(C2S, _line(init), ts)
    result = {"serverInfo": {"name": reported, "version": "1"}, "protocolVersion": "2025-11-25"}
    recorder.submit(S2C, _line({"jsonrpc": "2.0", "id": 0, "result": result}), ts + 10**6)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    recorder.submit(C2S, _line(call), ts + 2 * 10**6)
    text = f"GITHUB_TOKEN={TOKEN}" if leak else "ok"
    reply = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}
    recorder.submit(S2C, _line(reply), ts + 3 * 10**6)
    recorder.close(0)
    host.close()
    return session


@pytest.fixture
def store(tmp_path: Path, km_home: Path) -> str:
    """Four sessions, oldest first: A and C of `remote-http` (A leaks a token), B of a server km
    did not name (it reports `km-test-echo`), D named `000a` (the end of A's id)."""
    url = f"sqlite:///{km_home / 'km.db'}"
    second = 10**9
    record(url, A, "remote-http", "upstream", "fetch", 1_000 * second, leak=True)
    record(url, B, None, "km-test-echo", "echo", 2_000 * second)
    record(url, C, "remote-http", "upstream", "fetch", 3_000 * second)
    record(url, D, "000a", "filesystem", "read_file", 4_000 * second)
    return url


def km(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    """km ARGS in-process: exit code, the JSON lines of stdout, stderr."""
    result = CliRunner().invoke(cli, list(args))
    lines = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stderr


def _refused(*args: str) -> str:
    code, out, err = km(*args)
    assert code == 1 and out == [], (code, out, err)
    assert err.count("\n") == 1 and err.startswith("km: "), err
    return err


NO_SERVER = "no session of a server matching 'nope'"


@pytest.mark.usefixtures("store")
def test_sessions_by_server() -> None:
    assert [s["id"] for s in km("sessions", "--server", "remote-http", "--json")[1]] == [C, A]
    assert [s["id"] for s in km("sessions", "--server", "remote-*", "--json")[1]] == [C, A]
    assert [s["id"] for s in km("sessions", "--server", "km-test-echo", "--json")[1]] == [B]  # reported
    assert [s["id"] for s in km("sessions", "--server", "*echo", "--json")[1]] == [B]
    assert [s["id"] for s in km("sessions", "--server", "remote-http", "--limit", "1", "--json")[1]] == [C]
    assert len(km("sessions", "--server", "*", "--json")[1]) == 4
    assert NO_SERVER in _refused("sessions", "--server", "nope")
    assert "matching 'REMOTE-HTTP'" in _refused(
        "sessions", "--server", "REMOTE-HTTP", "--json"
    )  # case counts


@pytest.mark.usefixtures("store")
def test_events_by_server_and_session_by_name() -> None:
    code, events, _ = km("events", "--server", "remote-http", "--json")
    assert code == 0 and [e["session_id"] for e in events] == [A] * 4 + [C] * 4
    _, events, _ = km("events", "--server", "remote-http", "--tool", "fetch", "--json")
    assert {e["session_id"] for e in events} == {A, C} and len(events) == 4
    assert NO_SERVER in _refused("events", "--server", "nope")

    # --session NAME: that server's latest session
    assert {e["session_id"] for e in km("events", "--session", "remote-http", "--json")[1]} == {C}
    assert {e["session_id"] for e in km("events", "--session", "km-test-echo", "--json")[1]} == {B}
    assert {e["session_id"] for e in km("events", "--session", "remote-*", "--json")[1]} == {C}
    # an id (its start or its end) comes first: `000a` ends A's id and is D's server name
    assert {e["session_id"] for e in km("events", "--session", "000a", "--json")[1]} == {A}
    assert "matches several sessions" in _refused("events", "--session", B[:-1])  # not taken for a name
    assert {e["session_id"] for e in km("events", "--session", D, "--json")[1]} == {D}
    assert {e["session_id"] for e in km("events", "--session", "latest", "--json")[1]} == {D}
    err = _refused("events", "--session", "nope")
    assert "no session matches 'nope'" in err and "server" in err
    # both: the latest remote-http session, if it is one of the servers asked for
    assert km("events", "--session", "remote-http", "--server", "*echo*", "--json")[1] == []


@pytest.mark.usefixtures("store")
def test_tail_stats_findings_export_by_server(tmp_path: Path) -> None:
    code, events, _ = km("tail", "--server", "remote-http", "-n", "100", "--json")
    assert code == 0 and {e["session_id"] for e in events} == {A, C} and len(events) == 8
    assert NO_SERVER in _refused("tail", "--server", "nope")

    code, rows, _ = km("stats", "--server", "remote-*", "--json")
    assert code == 0 and {(r["method"], r["tool"]) for r in rows} == {
        ("initialize", None),
        ("tools/call", "fetch"),
    }
    assert {r["count"] for r in rows} == {2}
    assert {r["tool"] for r in km("stats", "--session", "000a", "--json")[1]} == {None, "fetch"}
    assert NO_SERVER in _refused("stats", "--server", "nope")

    code, findings, _ = km("findings", "--server", "remote-http", "--json")
    assert code == 0 and findings and {f["session_id"] for f in findings} == {A}
    assert km("findings", "--server", "filesystem", "--json")[:2] == (0, [])
    assert NO_SERVER in _refused("findings", "--server", "nope")

    out = tmp_path / "remote.jsonl"
    code, _, err = km("export", "--server", "remote-http", "-o", str(out))
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert code == 0 and "exported 8 events" in err
    assert [r["id"] for r in records if r["record"] == "session"] == [A, C]
    assert {r["session_id"] for r in records if r["record"] == "event"} == {A, C}
    code, _, err = km("export", "--session", "km-test-echo", "-o", str(out))
    assert code == 0 and "exported 4 events" in err
    assert NO_SERVER in _refused("export", "--server", "nope", "-o", str(tmp_path / "none.jsonl"))


def test_tail_follow_takes_sessions_that_start_later(km_home: Path) -> None:
    """km tail -f --server waits for a server that has not run yet, and shows only its events."""
    url = f"sqlite:///{km_home / 'km.db'}"
    record(url, A, "late-first", "upstream", "fetch", 1_000 * 10**9)
    args = [KM, "tail", "-f", "--server", "late-*", "--json", "--interval", "0.05"]
    proc = subprocess.Popen(args, env=km_env(km_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = OutputReader(proc.stdout)  # type: ignore[arg-type]
    try:
        out.wait_for(lambda data: data.count(b"\n") >= 4, timeout=60)  # the recent ones: now following
        record(url, B, "other", "upstream", "fetch", 2_000 * 10**9)
        record(url, C, None, "late-comer", "echo", 3_000 * 10**9)  # matched by the name it reports
        lines = out.wait_for(lambda data: data.count(b"\n") >= 8, timeout=60)
    finally:
        proc.terminate()
        proc.wait(10)
    assert [orjson.loads(line)["session_id"] for line in lines.splitlines()] == [A] * 4 + [C] * 4
