"""The per-user agent (issue 11): many ``km monitor`` sessions through one recorder, and every
way it can fail without losing or doubling a message. Real processes: km, its agent, the SDK
echo server, raw servers; the agent is killed with SIGKILL, not simulated."""

from __future__ import annotations

import json
import pickle
import socket
import sqlite3
import struct
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from agent_helpers import lines, monitors_at_once, stored
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from kilometers.agent.wire import agent_id, socket_path
from kilometers.config import Settings

from km_helpers import (
    ECHO_SERVER,
    KM,
    PYTHON,
    RAW_CAT,
    KmProcess,
    agents_under,
    free_port,
    km_env,
    wait_until,
)

RunKm = Callable[..., KmProcess]
FRAME = struct.Struct("<BqI")


def _count(home: Path) -> int:
    """Events stored so far (0 while the store is not created or migrated yet)."""
    try:
        return sum(map(len, stored(home).values()))
    except sqlite3.OperationalError:
        return 0


def _statuses(home: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [KM, "agent", "status", "--json"], env=km_env(home), capture_output=True, timeout=60, check=False
    )
    answers: list[dict[str, Any]] = json.loads(proc.stdout)
    assert (proc.returncode == 0) == bool(answers)
    return answers


def _status(home: Path) -> dict[str, Any] | None:
    """The one agent of ``home`` (None: none runs)."""
    answers = _statuses(home)
    assert len(answers) <= 1, answers
    return answers[0] if answers else None


def _default_socket(home: Path) -> Path:
    """Where the agent of a km monitor with default settings listens."""
    return socket_path(home, agent_id(Settings(), {}))


def _ended_session(home: Path, columns: str) -> tuple[Any, ...]:
    """``ended_ns`` and ``columns`` of the store's one session, once the agent has ended it."""

    def ended() -> tuple[Any, ...] | None:
        with sqlite3.connect(home / "km.db") as db:
            row = db.execute(f"SELECT ended_ns, {columns} FROM sessions").fetchone()
        return row if row and row[0] is not None else None

    found: tuple[Any, ...] = wait_until(ended, timeout=60, what="the agent to end the session")
    return found


def _agents(home: Path) -> list[psutil.Process]:
    """The agent processes of ``home``, once those that lost a start race have exited."""
    wait_until(lambda: len(agents_under(home)) <= 1, timeout=30, what="the losers of the start race to exit")
    return agents_under(home)


# -- 8 sessions through one agent -------------------------------------------------------------------


async def _sdk_session(home: Path, name: str, calls: int) -> int:
    params = StdioServerParameters(
        command=KM, args=["monitor", "--name", name, "--", PYTHON, ECHO_SERVER], env=km_env(home)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for i in range(calls):
            result = await session.call_tool("echo", {"text": f"{name}-{i}"})
            assert not result.is_error
    return calls


def test_eight_sdk_sessions_through_one_agent_record_every_message_once(km_home: Path) -> None:
    calls = 25

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(_sdk_session, km_home, f"s{i}", calls)

    anyio.run(main)
    agents = _agents(km_home)
    assert len(agents) == 1, f"one agent for one data directory, found {agents}"
    status = _status(km_home)
    assert status is not None and status["served"] == 8 and status["refused"] == 0
    by_session = stored(km_home)
    assert len(by_session) == 8
    for session_id, seen in by_session.items():
        assert set(seen.values()) == {1}, f"a message stored twice in {session_id}: {seen.most_common(3)}"
        requests = {i for d, i in seen if d == "client_to_server" and i is not None}
        answers = {i for d, i in seen if d == "server_to_client"}
        assert requests == answers, "every request and every answer"
        assert ("client_to_server", None) in seen  # notifications/initialized
    with sqlite3.connect(km_home / "km.db") as db:
        per_session = db.execute(
            "SELECT count(*) FROM events WHERE method = 'tools/call' AND direction = 'client_to_server' "
            "GROUP BY session_id"
        ).fetchall()
    assert per_session == [(calls,)] * 8
    names = {row[0] for row in sqlite3.connect(km_home / "km.db").execute("SELECT name FROM sessions")}
    assert names == {f"s{i}" for i in range(8)}


# -- the agent killed in the middle of 8 sessions ---------------------------------------------------


def test_agent_killed_during_eight_sessions_loses_and_doubles_nothing(run_km: RunKm, km_home: Path) -> None:
    kms = [run_km([PYTHON, RAW_CAT], km_args=("--name", f"raw{i}")) for i in range(8)]
    for round_ in range(3):  # the agent takes and stores some of it
        for i, km in enumerate(kms):
            km.write(lines(50, f"raw{i}", start=round_ * 50))
    for km in kms:
        km.stdout.wait_for(lambda out: out.count(b"\n") >= 150, timeout=60)
    agent = psutil.Process(wait_until(lambda: _status(km_home), timeout=60, what="the agent")["pid"])
    wait_until(lambda: _count(km_home) > 0, timeout=60, what="events")
    agent.kill()  # SIGKILL: no goodbye, whatever it had not stored is gone with it
    agent.wait(30)
    for round_ in range(3, 6):  # the relays go on, by themselves
        for i, km in enumerate(kms):
            km.write(lines(50, f"raw{i}", start=round_ * 50))
    for i, km in enumerate(kms):
        code, out, err = km.finish(120)
        assert code == 0
        assert out == lines(300, f"raw{i}")  # forwarded untouched throughout
        assert b"recording without the agent" in err
    by_session = stored(km_home)
    assert len(by_session) == 8, "each relay's session continues under its own id"
    for session_id, seen in by_session.items():
        assert set(seen.values()) == {1}, f"stored twice in {session_id}: {seen.most_common(3)}"
        assert len(seen) == 600, f"{session_id}: {600 - len(seen)} messages missing"
    with sqlite3.connect(km_home / "km.db") as db:
        rows = db.execute("SELECT event_count, ended_ns IS NOT NULL, exit_code FROM sessions").fetchall()
    assert rows == [(600, 1, 0)] * 8


# -- a refused or unusable agent: km records by itself -----------------------------------------------


class FakeAgent:
    """Listens where the agent would and answers as a km of another version would."""

    def __init__(self, path: Path, version: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.version = version
        self.hellos: list[Any] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                header = conn.recv(FRAME.size, socket.MSG_WAITALL)
                _, _, length = FRAME.unpack(header)
                self.hellos.append(pickle.loads(conn.recv(length, socket.MSG_WAITALL)))
                reply = json.dumps({"ok": True, "version": self.version, "session_id": "x"}).encode()
                conn.sendall(FRAME.pack(4, 0, len(reply)) + reply)

    def close(self) -> None:
        self.sock.close()


def test_an_agent_of_another_version_is_not_used(run_km: RunKm, km_home: Path) -> None:
    fake = FakeAgent(_default_socket(km_home), "0.0.1/99")
    try:
        km = run_km([PYTHON, RAW_CAT])
        km.write(lines(20, "v"))
        code, out, err = km.finish(60)
    finally:
        fake.close()
    assert code == 0 and out == lines(20, "v")
    assert len(fake.hellos) == 1
    assert b"0.0.1/99" in err and b"recording without the agent" in err
    [seen] = stored(km_home).values()
    assert len(seen) == 40 and set(seen.values()) == {1}


def test_other_store_settings_get_an_agent_of_their_own(run_km: RunKm, km_home: Path, tmp_path: Path) -> None:
    first = run_km([PYTHON, RAW_CAT])
    first.write(lines(3, "a"))
    first.stdout.wait_for(lambda out: out.count(b"\n") >= 3)
    other = tmp_path / "other.db"
    second = run_km([PYTHON, RAW_CAT], km_args=("--db", f"sqlite:///{other}"))
    second.write(lines(5, "b"))
    code, out, err = second.finish(60)
    assert code == 0 and out == lines(5, "b")
    assert b"without the agent" not in err
    assert first.finish(60)[0] == 0
    assert [len(s) for s in stored(km_home).values()] == [6]
    with sqlite3.connect(other) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (10,)
    statuses = _statuses(km_home)
    assert sorted(s["served"] for s in statuses) == [1, 1] and len({s["pid"] for s in statuses}) == 2
    assert any(str(other) in s["store"] for s in statuses)


def test_a_socket_directory_km_cannot_write_leaves_traffic_untouched(tmp_path: Path) -> None:
    # a data directory whose path is too long for a socket puts the socket under
    # $XDG_RUNTIME_DIR; /proc takes no new directory, even from root
    home = tmp_path / ("d" * 60) / ("e" * 60)
    home.mkdir(parents=True)
    env = km_env(home, XDG_RUNTIME_DIR="/proc")
    km = KmProcess(home, [PYTHON, RAW_CAT], env=env)
    try:
        km.write(lines(10, "ro"))
        code, out, err = km.finish(60)
    finally:
        km.cleanup()
    assert code == 0 and out == lines(10, "ro")
    assert b"could not start" in err and b"recording without the agent" in err
    [seen] = stored(home).values()
    assert len(seen) == 20
    assert not agents_under(home)


def test_a_stale_socket_file_is_replaced(run_km: RunKm, km_home: Path) -> None:
    path = _default_socket(km_home)
    path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: an agent killed before it could clean up
    km = run_km([PYTHON, RAW_CAT])
    km.write(lines(5, "s"))
    code, _, err = km.finish(60)
    assert code == 0 and b"without the agent" not in err
    status = _status(km_home)
    assert status is not None and status["served"] == 1
    assert [len(s) for s in stored(km_home).values()] == [10]


# -- starting ------------------------------------------------------------------------------------


def test_concurrent_first_starts_make_one_agent(km_home: Path) -> None:
    monitors_at_once(km_env(km_home), 8, 2, "c")
    assert len(_agents(km_home)) == 1
    status = _status(km_home)
    assert status is not None and status["served"] == 8
    assert sorted(len(s) for s in stored(km_home).values()) == [4] * 8


def test_each_data_directory_has_its_own_agent(tmp_path: Path) -> None:
    homes = [tmp_path / "one", tmp_path / "two"]
    for home in homes:
        home.mkdir()
        km = KmProcess(home, [PYTHON, RAW_CAT])
        km.write(lines(1, home.name))
        assert km.finish(60)[0] == 0
    pids = [(_status(home) or {}).get("pid") for home in homes]
    assert None not in pids and pids[0] != pids[1]
    for home in homes:
        [seen] = stored(home).values()
        assert len(seen) == 2
        payloads = [r[0] for r in sqlite3.connect(home / "km.db").execute("SELECT payload FROM events")]
        assert all(home.name in p for p in payloads)


def test_the_agent_exits_when_idle_and_km_agent_stop_stops_it(run_km: RunKm, km_home: Path) -> None:
    (km_home / "config.toml").write_text("[monitor]\nagent_idle = 0.5\n", encoding="utf-8")
    km = run_km([PYTHON, RAW_CAT])
    km.write(lines(1, "i"))
    assert km.finish(60)[0] == 0
    wait_until(lambda: not _agents(km_home), timeout=30, what="the idle agent to exit")
    assert not _default_socket(km_home).exists()
    (km_home / "config.toml").write_text("", encoding="utf-8")
    km = run_km([PYTHON, RAW_CAT])
    km.write(lines(1, "j"))
    assert km.finish(60)[0] == 0
    assert _status(km_home) is not None
    proc = subprocess.run(
        [KM, "agent", "stop"], env=km_env(km_home), capture_output=True, timeout=90, check=False
    )
    assert proc.returncode == 0 and b"stopped" in proc.stdout
    assert not _agents(km_home) and _status(km_home) is None
    text = subprocess.run(
        [KM, "agent", "status"], env=km_env(km_home), capture_output=True, timeout=60
    ).stdout
    assert b"no agent runs" in text
    doctor = subprocess.run(
        [KM, "doctor", "--offline"], env=km_env(km_home), capture_output=True, timeout=120
    )
    assert b"no agent runs for" in doctor.stdout


def test_km_doctor_and_status_show_the_running_agent(run_km: RunKm, km_home: Path) -> None:
    km = run_km([PYTHON, RAW_CAT], km_args=("--name", "shown"))
    km.write(lines(1, "d"))
    km.stdout.wait_for(lambda out: out.count(b"\n") >= 1)
    status = wait_until(lambda: (_status(km_home) or {}).get("sessions"), timeout=60, what="the open session")
    assert [s["name"] for s in status] == ["shown"]
    text = subprocess.run(
        [KM, "agent", "status"], env=km_env(km_home), capture_output=True, timeout=60
    ).stdout
    assert b"1 open" in text and b"shown" in text
    doctor = subprocess.run(
        [KM, "doctor", "--offline"], env=km_env(km_home), capture_output=True, timeout=120
    )
    assert b"sessions open" in doctor.stdout and b"(pid " in doctor.stdout
    assert km.finish(60)[0] == 0


# -- one Prometheus endpoint ---------------------------------------------------------------------


@pytest.fixture
def metrics_port(km_home: Path) -> Iterator[int]:
    port = free_port()
    (km_home / "config.toml").write_text(f"[monitor]\nmetrics_port = {port}\n", encoding="utf-8")
    yield port


def test_one_metrics_endpoint_serves_every_session(km_home: Path, metrics_port: int) -> None:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(_sdk_session, km_home, f"m{i}", 2)

    anyio.run(main)
    wanted = [f'km_tool_calls_total{{server="m{i}",tool="echo"}} 2.0' for i in range(3)]

    def scraped() -> str | None:
        # the client does not wait for its km to finish (the SDK terminates it after 2 s), so
        # a session's last batch may still be on its way through the agent's sinks
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30).read().decode()
        return text if all(w in text for w in wanted) else None

    text = wait_until(scraped, timeout=60, what="every session's calls on the one metrics endpoint")
    assert "km_session_events" in text
    assert _status(km_home)["metrics_port"] == metrics_port  # type: ignore[index]


def test_km_killed_mid_session_leaves_an_ended_session_with_what_it_handed_over(
    run_km: RunKm, km_home: Path
) -> None:
    km = run_km([PYTHON, RAW_CAT], km_args=("--name", "killed"))
    km.write(lines(50, "k"))
    km.stdout.wait_for(lambda out: out.count(b"\n") >= 50)
    # handed over: the link sends every batch window (50 ms) and the agent stores it
    wait_until(lambda: _count(km_home) == 100, timeout=60, what="events")
    agent = _status(km_home)
    assert agent is not None
    km.proc.kill()  # SIGKILL: no END, the agent sees the connection close
    km.proc.wait(30)

    _, exit_code, count = _ended_session(km_home, "exit_code, event_count")
    assert exit_code is None and count == 100
    assert (_status(km_home) or {}).get("pid") == agent["pid"], "the agent lives on for the other sessions"


def test_km_killed_before_handing_over_counts_the_rest_as_dropped(run_km: RunKm, km_home: Path) -> None:
    """What km forwarded but had not sent to the agent yet when it was killed is not lost
    silently: the agent reads km's shared count of what it handed over and stores the rest of
    the session's messages as dropped."""
    km = run_km([PYTHON, RAW_CAT], km_args=("--name", "dropped"))
    km.write(lines(5, "d"))
    km.stdout.wait_for(lambda out: out.count(b"\n") >= 5)
    wait_until(lambda: _count(km_home) == 10, timeout=60, what="the session to reach the agent")
    km.write(lines(300, "d", start=5))
    km.stdout.wait_for(lambda out: out.count(b"\n") >= 305)
    km.proc.kill()  # at once: the last batch window's chunks are still in km
    km.proc.wait(30)

    _, count, dropped = _ended_session(km_home, "event_count, dropped_events")
    assert _count(km_home) == count
    assert count + dropped == 610, (count, dropped)
