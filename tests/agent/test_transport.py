"""The agent over loopback TCP with a token (``agent_transport = "tcp"``, the default where there
are no Unix sockets: Windows), and started without ``fork`` (as on Windows): both run here, on
Linux, with real ``km monitor`` processes and a real agent."""

from __future__ import annotations

import os
import pickle
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from agent_helpers import lines, monitors_at_once, stored

from kilometers.agent.link import request, spawn_process
from kilometers.agent.wire import TOKEN_SIZE, agent_id, log_path, socket_path
from kilometers.config import Settings
from kilometers.frames import FRAME, KIND_INIT

from km_helpers import KM, PYTHON, RAW_CAT, KmProcess, km_env

RunKm = Callable[..., KmProcess]
TCP = Settings(agent_transport="tcp")


def _address(home: Path) -> Path:
    return socket_path(home, agent_id(TCP, {}), "tcp")


def _status(home: Path) -> dict[str, object]:
    answer = request(_address(home), "status")
    assert answer is not None, "the loopback agent answers"
    return answer


def test_sessions_through_a_loopback_agent_record_every_message_once(km_home: Path) -> None:
    monitors_at_once(km_env(km_home, KM_AGENT_TRANSPORT="tcp"), 4, 20, "t")
    sessions = stored(km_home).values()
    assert len(sessions) == 4 and all(len(s) == 40 and set(s.values()) == {1} for s in sessions)
    address = _address(km_home)
    assert stat.S_IMODE(address.stat().st_mode) == 0o600
    port, token = address.read_text().split()
    assert 0 < int(port) < 65536 and len(bytes.fromhex(token)) == TOKEN_SIZE
    assert not list(address.parent.glob("*.sock")), "no Unix socket: the loopback agent only"
    status = _status(km_home)
    assert status["served"] == 4 and status["socket"] == str(address)
    listening = [
        c for c in psutil.Process(int(str(status["pid"]))).net_connections("tcp") if c.status == "LISTEN"
    ]
    assert [(c.laddr.ip, c.laddr.port) for c in listening] == [("127.0.0.1", int(port))]


class _Boom:
    """What an attacker's pickle would do, were it ever unpickled: make a directory."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.mkdir, (str(self.marker),))


def test_a_loopback_connection_without_the_token_is_refused_unread(run_km: RunKm, km_home: Path) -> None:
    km = run_km([PYTHON, RAW_CAT], env=km_env(km_home, KM_AGENT_TRANSPORT="tcp"))
    km.write(lines(2, "first"))
    assert km.finish(60)[0] == 0
    port, token = _address(km_home).read_text().split()
    marker = km_home / "unpickled"
    payload = pickle.dumps(_Boom(marker))
    near = bytes.fromhex(token)[:-1] + bytes([bytes.fromhex(token)[-1] ^ 1])
    for guess in (b"\0" * TOKEN_SIZE, near):
        with socket.create_connection(("127.0.0.1", int(port)), timeout=30) as conn:
            conn.sendall(guess + FRAME.pack(KIND_INIT, 0, len(payload)) + payload)
            try:
                answer = conn.recv(100)
            except ConnectionResetError:  # (closed with the frame unread)
                answer = b""
            assert answer == b"", "the agent closes the connection without an answer"
    assert not marker.exists(), "nothing from a connection without the token is unpickled"
    status = _status(km_home)  # with the token, the same agent answers
    assert status["refused"] == 2, status
    km = run_km([PYTHON, RAW_CAT], env=km_env(km_home, KM_AGENT_TRANSPORT="tcp"))
    km.write(lines(3, "after"))
    code, out, err = km.finish(60)
    assert code == 0 and out.count(b"\n") == 3 and b"by itself" not in err, err
    assert sorted(len(s) for s in stored(km_home).values()) == [4, 6]


def test_a_stale_address_file_is_replaced(run_km: RunKm, km_home: Path) -> None:
    address = _address(km_home)
    address.parent.mkdir(mode=0o700)
    with socket.socket() as gone:  # a port nobody listens on any more: an agent killed
        gone.bind(("127.0.0.1", 0))
        stale_port = gone.getsockname()[1]
    address.write_text(f"{stale_port} {'00' * TOKEN_SIZE}\n")
    km = run_km([PYTHON, RAW_CAT], env=km_env(km_home, KM_AGENT_TRANSPORT="tcp"))
    km.write(lines(5, "s"))
    code, _, err = km.finish(60)
    assert code == 0 and b"by itself" not in err, err
    assert int(address.read_text().split()[0]) != stale_port
    assert _status(km_home)["served"] == 1
    assert [len(s) for s in stored(km_home).values()] == [10]


def test_an_agent_started_without_fork_serves_and_a_second_steps_aside(run_km: RunKm, km_home: Path) -> None:
    agent = agent_id(TCP, {})
    first = spawn_process(TCP, km_home, agent)
    assert first(30) == "ready"
    assert spawn_process(TCP, km_home, agent)(30) == "another"
    pid = int(str(_status(km_home)["pid"]))
    assert os.getsid(pid) == pid, "a session of its own: a client's hang-up or Ctrl-C never reaches it"
    assert os.readlink(f"/proc/{pid}/fd/1") == str(log_path(km_home)), "after its status, stdout is the log"
    assert stat.S_IMODE(log_path(km_home).stat().st_mode) == 0o600
    km = run_km([PYTHON, RAW_CAT], env=km_env(km_home, KM_AGENT_TRANSPORT="tcp"))
    km.write(lines(4, "s"))
    code, _, err = km.finish(60)
    assert code == 0 and b"by itself" not in err, err
    status = _status(km_home)
    assert (status["pid"], status["served"]) == (pid, 1), "the km monitor used the agent started without fork"
    assert [len(s) for s in stored(km_home).values()] == [8]


@pytest.mark.parametrize("value", ["pipe", "TCP", ""])
def test_an_unknown_transport_is_a_clear_error(km_home: Path, value: str) -> None:
    proc = subprocess.run(
        [KM, "config"], env=km_env(km_home, KM_AGENT_TRANSPORT=value), capture_output=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stdout == b""
    expected = f"invalid value for agent_transport: expected 'auto', 'unix' or 'tcp', got {value!r}"
    assert f"KM_AGENT_TRANSPORT: {expected}" in proc.stderr.decode(), proc.stderr
