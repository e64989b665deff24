"""What makes a dead agent cost nothing: the child recorder a relay falls back to resumes the
agent's session from the store and skips the chunks the agent had stored but not acknowledged.
Real store, real child process (``python -m kilometers.recorder_process``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from kilometers.config import Settings
from kilometers.host import Host
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Session
from kilometers.recorder_process import RecorderProcess

T0 = 1_790_000_000_000_000_000


def _frame(i: int) -> tuple[str, bytes, int]:
    if i % 2 == 0:
        line = {"jsonrpc": "2.0", "id": i // 2, "method": "tools/call", "params": {"name": "t"}}
        direction = C2S
    else:
        line = {"jsonrpc": "2.0", "id": i // 2, "result": {"content": []}}
        direction = S2C
    return direction, json.dumps(line).encode() + b"\n", T0 + i * 1000


def test_a_resumed_session_skips_what_the_agent_stored_and_keeps_the_rest(km_home: Path) -> None:
    settings = Settings()
    session = Session(command=["server"], cwd="/", name="resumed")
    frames = [_frame(i) for i in range(40)]
    # the agent stored the first 30 chunks (acknowledged only the first 20) and was killed
    host = Host(settings).start()
    handle = host.open_session(session)
    for direction, data, ts in frames[:30]:
        handle.submit(direction, data, ts)  # type: ignore[arg-type]
    assert handle.barrier(30)
    # (SIGKILL: no end, no close)

    # the relay re-sends what was not acknowledged (20..29), then goes on (30..39)
    child = RecorderProcess(
        settings, Session(command=["server"], cwd="/", name="resumed", id=session.id), resume=True
    )
    child.start()
    for direction, data, ts in frames[20:]:
        child.submit(direction, data, ts)  # type: ignore[arg-type]
    child.stop(0, timeout=60)

    with sqlite3.connect(km_home / "km.db") as db:
        rows = db.execute(
            "SELECT ts_ns, direction FROM events WHERE session_id = ?", (session.id,)
        ).fetchall()
        ended = db.execute(
            "SELECT event_count, exit_code, ended_ns IS NOT NULL, name FROM sessions WHERE id = ?",
            (session.id,),
        ).fetchone()
    assert sorted(rows) == [(ts, d) for d, _, ts in frames], "every message once"
    assert ended == (40, 0, 1, "resumed")


def test_a_resumed_session_the_agent_never_stored_is_recorded_whole(km_home: Path) -> None:
    settings = Settings()
    session = Session(command=["server"], cwd="/", name="never-stored")
    child = RecorderProcess(settings, session, resume=True)
    child.start()
    for direction, data, ts in (_frame(i) for i in range(6)):
        child.submit(direction, data, ts)  # type: ignore[arg-type]
    child.stop(None, timeout=60)
    with sqlite3.connect(km_home / "km.db") as db:
        assert db.execute("SELECT count(*) FROM events WHERE session_id = ?", (session.id,)).fetchone() == (
            6,
        )
        assert db.execute("SELECT event_count FROM sessions WHERE id = ?", (session.id,)).fetchone() == (6,)
