"""The engine: one session's recording pipeline as a sans-IO object.

Bytes (or already-framed messages) and their read times go in; batches of finished events come
out. In between, in this order: framing, decoding (once: each message becomes one
:class:`~kilometers.model.Message` that travels with its event), classification, correlation,
session learning and filters (:class:`~kilometers.jsonrpc.Capture`), then the stage (security
analysis and redaction, :class:`~kilometers.security.SecurityStage`), the payload limit and the
session's counters. No threads, no IO, no clocks: a host (:class:`~kilometers.recorder.Recorder`)
owns the queue, the timing and the sinks, and tests drive it like a playbook (``tests/engine``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from .analysis.list_order import ListOrder
from .analysis.mcp_headers import HeaderMarks, check_headers
from .jsonlimits import too_large_finding, too_large_marker
from .jsonrpc import Capture, Filters, truncate_payload
from .model import Direction, Event, Message, Session


class Stage(Protocol):
    """A step between capture and the sinks that may change events (and the session) in place."""

    def process(self, session: Session, events: Sequence[Event]) -> None: ...

    def finish(self) -> None: ...


@dataclass(slots=True)
class Batch:
    """What one step of the engine produced, for the host to hand to its sinks."""

    events: list[Event] = field(default_factory=list)
    """Finished events (analysed, redacted, limited), in wire order."""
    session_changed: bool = False
    """The session's details (client, server, capabilities...) changed: sinks hear of it first."""
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(key, one line for the user): what went wrong in this batch; the host says each key once."""

    def release(self) -> None:
        """The sinks are done with this batch: drop the decoded messages (they are never kept)."""
        for e in self.events:
            e.message = None


STAGE_FAILED = "stage"
STAGE_FINISH_FAILED = "stage-finish"


class Engine:
    """Turns one session's traffic into batches of events. Not thread-safe: one caller at a time.

    Each ``feed*`` call makes one batch. A host that gathers many chunks into one batch (the
    recorder's batch window) captures them first (:meth:`capture_chunk`,
    :meth:`capture_message`, :meth:`capture_omitted`) and then calls :meth:`process` once."""

    def __init__(
        self,
        session: Session,
        filters: Filters | None = None,
        stage: Stage | None = None,
        payload_limit: int = 0,
        *,
        capture: Capture | None = None,
    ) -> None:
        self.capture = capture if capture is not None else Capture(session, filters)
        self.session = self.capture.session
        self.stage = stage
        """Runs on every batch before any sink sees it (security analysis and redaction)."""
        self.payload_limit = payload_limit
        """Applied after the stage, so that a secret cut in half is still found and redacted."""
        self.list_order = ListOrder()
        self.marks = HeaderMarks()
        """The ``x-mcp-header`` marks of the session's tools, for its ``Mcp-Param-*`` headers."""
        """Flags a ``tools/list`` answer that reorders the tools of an identical earlier call."""

    # -- capture: framing, decoding, correlation, session learning, filters --------------------------

    def capture_chunk(self, direction: Direction, chunk: bytes, ts_ns: int) -> list[Event]:
        """Bytes read from a stream (any piece of it: lines are reassembled across chunks)."""
        return self.capture.feed(direction, chunk, ts_ns)

    def capture_message(
        self, direction: Direction, message: bytes, ts_ns: int, headers: Mapping[str, str] | None = None
    ) -> list[Event]:
        """One already-framed message (an HTTP body, an SSE data field). ``headers``: the HTTP
        request's ``Mcp-Method``/``Mcp-Name``/``Mcp-Param-*`` (decoded), checked against the body."""
        events = self.capture.feed_message(direction, message, ts_ns)
        if headers and len(events) == 1:  # a batch cannot be described by one set of headers
            check_headers(events[0], headers, self.marks)
        for e in events:  # (learned as captured: a call in the same batch is checked with them)
            self.marks.learn(e)
        return events

    def capture_omitted(self, direction: Direction, size_bytes: int, ts_ns: int) -> list[Event]:
        """A message too large to decode and keep (it was forwarded): recorded as a marker."""
        marker = too_large_marker(size_bytes)
        text = orjson.dumps(marker).decode()
        event = Event(
            self.session.id,
            ts_ns,
            direction,
            "invalid",
            size_bytes,
            text,
            truncated=True,
            risk={"score": 40, "level": "medium", "findings": [too_large_finding()]},
            message=Message(text, marker, "invalid", size_bytes),
        )
        return [event]

    # -- one batch ------------------------------------------------------------------------------------

    def feed(self, direction: Direction, chunk: bytes, ts_ns: int) -> Batch:
        return self.process(self.capture_chunk(direction, chunk, ts_ns))

    def feed_message(self, direction: Direction, message: bytes, ts_ns: int) -> Batch:
        return self.process(self.capture_message(direction, message, ts_ns))

    def omitted(self, direction: Direction, size_bytes: int, ts_ns: int) -> Batch:
        return self.process(self.capture_omitted(direction, size_bytes, ts_ns))

    def process(self, events: list[Event]) -> Batch:
        """Captured events through the stage, the payload limit and the counters."""
        batch = Batch(events, self.capture.session_changed)
        self.capture.session_changed = False
        for e in events:
            self.list_order.observe(e)
        # the stage sees (and redacts) the session too before any sink does
        if self.stage is not None and (events or batch.session_changed):
            try:
                self.stage.process(self.session, events)
            except Exception as exc:
                # never hand on what could not be checked for secrets: keep the metadata only
                batch.problems.append(
                    (
                        STAGE_FAILED,
                        f"security analysis failed ({exc!r}); payloads of those events are not kept",
                    )
                )
                for e in events:
                    e.payload, e.error_message, e.truncated, e.message = None, None, True, None
        if self.payload_limit:
            for e in events:
                truncate_payload(e, self.payload_limit)
        self.session.event_count += len(events)
        self.session.error_count += sum(1 for e in events if e.is_error)
        return batch

    def finish(self, ts_ns: int, exit_code: int | None) -> Batch:
        """End of the session: a trailing partial line becomes an ``invalid`` event, the stage
        finishes (pins saved), and the session gets ``ended_ns`` and ``exit_code``."""
        batch = self.process(self.capture.finish(ts_ns))
        if self.stage is not None:
            try:
                self.stage.finish()
            except Exception as exc:
                batch.problems.append(
                    (STAGE_FINISH_FAILED, f"security analysis failed at the end of the session ({exc!r})")
                )
        self.session.ended_ns = ts_ns
        self.session.exit_code = exit_code
        return batch
