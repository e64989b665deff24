"""Process lifecycle of ``km monitor``: who exits first, signals, exit codes, no orphans, stdout hygiene.

Real processes only. "Promptly" bounds are several seconds wide so a busy machine passes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from km_helpers import (
    ECHO_SERVER,
    KM,
    LIFECYCLE_SERVER,
    PYTHON,
    RAW_CAT,
    KmProcess,
    km_env,
    km_events,
    km_sessions,
    only_session,
    read_json_line,
    wait_gone,
)

PROMPT = 5.0
"""Seconds within which km must have reacted ("promptly"), generous for a loaded 2-core machine."""

RunKm = Callable[..., KmProcess]


def lifecycle(*args: str) -> list[str]:
    return [PYTHON, LIFECYCLE_SERVER, *args]


def start_ready(
    run_km: RunKm, *server_args: str, km_args: tuple[str, ...] = ()
) -> tuple[KmProcess, dict[str, Any]]:
    """Start km with the lifecycle server and wait for its ``test/ready`` notification."""
    km = run_km(lifecycle(*server_args), km_args=km_args)
    ready = read_json_line(km.stdout, "test/ready")
    return km, ready["params"]


def assert_no_leftovers(km: KmProcess, pids: list[int]) -> None:
    """km and everything it started are gone (exited and reaped, or at worst zombies of init)."""
    assert km.proc.poll() is not None
    alive = wait_gone(pids)
    assert not alive, f"processes left running after km exited: {alive}"


# -- the server exits first ---------------------------------------------------------------------------


def test_server_exit_first_km_exits_promptly_with_its_code(run_km: RunKm, km_home: Path) -> None:
    km, ready = start_ready(run_km, "--exit-code", "3")
    server_pid = ready["pid"]
    km.write(b"exit\n")  # the server exits; our end of km's stdin stays open
    started = time.monotonic()
    code = km.wait(30)
    elapsed = time.monotonic() - started
    assert code == 3
    assert elapsed < PROMPT, f"km took {elapsed:.1f}s to exit after its server did"
    assert_no_leftovers(km, [server_pid])
    session = only_session(km_home)
    assert session["exit_code"] == 3
    assert session["ended_at"] is not None
    km.close_stdin()


def test_server_exit_on_its_own_while_client_is_silent(run_km: RunKm, km_home: Path) -> None:
    """The server exits by itself (no input at all): km must not wait for the client to close stdin."""
    km, ready = start_ready(run_km, "--exit-after", "0.5", "--exit-code", "7")
    code = km.wait(30)
    assert code == 7
    assert km.stdout.wait_closed().count(b"\n") == 1  # just the ready line
    assert_no_leftovers(km, [ready["pid"]])
    assert only_session(km_home)["exit_code"] == 7
    km.close_stdin()


def test_server_exit_first_terminates_grandchildren(run_km: RunKm, km_home: Path) -> None:
    """A helper process the server left behind (holding the pipes open) does not outlive km."""
    km, ready = start_ready(run_km, "--grandchild", "--exit-code", "4")
    grandchild = ready["grandchild"]
    assert grandchild is not None
    km.write(b"exit\n")
    started = time.monotonic()
    code = km.wait(30)
    elapsed = time.monotonic() - started
    assert code == 4
    # the grandchild still holds stdout open, so km waits for its short drain window at most
    assert elapsed < PROMPT + 3, f"km took {elapsed:.1f}s to exit"
    assert_no_leftovers(km, [ready["pid"], grandchild])
    assert only_session(km_home)["exit_code"] == 4
    km.close_stdin()


# Regression (fixed in StdioProxy._drain_stdout): once the server had exited, km waited at
# most STDOUT_DRAIN_SECONDS (2 s) for the server->client relay to finish, then exits, killing the relay
# thread mid-write. If the client is not reading at that moment (busy for a few seconds), the last
# bytes the server wrote before exiting (up to ~200 KB: what sits in the pipes and in km's read
# buffer) are silently dropped, and km still exits 0; they are not recorded either. Repro: a server
# that writes 8 MB and exits; the client reads all but 150 000 bytes, pauses 4 s, then reads the
# rest: it gets ~86 KB less than the server wrote. The drain deadline should only apply while the
# server's stdout is still open (a grandchild holding it), not while km is writing to the client.
def test_server_final_output_reaches_a_slow_client(run_km: RunKm, km_home: Path) -> None:
    size = 8 * 1024 * 1024
    writer = f"import os\nv = memoryview(b'x' * {size - 1} + b'\\n')\nwhile v:\n    v = v[os.write(1, v):]\n"
    km = run_km([PYTHON, "-c", writer])
    km.stdout.pause_after(size - 150_000)  # the client gets busy for a while, right when the server exits
    server = km.server_process()
    km.stdout.wait_for(lambda _: km.stdout.paused, timeout=60)
    try:
        assert wait_gone([server.pid], timeout=30) == []  # it wrote everything and exited
        time.sleep(4)
    finally:
        km.stdout.resume()
    code, out, _ = km.finish(60)
    assert code == 0
    assert len(out) == size, f"the client got {size - len(out)} bytes less than the server wrote"
    [event] = km_events(km_home)
    assert event["size_bytes"] == size - 1


# -- the client closes stdin first ------------------------------------------------------------------


def test_client_closes_stdin_server_sees_eof(run_km: RunKm, km_home: Path) -> None:
    km, ready = start_ready(run_km, "--exit-code", "5")
    km.close_stdin()
    eof = read_json_line(km.stdout, "test/eof")  # the server saw its stdin close, and said so
    assert eof["method"] == "test/eof"
    code, out, _ = km.finish(30)
    assert code == 5
    assert out.endswith(b'"method": "test/eof", "params": {}}\n')
    assert_no_leftovers(km, [ready["pid"]])
    session = only_session(km_home)
    assert session["exit_code"] == 5
    methods = [e["method"] for e in km_events(km_home)]
    assert methods == ["test/ready", "test/eof"]


def test_server_ignoring_stdin_eof_is_terminated_after_grace_period(run_km: RunKm, km_home: Path) -> None:
    km, ready = start_ready(run_km, "--on-eof", "ignore", km_args=("--grace-period", "0.5"))
    km.close_stdin()
    read_json_line(km.stdout, "test/eof")
    started = time.monotonic()
    code = km.wait(30)
    elapsed = time.monotonic() - started
    assert code == 128 + signal.SIGTERM
    assert elapsed < 0.5 + PROMPT
    assert_no_leftovers(km, [ready["pid"]])
    assert only_session(km_home)["exit_code"] == -signal.SIGTERM  # km stopped it: a normal close


def test_server_ignoring_eof_and_sigterm_is_killed(run_km: RunKm, km_home: Path) -> None:
    km, ready = start_ready(
        run_km, "--on-eof", "ignore", "--sigterm", "ignore", km_args=("--grace-period", "0.5")
    )
    km.close_stdin()
    code = km.wait(30)
    assert code == 128 + signal.SIGKILL
    assert_no_leftovers(km, [ready["pid"]])
    assert only_session(km_home)["exit_code"] == -signal.SIGKILL


def test_server_trapping_sigterm_after_eof_exits_cleanly(run_km: RunKm, km_home: Path) -> None:
    """After the grace period the server gets SIGTERM; its last words still reach the client."""
    km, ready = start_ready(
        run_km, "--on-eof", "ignore", "--sigterm", "trap", km_args=("--grace-period", "0.5")
    )
    code, out, _ = km.finish(30)
    assert code == 0
    assert out.endswith(b'"method": "test/sigterm", "params": {}}\n')
    assert_no_leftovers(km, [ready["pid"]])
    assert [e["method"] for e in km_events(km_home)] == ["test/ready", "test/eof", "test/sigterm"]


# -- the server dies of a signal --------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_server_killed_by_signal(run_km: RunKm, km_home: Path, sig: signal.Signals) -> None:
    km, ready = start_ready(run_km)
    os.kill(ready["pid"], sig)
    started = time.monotonic()
    code = km.wait(30)
    assert time.monotonic() - started < PROMPT
    assert code == 128 + sig
    assert_no_leftovers(km, [ready["pid"]])
    assert only_session(km_home)["exit_code"] == -sig  # ended by signal N: recorded as -N
    km.close_stdin()


# -- km itself gets a signal ------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_to_km_is_forwarded(run_km: RunKm, km_home: Path, sig: signal.Signals) -> None:
    km, ready = start_ready(run_km, "--grandchild")
    km.signal(sig)
    started = time.monotonic()
    code = km.wait(30)
    assert time.monotonic() - started < PROMPT
    assert code == 128 + sig  # the server died of the forwarded signal
    assert_no_leftovers(km, [ready["pid"], ready["grandchild"]])
    session = only_session(km_home)
    assert session["exit_code"] == -sig
    assert session["ended_at"] is not None
    km.close_stdin()


def test_sigterm_to_km_server_shuts_down_gracefully(run_km: RunKm, km_home: Path) -> None:
    # Two full runs saw exit 137: km forwarded SIGTERM, yet the trapping server was SIGKILLed after
    # the grace period. The server, not km, lost the signal: a Python handler runs between
    # bytecodes, and a SIGTERM landing just before its blocking stdin read waited for input that
    # never came. lifecycle_server.py now selects on a signal wakeup pipe. The long grace period
    # stays so that a stalled machine cannot turn this graceful exit into the kill tested below.
    km, ready = start_ready(run_km, "--sigterm", "trap", km_args=("--grace-period", "30"))
    km.signal(signal.SIGTERM)
    code = km.wait(120)  # longer than the grace period: a stalled machine must not fail this
    assert code == 0
    out = km.stdout.wait_closed()
    assert out.endswith(b'"method": "test/sigterm", "params": {}}\n')  # drained before km exited
    assert_no_leftovers(km, [ready["pid"]])
    session = only_session(km_home)
    assert session["exit_code"] == 0
    assert [e["method"] for e in km_events(km_home)] == ["test/ready", "test/sigterm"]
    km.close_stdin()


def test_sigterm_to_km_server_ignoring_it_is_killed(run_km: RunKm, km_home: Path) -> None:
    km, ready = start_ready(run_km, "--sigterm", "ignore", km_args=("--grace-period", "0.5"))
    km.signal(signal.SIGTERM)
    code = km.wait(30)
    assert code == 128 + signal.SIGKILL
    assert_no_leftovers(km, [ready["pid"]])
    assert only_session(km_home)["exit_code"] == -signal.SIGKILL
    km.close_stdin()


# Regression (fixed: handlers now go in before the spawn): km installed its signal handlers in
# StdioProxy.run(), *after* StdioProxy.start() has spawned the server (and after recorder.start()).
# A signal landing in that window kills km with the default action: km exits with -SIGTERM instead of
# 143, nothing is forwarded, and the server, in its own process group, is orphaned (a server that
# does not exit on stdin EOF then runs forever). Repro: start `km monitor -- python
# tests/servers/lifecycle_server.py --on-eof ignore`, and SIGTERM km as soon as its child process
# appears; about 1 run in 5 leaves the server running. Fix: install the handlers before spawning
# (remember a signal that arrives before the server exists and forward it once it does), or block
# the signals around the spawn. The race is probabilistic, so this test tries several times.
def test_sigterm_right_after_the_server_starts_leaves_no_orphan(run_km: RunKm, km_home: Path) -> None:
    for attempt in range(15):
        km = run_km(lifecycle("--on-eof", "ignore", "--silent"), km_args=("--grace-period", "1"))
        server = km.server_process()
        km.signal(signal.SIGTERM)
        code = km.wait(30)
        km.close_stdin()
        alive = wait_gone([server.pid], timeout=3)
        if alive:  # do not leave it behind: it is no longer km's child, so cleanup cannot see it
            server.kill()
        assert not alive, f"attempt {attempt}: km exited ({code}) and left its server {alive} running"
        # 137: the signal reached the server before its exec (and was lost), so km killed it after the grace
        expected = (128 + signal.SIGTERM, 128 + signal.SIGKILL)
        assert code in expected, f"attempt {attempt}: km exited with {code}"


def test_km_killed_hard_server_sees_eof_and_exits(run_km: RunKm, km_home: Path) -> None:
    """Even SIGKILL on km leaves no orphan behind when the server exits on stdin EOF, as servers do."""
    km, ready = start_ready(run_km)
    km.signal(signal.SIGKILL)
    assert km.wait(30) == -signal.SIGKILL
    assert wait_gone([ready["pid"]]) == []
    km.close_stdin()


def test_client_stops_reading_stdout(km_home: Path) -> None:
    """A client that closes its end of km's stdout: km keeps relaying and recording, then exits normally."""
    proc = subprocess.Popen(
        [KM, "monitor", "--", PYTHON, RAW_CAT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=km_env(km_home),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
        proc.stdin.flush()
        assert proc.stdout.readline() == b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
        proc.stdout.close()  # the client goes away on the reading side
        for i in range(2, 6):
            proc.stdin.write(b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i)
            proc.stdin.flush()
            time.sleep(0.05)
        proc.stdin.close()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = km_events(km_home)
    assert sorted((e["direction"], e["jsonrpc_id"]) for e in events) == sorted(
        (d, i) for d in ("client_to_server", "server_to_client") for i in range(1, 6)
    )


# -- no orphans, no zombies -------------------------------------------------------------------------


def test_normal_session_leaves_no_processes(run_km: RunKm, km_home: Path) -> None:
    km, ready = start_ready(run_km, "--grandchild")
    tree = [p.pid for p in km.descendants()]
    assert ready["pid"] in tree and ready["grandchild"] in tree
    code, _, _ = km.finish(30)
    assert code == 0
    assert_no_leftovers(km, tree)


# -- inheritance ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("patient_sdk_client")
def test_environment_and_cwd_are_inherited(km_home: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    env = km_env(km_home, KM_TEST_MARKER="marker-äöü-42")

    async def call_where() -> str:
        params = StdioServerParameters(
            command=KM, args=["monitor", "--", PYTHON, ECHO_SERVER], env=env, cwd=str(workdir)
        )
        with anyio.fail_after(60):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("where", {})
                assert not result.is_error
                return result.content[0].text  # type: ignore[union-attr]

    text = anyio.run(call_where)
    assert text == f"{os.path.realpath(workdir)}|marker-äöü-42"
    session = only_session(km_home)
    assert os.path.realpath(session["cwd"]) == os.path.realpath(workdir)
    assert session["exit_code"] == 0


def test_server_stderr_is_inherited(run_km: RunKm, km_home: Path) -> None:
    km, _ = start_ready(run_km, "--stderr", "stderr-marker-9f3a")
    code, out, err = km.finish(30)
    assert code == 0
    assert b"stderr-marker-9f3a" in err
    assert b"stderr-marker-9f3a" not in out


# -- km's own output never goes to stdout -----------------------------------------------------------


def test_silent_server_means_empty_stdout(run_km: RunKm, km_home: Path) -> None:
    km = run_km(lifecycle("--silent"))
    km.write(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
    code, out, _ = km.finish(30)
    assert code == 0
    assert out == b""
    [event] = km_events(km_home)
    assert event["method"] == "ping" and event["direction"] == "client_to_server"


def test_silent_server_empty_stdout_even_with_broken_config(run_km: RunKm, km_home: Path) -> None:
    (km_home / "config.toml").write_text("this is [not toml\n")
    km = run_km(lifecycle("--silent"))
    code, out, err = km.finish(30)
    assert code == 0
    assert out == b""
    assert b"km:" in err  # the problem is reported, on stderr


def test_unwritable_store_still_forwards_and_keeps_stdout_clean(run_km: RunKm, km_home: Path) -> None:
    store_file = km_home / "not-a-dir"
    store_file.write_text("")
    km = run_km(lifecycle("--silent"), km_args=("--db", f"sqlite:///{store_file}/sub/km.db"))
    km.write(b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
    code, out, err = km.finish(30)
    assert code == 0
    assert out == b""
    assert b"km:" in err


def test_command_not_found(km_home: Path) -> None:
    proc = subprocess.run(
        [KM, "monitor", "--", "km-test-no-such-command-xyz", "--flag"],
        env=km_env(km_home),
        input=b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 127
    assert proc.stdout == b""
    assert b"command not found" in proc.stderr
    assert b"km-test-no-such-command-xyz" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_command_not_executable(km_home: Path, tmp_path: Path) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    proc = subprocess.run(
        [KM, "monitor", "--", str(script)],
        env=km_env(km_home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 126
    assert proc.stdout == b""
    assert b"permission denied" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_sessions_are_separate(run_km: RunKm, km_home: Path) -> None:
    for code in (0, 2):
        km = run_km(lifecycle("--silent", "--exit-code", str(code)))
        assert km.finish(30)[0] == code
    assert sorted(s["exit_code"] for s in km_sessions(km_home)) == [0, 2]
