"""The host (kilometers.host): one per process, its sinks shared by every session opened on it.

Real components: the SQLite store, the security stage, the recorder threads; km's own
reading commands check what was stored."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from kilometers import config
from kilometers.host import Host
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Event, Session
from kilometers.sinks import Sink
from kilometers.store import db

from km_helpers import km_sessions

SESSIONS = 4


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


class Counting(Sink):
    """Counts hook calls, by session, and from how many threads they came."""

    name = "counting"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[str, int] = {}
        self.ended: list[str] = []
        self.threads: set[int] = set()
        self.closed = 0

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        with self.lock:
            self.events[session.id] = self.events.get(session.id, 0) + len(events)
            self.threads.add(threading.get_ident())

    def on_session_end(self, session: Session) -> None:
        with self.lock:
            self.ended.append(session.id)

    def close(self) -> None:
        self.closed += 1


def _call(recording: object, n: int, ts: int) -> None:
    submit = recording.submit  # type: ignore[attr-defined]
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": {"n": n}},
    }
    submit(C2S, _line(call), ts)
    submit(S2C, _line({"jsonrpc": "2.0", "id": 1, "result": {"content": []}}), ts + 1000)


@pytest.fixture
def settings(km_home: Path) -> config.Settings:
    return config.Settings(db_url=f"sqlite:///{km_home / 'km.db'}")


def test_the_store_is_migrated_at_start_up_before_any_session(
    settings: config.Settings, km_home: Path
) -> None:
    host = Host(settings).start()
    try:
        assert host.store_error is None and host.sessions == []
        engine = db.make_engine(settings.db_url)
        assert db.current_revision(engine) == db.HEAD
        engine.dispose()
    finally:
        host.close()


def test_sessions_share_the_sinks_which_are_closed_once(settings: config.Settings, km_home: Path) -> None:
    host = Host(settings, batch_window=0).start()
    counting = Counting()
    host.sinks.append(counting)
    handles = [host.open_session(Session(command=["srv"], cwd="/", name=f"s{n}")) for n in range(SESSIONS)]
    for n, handle in enumerate(handles):
        _call(handle, n, 10**18 + n)
    handles[0].close(0)
    handles[1].close(3)
    assert counting.closed == 0  # the sinks outlive the sessions that ended
    assert len(host.sessions) == SESSIONS - 2
    host.close()  # ends the two still open, then closes every sink once
    host.close()
    assert counting.closed == 1 and host.sessions == []
    assert sorted(counting.ended) == sorted(h.session.id for h in handles)
    assert counting.events == {h.session.id: 2 for h in handles}
    assert len(counting.threads) > 1  # one recorder thread per session
    stored = {s["name"]: s for s in km_sessions(km_home)}
    assert sorted(stored) == [f"s{n}" for n in range(SESSIONS)]
    assert [stored[f"s{n}"]["exit_code"] for n in range(SESSIONS)] == [0, 3, None, None]
    assert all(s["ended_at"] and s["event_count"] == 2 for s in stored.values()), stored


def test_a_session_never_started_is_not_recorded(settings: config.Settings, km_home: Path) -> None:
    """km monitor opens its session before the server starts; a server that cannot start leaves
    no session in the records."""
    host = Host(settings).start()
    handle = host.open_session(Session(command=["missing"], cwd="/"), start=False)
    handle.close(127)
    host.close()
    assert km_sessions(km_home) == []


def test_a_closed_host_opens_no_session(settings: config.Settings) -> None:
    host = Host(settings).start()
    host.close()
    with pytest.raises(RuntimeError, match="closed"):
        host.open_session(Session(command=["srv"], cwd="/"))


def test_an_unwritable_store_is_reported_once_and_counted_per_session(
    km_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = km_home / "not-a-dir"
    blocker.write_text("")
    host = Host(config.Settings(db_url=f"sqlite:///{blocker / 'km.db'}"), batch_window=0).start()
    assert host.store_error is not None  # the caller says so (km proxy); traffic goes on
    handles = [host.open_session(Session(command=["srv"], cwd="/")) for _ in range(2)]
    _call(handles[0], 0, 10**18)
    handles[1].submit(C2S, _line({"jsonrpc": "2.0", "method": "notifications/initialized"}), 10**18)
    for handle in handles:
        handle.close(0)
    host.close()
    assert [h.session.dropped_events for h in handles] == [2, 1]  # each its own
    out, err = capsys.readouterr()
    assert out == "" and err.count("cannot write the event store") == 1, err
