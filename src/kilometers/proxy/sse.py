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

Memory is bounded: with ``max_size``, an event's ``data`` (and a line in progress) is kept up
to that many bytes; past it the event is dispatched with no data, :attr:`SSEEvent.truncated`
set and :attr:`SSEEvent.size` saying how many bytes it had.
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
    truncated: bool = False
    """The data was over the parser's ``max_size``: ``data`` is empty, ``size`` says how large it was."""
    size: int = 0
    """Bytes of the ``data`` lines (joined with LF), also when they were not kept."""

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class SSEParser:
    """Incremental ``text/event-stream`` parser. Not thread-safe: feed it from one task."""

    __slots__ = (
        "_data", "_data_size", "_event", "_id", "_line", "_line_size", "_pending_cr", "_retry",
        "_started", "last_event_id", "max_size",
    )  # fmt: skip

    def __init__(self, max_size: int = 0) -> None:
        self.max_size = max_size
        """Most bytes of data kept per event (0: no limit)."""
        self._line: list[bytes] = []
        """The current line's bytes so far, when it spans chunks."""
        self._line_size = 0
        """Length of the current line so far (only its first ``max_size`` bytes are kept)."""
        self._data_size = 0
        """Bytes of the current event's data lines."""
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
                    self._hold(chunk)
                return events
            if held:
                chunk, shift = held + chunk, len(held)
                self._line, self._line_size = [], 0
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
                self._hold(chunk[line_start:start])
                line, length = b"".join(self._line), self._line_size
                self._line, self._line_size = [], 0
            else:
                line = chunk[line_start:start]
                length = len(line)
            line_start = end
            if end == size and start + 1 == end and chunk[start] == 13:  # a lone CR at the very end
                self._pending_cr = True
            event = self._process(line, end - shift, length)
            if event is not None:
                events.append(event)
        if line_start < size:
            self._hold(chunk[line_start:])
        return events

    def _hold(self, part: bytes) -> None:
        """Keep part of a line that spans chunks (its first ``max_size`` bytes at most)."""
        limit = self.max_size
        if limit and self._line_size + len(part) > limit:
            part, self._line_size = part[: max(0, limit - self._line_size)], self._line_size + len(part)
        else:
            self._line_size += len(part)
        if part:
            self._line.append(part)

    def _process(self, line: bytes, end: int, length: int = -1) -> SSEEvent | None:
        if not line:
            return self._dispatch(end)
        if line[0] == 58:  # ":" a comment (also used as a keep-alive)
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            cut = length - len(line) if length > len(line) else 0  # bytes not kept of a long line
            self._data_size += len(value) + cut + (0 if self._data is None else 1)
            if self.max_size and self._data_size > self.max_size:
                self._data = []  # past the limit: nothing more is kept of this event
            elif self._data is None:
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
        size, self._data_size = self._data_size, 0
        if data is None:
            return None
        if self.max_size and size > self.max_size:
            return SSEEvent(b"", event_type or "message", event_id, retry, end, truncated=True, size=size)
        joined = data[0] if len(data) == 1 else b"\n".join(data)
        return SSEEvent(joined, event_type or "message", event_id, retry, end, size=size)


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
