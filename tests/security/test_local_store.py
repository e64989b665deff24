"""Red-team items 10, 11, 16 and 17: the local store and error hygiene.

- 16: the store is its owner's only (files 0600, -wal/-shm included, in a 0700 directory).
- 10: a store that cannot be opened or written makes km exit promptly, says so in one short
  stderr line without payloads, and counts what it could not store.
- 11: a database password never appears in an error message.
- 17: ``kill -9`` of km monitor: everything the recorder received is stored, what it never
  received is counted as dropped, and the session gets an end time (also in-process, on the
  next open of the store).

Real processes only: ``km``, the `mcp` SDK's echo server (tests/servers/echo_server.py), raw_cat,
a real PostgreSQL 15.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from km_helpers import (
    ECHO_SERVER,
    KM,
    PYTHON,
    RAW_CAT,
    KmProcess,
    OutputReader,
    km_env,
    km_events,
    km_sessions,
    only_session,
    recorder_of,
    wait_gone,
    wait_until,
)
from pg import Cluster

RunKm = Callable[..., KmProcess]
PASSWORD = "SuperSecret123"


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _mcp_session(n_calls: int, text: str = "hello") -> bytes:
    """An MCP client's side: initialize, initialized, then ``n_calls`` echo tool calls."""
    lines = [
        _line({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "km-test", "version": "1"}}}),
        _line({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ]  # fmt: skip
    lines += [
        _line({"jsonrpc": "2.0", "id": i, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"text": f"{text} {i}"}}})
        for i in range(1, n_calls + 1)
    ]  # fmt: skip
    return b"".join(lines)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- item 16: file modes ---------------------------------------------------------------------------


def test_store_files_are_private_after_a_real_session(run_km: RunKm, km_home: Path) -> None:
    km_home.chmod(0o755)  # as the red team found it: a directory others may read
    km = run_km([PYTHON, ECHO_SERVER])
    km.write(_mcp_session(3))
    km.stdout.wait_for(lambda out: out.count(b"\n") >= 4)
    store = km_home / "km.db"
    wal, shm = Path(f"{store}-wal"), Path(f"{store}-shm")
    wait_until(lambda: wal.exists() and shm.exists(), 60)  # while km runs, the WAL files exist
    assert _mode(km_home) == 0o700
    assert {p.name: _mode(p) for p in (store, wal, shm)} == {p.name: 0o600 for p in (store, wal, shm)}
    code, _, _ = km.finish(60)
    assert code == 0
    assert only_session(km_home)["event_count"] >= 8
    for path in km_home.rglob("*"):  # everything km left there: the store, the WAL files, the lock dir
        assert _mode(path) & 0o077 == 0, f"{path} is {oct(_mode(path))}"


def test_an_existing_world_readable_store_is_tightened(km_home: Path) -> None:
    subprocess.run([KM, "sessions"], env=km_env(km_home), check=True, capture_output=True, timeout=60)
    store = km_home / "km.db"
    store.chmod(0o644)
    km_home.chmod(0o755)
    subprocess.run([KM, "sessions"], env=km_env(km_home), check=True, capture_output=True, timeout=60)
    assert (_mode(km_home), _mode(store)) == (0o700, 0o600)


def test_the_config_file_is_private_without_an_api_key(km_home: Path) -> None:
    url = f"postgresql://km:{PASSWORD}@db.example/km"
    subprocess.run(
        [KM, "init", "--db", url], env=km_env(km_home), check=False, capture_output=True, timeout=60
    )
    config = km_home / "config.toml"
    assert config.exists() and PASSWORD in config.read_text()
    assert (_mode(km_home), _mode(config)) == (0o700, 0o600)


# -- item 10: a store that cannot be written -------------------------------------------------------


def _monitor(
    env: dict[str, str], data: bytes, answers: int, limit: int | None = None
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    """``km monitor`` the echo server: send ``data``, close stdin once ``answers`` lines came
    back (the SDK's server stops at EOF), wait for km; returns its result and seconds it took."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [KM, "monitor", "--", PYTHON, ECHO_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=None if limit is None else _file_size_limit(limit),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out, err = OutputReader(proc.stdout), OutputReader(proc.stderr)
    try:
        proc.stdin.write(data)
        proc.stdin.flush()
        out.wait_for(lambda o: o.count(b"\n") >= answers, timeout=120)
        proc.stdin.close()
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    took = time.monotonic() - started
    return subprocess.CompletedProcess(proc.args, code, out.wait_closed(), err.wait_closed()), took


@pytest.mark.parametrize("recorder_process", ["1", "0"])
def test_an_unopenable_store_exits_promptly_with_one_short_line(km_home: Path, recorder_process: str) -> None:
    """/proc refuses new files even to root. Before the fix each of three opens retried for
    15 s (46 s in all) and km only then exited."""
    env = km_env(km_home, KM_DB="sqlite:////proc/km.db", KM_RECORDER_PROCESS=recorder_process)
    proc, took = _monitor(env, _mcp_session(5, text="PAYLOAD-MARKER"), answers=6)
    print(f"km monitor on an unopenable store exited after {took:.1f} s")
    assert took < 30, f"km took {took:.1f} s to exit"  # generous: it takes ~1-5 s, it took 46 s
    assert proc.returncode == 0
    assert proc.stdout.count(b"\n") == 6 and b"PAYLOAD-MARKER 5" in proc.stdout  # traffic unaffected
    store_lines = [line for line in proc.stderr.decode().splitlines() if "event store" in line]
    assert len(store_lines) == 1 and len(store_lines[0]) < 400, proc.stderr
    assert "/proc/km.db" in store_lines[0] and "KM_HOME or --db" in store_lines[0]
    assert b"PAYLOAD-MARKER" not in proc.stderr


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # RLIMIT_FSIZE binds root too: writes beyond it fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_store_prints_no_payloads_and_counts_what_was_dropped(km_home: Path) -> None:
    env = km_env(km_home)
    subprocess.run([KM, "sessions"], env=env, check=True, capture_output=True, timeout=60)  # a migrated store
    big = "PAYLOAD-MARKER " + "x" * 200_000  # each call's request and answer overflow the file limit
    proc, took = _monitor(env, _mcp_session(4, text=big), answers=5, limit=128 * 1024)
    print(f"km monitor on a full store exited after {took:.1f} s")
    assert proc.returncode == 0
    assert (
        proc.stdout.count(b"\n") == 5 and proc.stdout.count(b"PAYLOAD-MARKER") == 8
    )  # text and structuredContent
    assert b"PAYLOAD-MARKER" not in proc.stderr and b"xxxxxxxx" not in proc.stderr
    assert b"[SQL" not in proc.stderr and b"INSERT" not in proc.stderr
    store_lines = [line for line in proc.stderr.decode().splitlines() if "event store" in line]
    assert len(store_lines) == 1 and len(store_lines[0]) < 400, proc.stderr
    session = only_session(km_home)
    assert session["dropped_events"] > 0
    stored = km_events(km_home)
    print(proc.stderr.decode(), f"stored {len(stored)} dropped {session['dropped_events']}")
    assert len(stored) + session["dropped_events"] == session["event_count"] >= 10
    assert took < 30


# -- item 11: passwords in error messages ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["serve", "--port", "0"], ["sessions"], ["admin", "list-orgs"], ["events"], ["db", "upgrade"]],
    ids=lambda c: " ".join(c[:2]),
)
@pytest.mark.parametrize("where", ["no-such-role", "closed-port", "raw-at-sign"])
def test_a_database_password_is_never_printed(
    km_home: Path, pg_cluster: Cluster, command: list[str], where: str
) -> None:
    url = {
        "no-such-role": f"postgresql://km:{PASSWORD}@127.0.0.1:{pg_cluster.port}/km",
        "closed-port": f"postgresql://km:{PASSWORD}@127.0.0.1:1/km",
        "raw-at-sign": f"postgresql://km:Pass@{PASSWORD}@127.0.0.1:{pg_cluster.port}/km",
    }[where]
    proc = subprocess.run(
        [KM, *command, "--db", url], env=km_env(km_home), capture_output=True, timeout=120, check=False
    )
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert PASSWORD not in err and PASSWORD not in proc.stdout.decode()
    assert len(err.strip().splitlines()) == 1 and "km:***@" in err, err


def test_the_store_sink_masks_the_password_too(km_home: Path, pg_cluster: Cluster) -> None:
    url = f"postgresql://km:{PASSWORD}@127.0.0.1:{pg_cluster.port}/km"
    proc = subprocess.run(
        [KM, "monitor", "--db", url, "--", PYTHON, RAW_CAT],
        input=_line({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        capture_output=True,
        env=km_env(km_home),
        timeout=120,
    )
    assert proc.returncode == 0 and b"ping" in proc.stdout
    assert b"event store" in proc.stderr and PASSWORD.encode() not in proc.stderr


# -- item 17: kill -9 ------------------------------------------------------------------------------


def test_kill_9_stores_what_the_recorder_got_and_counts_the_rest(run_km: RunKm, km_home: Path) -> None:
    # km monitor's own child recorder (tests/agent covers the agent killed)
    (km_home / "config.toml").write_text("[monitor]\nagent = false\n", encoding="utf-8")
    km = run_km([PYTHON, ECHO_SERVER])
    recorder = recorder_of(km.pid)
    assert recorder is not None
    data = _mcp_session(300)
    km.write(data)
    # kill the moment the last answer is out: its chunk (and the batch window's before it) may
    # still wait in km's queue for the recorder
    out = km.stdout.wait_for(lambda o: b'"id":300' in o or b'"id": 300' in o, timeout=120)
    km.signal(signal.SIGKILL)
    assert km.wait(30) == -signal.SIGKILL
    assert wait_gone([recorder.pid], timeout=120) == []
    session = wait_until(lambda: [s for s in km_sessions(km_home) if s["ended_at"]], 60)[0]
    handed = data.count(b"\n") + out.count(b"\n")  # every message km read, both directions
    stored = km_events(km_home)
    print(f"stored {len(stored)}, dropped {session['dropped_events']} of {handed}")
    assert len(stored) + session["dropped_events"] == handed
    assert session["exit_code"] is None


def test_kill_9_in_process_the_session_is_ended_at_its_last_event(run_km: RunKm, km_home: Path) -> None:
    km = run_km([PYTHON, ECHO_SERVER], env=km_env(km_home, KM_RECORDER_PROCESS="0"))
    km.write(_mcp_session(20))
    km.stdout.wait_for(lambda o: o.count(b"\n") >= 21)
    wait_until(lambda: len(km_events(km_home)) >= 10, 60)  # some of it is stored
    km.signal(signal.SIGKILL)
    assert km.wait(30) == -signal.SIGKILL
    session = only_session(km_home)  # the next km to open the store ends the session
    events = km_events(km_home)
    assert session["ended_at"] is not None and session["exit_code"] is None
    assert session["ended_at"] == max(e["ts"] for e in events)


def test_a_live_session_is_not_ended_by_another_km(run_km: RunKm, km_home: Path) -> None:
    km = run_km([PYTHON, ECHO_SERVER], env=km_env(km_home, KM_RECORDER_PROCESS="0"))
    km.write(_mcp_session(2))
    km.stdout.wait_for(lambda o: o.count(b"\n") >= 3)
    wait_until(lambda: len(km_events(km_home)) >= 2, 60)
    assert only_session(km_home)["ended_at"] is None  # km sessions opened the store: still running
    code, _, _ = km.finish(60)
    assert code == 0 and only_session(km_home)["exit_code"] == 0
    assert not any((km_home / "km-live").iterdir())
    assert os.path.exists(km_home / "km.db")
