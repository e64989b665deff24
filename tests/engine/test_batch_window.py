"""The recorder's batch window counts from when a pass's first chunk was read: chunks that a
relay (or km, for its recorder process) gathered for a window already are not held for another
one in the agent."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import Event, Session
from kilometers.recorder import Recorder
from kilometers.sinks import Sink

WINDOW = 5.0


class Arrivals(Sink):
    name = "arrivals"

    def __init__(self) -> None:
        self.arrived = threading.Event()

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        self.arrived.set()


def _recorder() -> tuple[Recorder, Arrivals]:
    sink = Arrivals()
    recorder = Recorder(Capture(Session(command=["test"], cwd="/")), [sink], batch_window=WINDOW)
    recorder.start()
    return recorder, sink


def test_chunks_read_a_window_ago_are_recorded_at_once() -> None:
    recorder, sink = _recorder()
    read_at = time.time_ns() - int(WINDOW * 1e9)  # gathered for a window by the sender already
    recorder.submit(C2S, b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n', read_at)
    assert sink.arrived.wait(WINDOW / 2), "held for another window"
    recorder.stop(0, 30)


def test_fresh_chunks_wait_for_the_window() -> None:
    recorder, sink = _recorder()
    started = time.monotonic()
    recorder.submit(C2S, b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n', time.time_ns())
    assert sink.arrived.wait(WINDOW * 3)
    assert time.monotonic() - started >= WINDOW * 0.9  # gathered for its window first
    recorder.stop(0, 30)
