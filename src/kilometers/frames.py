"""The frames ``km monitor`` and ``km proxy`` hand their traffic over in, to a recorder process
or to the agent: ``<kind:u8><n:i64><length:u32><data>``. Lean on purpose: the relay imports it
before it forwards its first byte."""

from __future__ import annotations

import collections
import contextlib
import os
import struct
import threading

from .directions import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Direction

TYPE_CHECKING = False  # (see directions.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

FRAME = struct.Struct("<BqI")
KIND_C2S, KIND_S2C, KIND_END, KIND_INIT = 0, 1, 2, 3
"""Chunks of a byte stream each way (stdio; ``n``: the time they were read, in ns), the end of
the session (data: the exit status in decimal, or empty) and the first frame (what the receiver
needs to record)."""
KIND_MSG_C2S, KIND_MSG_S2C, KIND_OMITTED, KIND_SESSION = 4, 5, 6, 7
"""One whole message each way (the HTTP transports: a body, an SSE event; data: see
:func:`pack_message`), a message too large to keep (data: ``b"<direction kind> <size>"``), and
new details of the session, in order with its traffic (data: JSON, e.g. ``{"transport": "sse"}``)."""
KIND_SYNC = 8
"""A blocking policy's question (``n``: its number): once everything sent before it is processed,
which tools changed since pinned (the agent answers with ``wire.KIND_SYNCED``)."""
KINDS: dict[str, int] = {CLIENT_TO_SERVER: KIND_C2S, SERVER_TO_CLIENT: KIND_S2C}
DIRECTIONS: dict[int, Direction] = {KIND_C2S: CLIENT_TO_SERVER, KIND_S2C: SERVER_TO_CLIENT}
MESSAGE_KINDS: dict[str, int] = {CLIENT_TO_SERVER: KIND_MSG_C2S, SERVER_TO_CLIENT: KIND_MSG_S2C}
RECORDED = frozenset((KIND_C2S, KIND_S2C, KIND_MSG_C2S, KIND_MSG_S2C, KIND_OMITTED, KIND_SESSION))
"""The kinds a recorder records (acknowledged, re-sent to another recorder if need be)."""
SESSION_DETAILS = frozenset(("transport",))
"""What a KIND_SESSION frame may change."""
_HEADERS = struct.Struct("<I")


def pack_message(message: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """A message frame's data: ``<length of the headers' JSON:u32><headers' JSON><message>`` (the
    request's ``Mcp-*`` headers, checked against its body; length 0 for none)."""
    if not headers:
        return _HEADERS.pack(0) + message
    import json

    encoded = json.dumps(dict(headers)).encode()
    return _HEADERS.pack(len(encoded)) + encoded + message


def unpack_message(data: bytes) -> tuple[bytes, dict[str, str] | None]:
    (length,) = _HEADERS.unpack_from(data)
    start = _HEADERS.size + length
    if not length:
        return data[start:], None
    import json

    return data[start:], json.loads(data[_HEADERS.size : start])


def direction_of(kind: int, data: bytes) -> int:
    """The direction (KIND_C2S or KIND_S2C) of a frame that carries traffic (KIND_C2S for a
    session's details)."""
    if kind <= KIND_S2C:
        return kind
    if kind == KIND_OMITTED:
        return int(data.split(b" ", 1)[0])
    return kind - KIND_MSG_C2S if kind <= KIND_MSG_S2C else KIND_C2S


def already_stored(stored: set[tuple[int, int]], kind: int, data: bytes, ts_ns: int) -> bool:
    """Whether a re-sent frame's events are among ``stored`` ((direction, time) of the events the
    agent stored before it went away: a frame's events carry its time and are committed in one
    transaction, all or none)."""
    return kind != KIND_SESSION and (direction_of(kind, data), ts_ns) in stored


def messages_in(kind: int, data: bytes) -> int:
    """Messages a frame carries: its newlines (stdio chunks), none (a session's details), else one."""
    if kind <= KIND_S2C:
        return data.count(b"\n")
    return 0 if kind == KIND_SESSION else 1


class SubmittedLines:
    """Per direction, the newlines (messages) ``km monitor`` has handed to its recorder so far,
    in a small file that the recorder (the child process, or the agent, which is given the file
    descriptor) maps too: when km dies without ending its session, the recorder counts what km
    had not sent on yet as dropped instead of losing it silently.

    Each direction is written by its own forwarding thread only, so no lock is needed. On a
    system without ``memfd_create`` (not Linux) an unlinked temporary file holds the counts."""

    SLOT = struct.Struct("<Q")
    HANDED_OVER = 2
    """Third slot: 1 once the relay has handed its session to another recorder (the agent
    then knows its connection's end is no loss)."""

    def __init__(self) -> None:
        import mmap

        size = 3 * self.SLOT.size
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("km-lines", os.MFD_CLOEXEC)
        else:
            import tempfile

            self.fd = os.dup(tempfile.TemporaryFile().fileno())  # noqa: SIM115 - the dup outlives it
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.lines = [0, 0]

    def add(self, kind: int, data: bytes) -> None:
        self.count(kind, data.count(b"\n"))

    def count(self, kind: int, messages: int) -> None:
        if self.map.closed:
            return  # the session has ended
        count = self.lines[kind] = self.lines[kind] + messages
        self.SLOT.pack_into(self.map, kind * self.SLOT.size, count)

    def hand_over(self) -> None:
        self.SLOT.pack_into(self.map, self.HANDED_OVER * self.SLOT.size, 1)

    def close(self) -> None:
        """The session has ended and its recorder has read the counts (it holds its own copy of
        the descriptor): a ``km proxy`` opens one of these per session."""
        if not self.map.closed:
            self.map.close()
            os.close(self.fd)


def never_received(fd: int | None, received: list[int]) -> int:
    """Messages ``km monitor`` handed over (per :class:`SubmittedLines` in ``fd``) beyond the
    ``received`` ones (per direction): km died before sending them on. 0 when the session was
    handed to another recorder, or the counts cannot be read."""
    import mmap

    if fd is None:
        return 0
    slot = SubmittedLines.SLOT
    try:
        with mmap.mmap(fd, 3 * slot.size, access=mmap.ACCESS_READ) as shared:
            if slot.unpack_from(shared, SubmittedLines.HANDED_OVER * slot.size)[0]:
                return 0
            submitted = [slot.unpack_from(shared, kind * slot.size)[0] for kind in (KIND_C2S, KIND_S2C)]
    except (OSError, ValueError):
        return 0
    return sum(max(0, sent - got) for sent, got in zip(submitted, received, strict=True))


END = object()
"""Last item of a :class:`Handover`: ``(END, exit status)``."""


class Handover:
    """What ``km monitor``'s forwarding threads hand to the thread that sends it on (the agent's
    link): ``(kind, data, ts_ns)`` chunks in order, a wake-up, and the shared count of what was
    handed over. Made before the server starts, so that forwarding never waits for the link's
    imports (agent/link.py, the settings)."""

    def __init__(self) -> None:
        self.items: collections.deque[tuple[object, ...]] = collections.deque()
        self.wake = threading.Event()
        self.lines: SubmittedLines | None = None
        if os.name == "posix":  # (passed to the agent with SCM_RIGHTS)
            with contextlib.suppress(OSError):
                self.lines = SubmittedLines()

    def submit(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        kind = KINDS[direction]
        self.items.append((kind, data, ts_ns))
        if self.lines is not None:  # one forwarding thread per direction: no lock needed
            self.lines.add(kind, data)
        if not self.wake.is_set():  # only the first chunk of a batch window wakes the link
            self.wake.set()

    def submit_message(
        self, direction: Direction, message: bytes, ts_ns: int, headers: Mapping[str, str] | None = None
    ) -> None:
        """One already-framed message (the HTTP transports), with the request's ``Mcp-*`` headers."""
        self.submit_frame(MESSAGE_KINDS[direction], pack_message(message, headers), ts_ns)

    def submit_omitted(self, direction: Direction, size_bytes: int, ts_ns: int) -> None:
        """A message too large to decode and keep (it was forwarded): recorded as a marker."""
        self.submit_frame(KIND_OMITTED, b"%d %d" % (KINDS[direction], size_bytes), ts_ns)

    def update_session(self, details: dict[str, object], ts_ns: int) -> None:
        """New details of the session (see SESSION_DETAILS), in order with its traffic."""
        import json

        self.submit_frame(KIND_SESSION, json.dumps(details).encode(), ts_ns)

    def submit_frame(self, kind: int, data: bytes, ts_ns: int) -> None:
        """Any traffic frame (callers that submit from more than one thread hold a lock)."""
        self.items.append((kind, data, ts_ns))
        if self.lines is not None:
            self.lines.count(direction_of(kind, data), messages_in(kind, data))
        if not self.wake.is_set():
            self.wake.set()

    def sync(self, number: int) -> None:
        """Ask the recorder, after what was handed over so far, which tools changed (KIND_SYNC)."""
        self.items.append((KIND_SYNC, b"", number))
        self.wake.set()

    def end(self, exit_code: int | None) -> None:
        self.items.append((END, exit_code))
        self.wake.set()

    def close(self) -> None:
        """Let go of the shared count once the session is recorded (the sender's side)."""
        if self.lines is not None:
            self.lines.close()
