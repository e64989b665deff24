"""A sans-IO parser for Server-Sent Events (the ``text/event-stream`` format of the HTML standard).

Feed it the bytes of a stream in whatever chunks they arrived; it returns each event as soon
as its closing blank line has been seen. It never changes or holds back what is forwarded: the
HTTP proxy forwards every chunk unchanged and hands the parser a reference, to capture the
JSON-RPC messages in ``data`` fields.

Besides the standard fields, each :class:`SSEEvent` says where it ended in the chunk that
completed it (:attr:`SSEEvent.end`), and :attr:`SSEParser.at_boundary` says whether the stream
is between two events. The proxy uses these to rewrite the legacy ``endpoint`` event and to
insert an event of its own between two upstream events, never inside one.

Parsing rules (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
lines end in CRLF, LF or CR (also when a CRLF pair is split across two chunks); a leading
UTF-8 BOM is skipped; lines starting with ``:`` are comments; ``field: value`` loses one space
after the colon; several ``data`` lines are joined with LF; an event is dispatched at a blank
line if it had at least one ``data`` line; an ``id`` containing NUL is ignored; ``retry`` is
used only when it is all ASCII digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class SSEEvent:
    data: bytes
    """The ``data`` lines joined with LF (bytes as they arrived: UTF-8 by the standard)."""
    event: str = "message"
    """The event type (``message`` when the event had no ``event`` field)."""
    id: str | None = None
    """The ``id`` field given in this event, or None if it had none (see :attr:`SSEParser.last_event_id`)."""
    retry: int | None = None
    """The ``retry`` field given in this event (milliseconds), if any."""
    end: int = 0
    """Offset just past this event's closing blank line in the chunk that completed it."""

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class SSEParser:
    """Incremental ``text/event-stream`` parser. Not thread-safe: feed it from one task."""

    __slots__ = ("_data", "_event", "_id", "_line", "_pending_cr", "_retry", "_started", "last_event_id")

    def __init__(self) -> None:
        self._line: list[bytes] = []
        """The current line's bytes so far, when it spans chunks."""
        self._data: list[bytes] | None = None
        """``data`` values of the current event (None until the first ``data`` field)."""
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._pending_cr = False
        """The last chunk ended in CR: a LF at the start of the next one belongs to it."""
        self._started = False
        self.last_event_id = ""
        """The stream's last event id, as the standard defines it (what ``Last-Event-ID`` resumes from)."""

    @property
    def at_boundary(self) -> bool:
        """True when no part of an event is pending: a whole event can be inserted here."""
        return (
            not self._line
            and self._data is None
            and not self._event
            and self._id is None
            and self._retry is None
        )

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse ``chunk``; return the events it completed, in order."""
        events: list[SSEEvent] = []
        pos = shift = 0
        if not self._started:
            held = b"".join(self._line)
            if len(held) + len(chunk) < len(_BOM) and _BOM.startswith(held + chunk):
                # too short to tell yet: keep it as the start of the first line
                if chunk:
                    self._line.append(chunk)
                return events
            if held:
                chunk, shift = held + chunk, len(held)
                self._line = []
            self._started = True
            if chunk.startswith(_BOM):
                pos = len(_BOM)
        if self._pending_cr:
            self._pending_cr = False
            if chunk[pos : pos + 1] == b"\n":
                pos += 1
        size = len(chunk)
        line_start = pos
        for match in _EOL.finditer(chunk, pos):
            start, end = match.span()
            if self._line:
                self._line.append(chunk[line_start:start])
                line = b"".join(self._line)
                self._line = []
            else:
                line = chunk[line_start:start]
            line_start = end
            if end == size and start + 1 == end and chunk[start] == 13:  # a lone CR at the very end
                self._pending_cr = True
            event = self._process(line, end - shift)
            if event is not None:
                events.append(event)
        if line_start < size:
            self._line.append(chunk[line_start:])
        return events

    def _process(self, line: bytes, end: int) -> SSEEvent | None:
        if not line:
            return self._dispatch(end)
        if line[0] == 58:  # ":" a comment (also used as a keep-alive)
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
                self.last_event_id = self._id
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self, end: int) -> SSEEvent | None:
        data, event_type, event_id, retry = self._data, self._event, self._id, self._retry
        self._data, self._event, self._id, self._retry = None, "", None, None
        if data is None:
            return None
        joined = data[0] if len(data) == 1 else b"\n".join(data)
        return SSEEvent(joined, event_type or "message", event_id, retry, end)


def encode_event(data: bytes, event: str | None = None, event_id: str | None = None) -> bytes:
    """One event in wire form (``data`` split into lines at LF), ending with its blank line."""
    parts: list[bytes] = []
    if event:
        parts.append(b"event: " + event.encode() + b"\n")
    if event_id is not None:
        parts.append(b"id: " + event_id.encode() + b"\n")
    for line in data.split(b"\n"):
        parts.append(b"data: " + line + b"\n")
    parts.append(b"\n")
    return b"".join(parts)
