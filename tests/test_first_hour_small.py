"""The small fixes of "The first hour" (issue 13, point 8), each held by a test that failed before it.

Real processes (``km monitor`` with real servers, the TypeScript SDK's client, ``km`` commands on
real SQLite stores); the click command tree is walked in-process for the help-text check.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import signal
import string
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import orjson
import pytest

from km_helpers import (
    ECHO_SERVER,
    KM,
    LIFECYCLE_SERVER,
    PYTHON,
    RAW_CAT,
    ROOT,
    KmProcess,
    km_env,
    km_events,
    km_json,
    only_session,
    read_json_line,
)

RunKm = Callable[..., KmProcess]
TS_SDK_CLIENT = str(ROOT / "tests" / "servers" / "ts_sdk_client.mjs")


def km(home: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Run ``km ARGS`` to completion with ``home`` as KM_HOME (whatever its exit code)."""
    return subprocess.run(
        [KM, *args], env=km_env(home), input=stdin.decode(), capture_output=True, text=True, timeout=120
    )


def line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", **obj}) + b"\n"


def echo_session(run_km: RunKm) -> None:
    """One real session with the SDK echo server: initialize (JSON-RPC id 0) and a failing tool."""
    server = run_km([PYTHON, ECHO_SERVER])
    server.write(
        line(
            {
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "1"},
                },
            }
        )
    )
    read_json_line(server.stdout, None)
    server.write(line({"method": "notifications/initialized"}))
    server.write(
        line({"id": 1, "method": "tools/call", "params": {"name": "fail", "arguments": {"reason": "no"}}})
    )
    server.stdout.wait_for(lambda data: data.count(b"\n") >= 2)
    code, _, err = server.finish()
    assert code == 0, err


# -- a. km show prints a jsonrpc_id of 0 -------------------------------------------------------------


def test_show_prints_jsonrpc_id_zero(run_km: RunKm, km_home: Path) -> None:
    echo_session(run_km)
    [request] = km_events(km_home, "--method", "initialize", "--kind", "request")
    assert request["jsonrpc_id"] == 0
    shown = km(km_home, "show", request["id"])
    assert shown.returncode == 0, shown.stderr
    assert "  jsonrpc_id: 0\n" in shown.stdout
    [call] = km_events(km_home, "--tool", "fail", "--kind", "request")
    assert "  jsonrpc_id: 1\n" in km(km_home, "show", call["id"]).stdout
    missing = km(km_home, "show", "no-such-event")
    assert missing.returncode == 1 and missing.stderr.startswith("km: ")


# -- b. km init --api-key - with nothing on stdin ---------------------------------------------------


@pytest.mark.parametrize("stdin", [b"", b"\n", b"   \n"])
def test_init_api_key_from_empty_stdin_keeps_the_saved_key(km_home: Path, stdin: bytes) -> None:
    saved = km(
        km_home, "init", "--api-url", "https://km.example.com", "--api-key", "-", stdin=b"km_live_k1\n"
    )
    assert saved.returncode == 0, saved.stderr
    config = (km_home / "config.toml").read_text()
    assert 'api_key = "km_live_k1"' in config

    empty = km(km_home, "init", "--api-key", "-", stdin=stdin)
    assert empty.returncode == 2
    assert empty.stderr.count("\n") == 1 and "stdin was empty" in empty.stderr, empty.stderr
    assert empty.stdout == ""
    assert (km_home / "config.toml").read_text() == config  # untouched, the key kept

    replaced = km(km_home, "init", "--api-key", "-", stdin=b"km_live_k2\n")
    assert replaced.returncode == 0 and 'api_key = "km_live_k2"' in (km_home / "config.toml").read_text()
    removed = km(km_home, "init", "--api-key", "")  # the explicit way to remove it still works
    assert removed.returncode == 0 and "api_key" not in (km_home / "config.toml").read_text()


# -- c. a client's SIGTERM at a normal close is no failure --------------------------------------------


def sessions_text(home: Path) -> str:
    result = km(home, "sessions")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_typescript_sdk_client_close_reads_as_ended_not_exit_143(km_home: Path) -> None:
    """The TS SDK ends the server's stdin, then sends SIGTERM 2 s later to a server still running
    (here the SDK echo server, busy for a while after its stdin closed): km forwards it, the server
    dies of it, and the session says so instead of recording a failure exit 143."""
    env = km_env(km_home, KM_TEST_LINGER="1")
    result = subprocess.run(
        ["node", TS_SDK_CLIENT, KM, "monitor", "--name", "linger", "--", PYTHON, ECHO_SERVER],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"tools": ["echo", "add", "fail", "where"]}
    session = only_session(km_home)
    assert session["client"]["name"] == "ts-sdk-client" and session["ended_at"] is not None
    assert session["exit_code"] == -signal.SIGTERM
    text = sessions_text(km_home)
    assert "ended by SIGTERM" in text and "exit 143" not in text


def test_wrapper_reporting_the_delivered_signal_as_128_plus_n(run_km: RunKm, km_home: Path) -> None:
    """A wrapper (like `docker run`) that exits 128+N after km passed it signal N ended by N too."""
    wrapper = ["sh", "-c", 'trap "exit 143" TERM; "$0" "$@"', PYTHON, LIFECYCLE_SERVER, "--on-eof", "ignore"]
    server = run_km(wrapper)
    read_json_line(server.stdout, "test/ready")
    server.signal(signal.SIGTERM)  # what the client sends
    assert server.wait(30) == 128 + signal.SIGTERM  # km's own exit status keeps the shell convention
    assert only_session(km_home)["exit_code"] == -signal.SIGTERM
    assert "ended by SIGTERM" in sessions_text(km_home)
    server.close_stdin()


def test_server_exiting_143_by_itself_or_killed_stays_a_failure(run_km: RunKm, km_home: Path) -> None:
    # km delivered no signal: 143 is the server's own exit code
    server = run_km([PYTHON, LIFECYCLE_SERVER, "--exit-code", "143"])
    read_json_line(server.stdout, "test/ready")
    code, _, _ = server.finish()
    assert code == 143 and only_session(km_home)["exit_code"] == 143
    assert "exit 143" in sessions_text(km_home)
    # killed from outside: not a stop request
    killed = run_km([PYTHON, LIFECYCLE_SERVER])
    pid = read_json_line(killed.stdout, "test/ready")["params"]["pid"]
    os.kill(pid, signal.SIGKILL)
    assert killed.wait(30) == 128 + signal.SIGKILL
    assert "killed by SIGKILL" in sessions_text(km_home)
    killed.close_stdin()


# -- d. CSV booleans ---------------------------------------------------------------------------------


def test_csv_export_writes_lowercase_booleans(run_km: RunKm, km_home: Path) -> None:
    echo_session(run_km)
    result = km(km_home, "export", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["is_error"] for r in rows} == {"true", "false"}
    assert {r["truncated"] for r in rows} == {"false"}
    [failed] = [r for r in rows if r["is_error"] == "true"]
    assert failed["kind"] == "response" and json.loads(failed["payload"])["result"]["isError"] is True
    assert "True" not in result.stdout and "False" not in result.stdout


# -- e. JSON Lines export -> import -> export is exact ------------------------------------------------


def test_jsonl_round_trip_keeps_duration_ms_exact(run_km: RunKm, km_home: Path, tmp_path: Path) -> None:
    from kilometers.model import Event, Session
    from kilometers.store.writer import StoreSink

    # ends whose nanoseconds round the other way than their microseconds (the stored values)
    session = Session(command=["srv"], cwd="/", name="timed", started_ns=1_700_000_000_123_456_789)
    sink = StoreSink(f"sqlite:///{km_home / 'km.db'}")
    sink.on_session_start(session)
    event = Event(session.id, session.started_ns + 5, "client_to_server", "notification", 2, "{}")
    sink.on_events(session, [event])
    session.ended_ns, session.exit_code = 1_700_000_001_500_000_100, 0
    session.event_count = 1
    sink.on_session_end(session)
    sink.close()
    echo_session(run_km)  # and a real one

    first = km(km_home, "export")
    assert first.returncode == 0, first.stderr
    dump = tmp_path / "dump.jsonl"
    dump.write_text(first.stdout)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    imported = km(km_home, "import", str(dump), "--db", other)
    assert imported.returncode == 0, imported.stderr
    second = km(km_home, "export", "--db", other)
    durations = [
        [json.loads(r)["duration_ms"] for r in out.stdout.splitlines() if '"record":"session"' in r]
        for out in (first, second)
    ]
    assert len(durations[0]) == 2 and 1376.543 <= durations[0][0] <= 1376.544
    assert durations[1] == durations[0]
    assert second.stdout == first.stdout


# -- f. findings in the natural order of their JSON paths ---------------------------------------------


def github_token(rng: random.Random) -> str:
    return "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


def test_findings_sort_array_indexes_as_numbers(run_km: RunKm, km_home: Path) -> None:
    rng = random.Random(13)
    tokens = [github_token(rng) for _ in range(12)]
    server = run_km([PYTHON, RAW_CAT])
    server.write(line({"method": "notifications/message", "params": {"items": tokens}}))
    server.stdout.wait_for(lambda data: data.endswith(b"\n"))
    code, _, err = server.finish()
    assert code == 0, err
    findings = km_json(km_home, "findings", "--risk", "high")
    assert findings, "the tokens were not found"
    for event_id in {f["event_id"] for f in findings}:
        paths = [f["path"] for f in findings if f["event_id"] == event_id]
        assert paths == [f"/params/items/{i}" for i in range(12)]


def test_path_key_orders_numbers_before_names() -> None:
    from kilometers.analysis.findings import path_key

    paths = ["/tools/10/name", "/tools/2", "/tools/x", "/tools/2/name", "", "/tools/01", "/a"]
    assert sorted(paths, key=path_key) == [
        "",
        "/a",
        "/tools/01",
        "/tools/2",
        "/tools/2/name",
        "/tools/10/name",
        "/tools/x",
    ]


# -- g. every option has help text -----------------------------------------------------------------


def walk(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):  # (km's commands are loaded when asked for: click's API)
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            yield from walk(sub, (*path, name))


def test_every_option_of_every_command_has_help() -> None:
    from kilometers.cli.main import cli

    commands = list(walk(cli, ("km",)))
    assert len(commands) > 20
    missing = [
        f"{' '.join(path)} {'/'.join(option.opts)}"
        for path, command in commands
        for option in command.params
        if isinstance(option, click.Option) and not option.hidden and not (option.help or "").strip()
    ]
    assert missing == []


# -- h. the km monitor usage line shows `--` -------------------------------------------------------


def test_monitor_usage_line_shows_the_double_dash(km_home: Path) -> None:
    result = km(km_home, "monitor", "--help")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "Usage: km monitor [OPTIONS] -- COMMAND [ARGS]..."
    bad = km(km_home, "monitor")  # a usage error shows the same line, on stderr
    assert bad.returncode == 2 and bad.stdout == ""
    assert "Usage: km monitor [OPTIONS] -- COMMAND [ARGS]..." in bad.stderr


# -- i. the docs say what is true -------------------------------------------------------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_docs_name_the_head_schema_revision() -> None:
    from kilometers.store.db import head_revision

    head = head_revision()
    found = [
        (doc.name, number)
        for doc in DOCS
        for number in re.findall(r"\brevisions? (?:\d{4}-)?(\d{4})\b", doc.read_text())
    ]
    assert ("usage.md", head) in found and ("architecture.md", head) in found, found
    assert {number for _, number in found} == {head}, f"the head revision is {head}: {found}"


def test_overview_and_analytics_count_km_monitor_events(run_km: RunKm, km_home: Path) -> None:
    """The dashboard's figures come from rollups, which km monitor writes with its events."""
    from kilometers.store import db, rollups
    from kilometers.store.schema import LOCAL_ORG

    echo_session(run_km)
    recorded = km_events(km_home)
    engine = db.open_store(f"sqlite:///{km_home / 'km.db'}")
    stats = rollups.stats(engine, LOCAL_ORG, 0, 2**62, "day")
    engine.dispose()
    assert stats["totals"]["events"] == len(recorded) > 0
    assert [s["server"] for s in stats["by_server"]] == ["echo_server.py"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "count every recorded event, those `km monitor` writes" in readme
    assert "not those `km monitor` writes" not in readme
