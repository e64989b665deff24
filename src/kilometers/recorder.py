"""The recorder: a background thread that turns captured bytes into events and hands them to sinks.

Transports call :meth:`Recorder.submit` right after forwarding a chunk. ``submit`` only
appends to an unbounded queue, so the forwarding path never waits on parsing, analysis,
disk or network. Everything else happens here, on one thread, in wire order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import orjson

from .jsonlimits import too_large_finding, too_large_marker
from .jsonrpc import Capture, truncate_payload
from .log import once
from .model import Direction, Event, Session
from .sinks import Sink

_log = logging.getLogger(__name__)

_STOP = object()
_BARRIER = object()
_OMITTED = object()
_RELEASE = object()


class Stage(Protocol):
    """A processing step between capture and the sinks (it may change events in place)."""

    def process(self, session: Session, events: Sequence[Event]) -> None: ...

    def finish(self) -> None: ...


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
        self.capture = capture
        self.stage = stage
        """Runs on every batch before any sink sees it (security analysis and redaction)."""
        self.payload_limit = payload_limit
        """Applied after the stage, so that a secret cut in half is still found and redacted."""
        self.batch_window = batch_window
        self.session: Session = capture.session
        self.sinks = list(sinks)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="km-recorder", daemon=True)

    # -- called from transports ------------------------------------------------------------------

    def submit(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        self._queue.put((direction, data, ts_ns))

    def backlog(self) -> int:
        """Chunks waiting for the recorder thread (approximate)."""
        return self._queue.qsize()

    def submit_message(self, direction: Direction, message: bytes, ts_ns: int) -> None:
        """An already-framed message (HTTP transports)."""
        self._queue.put((direction, message, ts_ns, True))

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
        self._queue.put((_BARRIER, done))
        return done.wait(timeout)

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
            _log.warning(f"km: the {sink.name} sink failed ({exc!r}); traffic is unaffected",
                         extra=once(f"{self.session.id}:sink:{sink.name}"))  # fmt: skip

    def _emit(self, events: list[Event]) -> None:
        changed = self.capture.session_changed
        # the stage sees (and redacts) the session too before any sink does
        if self.stage is not None and (events or changed):
            try:
                self.stage.process(self.session, events)
            except Exception as exc:
                # never store what could not be checked for secrets: keep the metadata, drop payloads
                _log.warning(f"km: security analysis failed ({exc!r}); payloads of those events are not kept",
                             extra=once(f"{self.session.id}:stage"))  # fmt: skip
                for e in events:
                    e.payload, e.error_message, e.truncated = None, None, True
        if changed:
            self.capture.session_changed = False
            for sink in self.sinks:
                self._call(sink, "on_session_update", self.session)
        if not events:
            return
        if self.payload_limit:
            for e in events:
                truncate_payload(e, self.payload_limit)
        self.session.event_count += len(events)
        self.session.error_count += sum(1 for e in events if e.is_error)
        for sink in self.sinks:
            self._call(sink, "on_events", self.session, events)

    def _run(self) -> None:
        for sink in self.sinks:
            self._call(sink, "on_session_start", self.session)
        get, get_nowait = self._queue.get, self._queue.get_nowait
        capture = self.capture
        while True:
            items = [get()]
            first = items[0]
            if not (isinstance(first, tuple) and first[0] in (_STOP, _BARRIER, _RELEASE)):
                time.sleep(self.batch_window)
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
                    self._emit(events)
                    self._finish(item[1])
                    return
                if item[0] is _BARRIER:
                    self._emit(events)
                    events = []
                    item[1].set()
                    continue
                if item[0] is _OMITTED:
                    events.append(_omitted_event(self.session.id, *item[1:]))
                elif item[0] is _RELEASE:
                    self._emit(events)
                    events = []
                    for sink in self.sinks:
                        self._call(sink, "release")
                elif len(item) == 4:
                    events.extend(capture.feed_message(item[0], item[1], item[2]))
                else:
                    events.extend(capture.feed(item[0], item[1], item[2]))
            self._emit(events)

    closes_sinks = True
    """Close the sinks when the session ends (False when a Host shares them between sessions)."""

    def _finish(self, exit_code: object) -> None:
        now = time.time_ns()
        self._emit(self.capture.finish(now))
        if self.stage is not None:
            try:
                self.stage.finish()
            except Exception as exc:
                _log.warning(f"km: security analysis failed at the end of the session ({exc!r})")
        self.session.ended_ns = now
        self.session.exit_code = exit_code if isinstance(exit_code, int) else None
        for sink in self.sinks:
            self._call(sink, "on_session_end", self.session)
        if self.closes_sinks:
            for sink in self.sinks:
                self._call(sink, "close")


def _omitted_event(session_id: str, direction: Direction, size_bytes: int, ts_ns: int) -> Event:
    return Event(
        session_id,
        ts_ns,
        direction,
        "invalid",
        size_bytes,
        orjson.dumps(too_large_marker(size_bytes)).decode(),
        truncated=True,
        risk={"score": 40, "level": "medium", "findings": [too_large_finding()]},
    )
