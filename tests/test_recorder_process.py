"""km monitor records in a child process (the default): what it records, and what happens when
km or the recorder process dies. Real processes only."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from km_helpers import PYTHON, RAW_CAT, KmProcess, km_env, km_events, km_sessions, recorder_of, wait_gone

RunKm = Callable[..., KmProcess]


@pytest.fixture(autouse=True)
def without_agent(km_home: Path) -> None:
    """These tests are about km monitor's own child recorder (what it falls back to without the
    agent): the agent is off in the config file."""
    (km_home / "config.toml").write_text("[monitor]\nagent = false\n", encoding="utf-8")


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "t"}}).encode()
        + b"\n"
        for i in range(start, start + n)
    )


def _session_ended(home: Path, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ended = [s for s in km_sessions(home) if s["ended_at"]]
        if ended or time.monotonic() > deadline:
            assert ended, "the recorder never ended the session"
            return ended[0]
        time.sleep(0.2)


def test_records_in_a_child_process_in_wire_order(run_km: RunKm, km_home: Path) -> None:
    km = run_km([PYTHON, RAW_CAT])
    recorder = recorder_of(km.pid)
    assert recorder is not None and recorder.pid != km.server_process().pid
    data = _lines(200)
    km.write(data)
    km.stdout.wait_for(lambda out: len(out) >= len(data))
    km.close_stdin()
    code, out, _ = km.finish(60)
    assert code == 0 and out == data
    assert wait_gone([recorder.pid]) == []  # it ends with km, after storing everything
    events = km_events(km_home)
    assert len(events) == 400
    # both directions share one queue: each line is recorded going in before it comes back
    order = {(e["direction"], e["jsonrpc_id"]): i for i, e in enumerate(events)}
    assert all(order[("client_to_server", i)] < order[("server_to_client", i)] for i in range(200))


def test_setting_it_off_records_in_process(run_km: RunKm, km_home: Path) -> None:
    km = run_km([PYTHON, RAW_CAT], env=km_env(km_home, KM_RECORDER_PROCESS="0"))
    km.write(_lines(10))
    km.stdout.wait_for(lambda out: out.count(b"\n") >= 10)
    assert recorder_of(km.pid, timeout=0.5) is None
    km.close_stdin()
    assert km.finish(60)[0] == 0
    assert len(km_events(km_home)) == 20


def test_km_killed_loses_nothing_it_handed_over(run_km: RunKm, km_home: Path) -> None:
    """SIGKILL leaves km no time to flush: the recorder process still stores everything km handed
    it, counts what km never handed over as ``dropped_events``, ends the session and exits."""
    km = run_km([PYTHON, RAW_CAT])
    recorder = recorder_of(km.pid)
    assert recorder is not None
    data = _lines(300)
    km.write(data)
    km.stdout.wait_for(lambda out: len(out) >= len(data))
    server = km.server_process()
    km.signal(signal.SIGKILL)  # no wait: what is still in km's queue must be counted, not lost
    km.wait(30)
    assert wait_gone([recorder.pid], timeout=60) == []
    session = _session_ended(km_home)
    assert len(km_events(km_home)) + session["dropped_events"] == 600
    with contextlib.suppress(psutil.NoSuchProcess):  # raw_cat may already have seen EOF and exited
        server.kill()


def test_a_dead_recorder_never_touches_traffic(run_km: RunKm, km_home: Path) -> None:
    km = run_km([PYTHON, RAW_CAT])
    recorder = recorder_of(km.pid)
    assert recorder is not None
    km.write(_lines(5))
    km.stdout.wait_for(lambda out: out.count(b"\n") >= 5)
    recorder.kill()
    psutil.wait_procs([recorder], timeout=10)
    more = _lines(2000, start=5)  # enough to fill the pipe to the dead recorder many times over
    km.write(more)
    km.stdout.wait_for(lambda out: out.count(b"\n") >= 2005, timeout=60)
    km.close_stdin()
    code, out, err = km.finish(60)
    assert code == 0 and out == _lines(5) + more
    assert b"recorder process stopped" in err and b"traffic is unaffected" in err
