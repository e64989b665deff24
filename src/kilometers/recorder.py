"""The recorder: the threaded host of one session's :class:`~kilometers.engine.Engine`.

Transports call :meth:`Recorder.submit` right after forwarding a chunk. ``submit`` only
appends to an unbounded queue, so the forwarding path never waits on parsing, analysis,
disk or network. Everything else happens here, on one thread, in wire order: the engine turns
the chunks of a batch window into one batch of events, and the recorder hands it to the sinks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from .engine import Batch, Engine, Stage
from .jsonrpc import Capture
from .log import once
from .model import Direction, Event, Session
from .sinks import Sink

__all__ = ["BATCH_WINDOW", "DRAIN_MAX", "Recorder", "Stage"]

_log = logging.getLogger(__name__)

_STOP = object()
_BARRIER = object()
_OMITTED = object()
_RELEASE = object()

DRAIN_MAX = 4096
"""Chunks taken from the queue per pass at most; their events reach sinks as one batch."""
BATCH_WINDOW = 0.05
"""Seconds the recorder waits after the first chunk of a pass before taking the rest. While it
sleeps it holds neither the GIL nor a CPU, so calls in flight are forwarded without contention,
and the store gets larger, cheaper batches (see docs/benchmarks.md)."""


class Recorder:
    def __init__(
        self,
        capture: Capture,
        sinks: Sequence[Sink],
        batch_window: float = BATCH_WINDOW,
        stage: Stage | None = None,
        payload_limit: int = 0,
    ) -> None:
        self.engine = Engine(capture.session, stage=stage, payload_limit=payload_limit, capture=capture)
        self.capture = capture
        self.batch_window = batch_window
        self.session: Session = capture.session
        self.sinks = list(sinks)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="km-recorder", daemon=True)

    @classmethod
    def for_engine(
        cls, engine: Engine, sinks: Sequence[Sink], batch_window: float = BATCH_WINDOW
    ) -> Recorder:
        """A recorder hosting an engine built elsewhere."""
        recorder = cls(engine.capture, sinks, batch_window)
        recorder.engine = engine
        return recorder

    @property
    def stage(self) -> Stage | None:
        return self.engine.stage

    @property
    def payload_limit(self) -> int:
        return self.engine.payload_limit

    # -- called from transports ------------------------------------------------------------------

    def submit(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        self._queue.put((direction, data, ts_ns))

    def backlog(self) -> int:
        """Chunks waiting for the recorder thread (approximate)."""
        return self._queue.qsize()

    def submit_message(
        self, direction: Direction, message: bytes, ts_ns: int, headers: Mapping[str, str] | None = None
    ) -> None:
        """An already-framed message (HTTP transports), with the request's ``Mcp-*`` headers."""
        self._queue.put((direction, message, ts_ns, headers))

    def submit_omitted(self, direction: Direction, size_bytes: int, ts_ns: int) -> None:
        """A message too large to decode and keep (it was forwarded): recorded as a marker."""
        self._queue.put((_OMITTED, direction, size_bytes, ts_ns))

    def release(self) -> None:
        """The session is idle: sinks let go of what they can reopen (database connections)."""
        self._queue.put((_RELEASE,))

    def barrier(self, timeout: float = 1.0) -> bool:
        """Wait until everything submitted so far has been through the stage (block mode uses it
        to decide with what the server has already said, e.g. a tools/list just received)."""
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        self._queue.put((_BARRIER, done.set))
        return done.wait(timeout)

    def checkpoint(self, then: Callable[[], object]) -> None:
        """Call ``then`` on the recorder thread once everything submitted so far has reached the
        sinks (the agent acknowledges a relay's chunks with it)."""
        self._queue.put((_BARRIER, then))

    def start(self) -> None:
        self._thread.start()

    def stop(self, exit_code: int | None, timeout: float | None = None) -> None:
        """Drain everything submitted so far, end the session and close the sinks."""
        self._queue.put((_STOP, exit_code))
        self._thread.join(timeout)

    # -- the recorder thread -----------------------------------------------------------------------

    def _call(self, sink: Sink, hook: str, *args: object) -> None:
        try:
            getattr(sink, hook)(*args)
        except Exception as exc:
            self._say_once(
                f"sink:{sink.name}", f"the {sink.name} sink failed ({exc!r}); traffic is unaffected"
            )

    def _say_once(self, key: str, line: str) -> None:
        _log.warning(f"km: {line}", extra=once(f"{self.session.id}:{key}"))

    def _emit(self, batch: Batch) -> None:
        """Hand one batch of the engine to the sinks, then let go of its decoded messages."""
        for key, line in batch.problems:
            self._say_once(key, line)
        if batch.session_changed:
            for sink in self.sinks:
                self._call(sink, "on_session_update", self.session)
        if batch.events:
            for sink in self.sinks:
                self._call(sink, "on_events", self.session, batch.events)
        batch.release()

    def _run(self) -> None:
        for sink in self.sinks:
            self._call(sink, "on_session_start", self.session)
        get, get_nowait = self._queue.get, self._queue.get_nowait
        engine = self.engine
        while True:
            items = [get()]
            first = items[0]
            if not (isinstance(first, tuple) and first[0] in (_STOP, _BARRIER, _RELEASE)):
                time.sleep(self._window_left(first))
            try:
                while len(items) < DRAIN_MAX:
                    items.append(get_nowait())
            except queue.Empty:
                pass
            events: list[Event] = []
            items.reverse()
            while items:
                item = items.pop()  # drop each chunk as soon as it is fed: large messages are not kept twice
                assert isinstance(item, tuple)
                if item[0] is _STOP:
                    self._emit(engine.process(events))
                    self._finish(item[1])
                    return
                if item[0] is _BARRIER:
                    self._emit(engine.process(events))
                    events = []
                    item[1]()
                    continue
                if item[0] is _OMITTED:
                    events.extend(engine.capture_omitted(*item[1:]))
                elif item[0] is _RELEASE:
                    self._emit(engine.process(events))
                    events = []
                    for sink in self.sinks:
                        self._call(sink, "release")
                elif len(item) == 4:
                    events.extend(engine.capture_message(item[0], item[1], item[2], item[3]))
                else:
                    events.extend(engine.capture_chunk(item[0], item[1], item[2]))
            self._emit(engine.process(events))

    def _window_left(self, first: object) -> float:
        """The batch window, counted from when the pass's first chunk was read: a recorder in
        another process (the agent, the recorder process) gets chunks that its sender gathered
        for a window already, and does not hold them for another."""
        if not isinstance(first, tuple) or len(first) < 3:
            return self.batch_window
        ts = first[3] if first[0] is _OMITTED else first[2]
        if not isinstance(ts, int):
            return self.batch_window
        age = (time.time_ns() - ts) / 1e9
        return min(self.batch_window, max(0.0, self.batch_window - age))

    closes_sinks = True
    """Close the sinks when the session ends (False when a Host shares them between sessions)."""

    def _finish(self, exit_code: object) -> None:
        self._emit(self.engine.finish(time.time_ns(), exit_code if isinstance(exit_code, int) else None))
        for sink in self.sinks:
            self._call(sink, "on_session_end", self.session)
        if self.closes_sinks:
            for sink in self.sinks:
                self._call(sink, "close")
