"""The frames ``km monitor`` hands its chunks over in, to its recorder process or to the agent:
``<kind:u8><n:i64><length:u32><data>``. Lean on purpose: the relay imports it before it
forwards its first byte."""

from __future__ import annotations

import collections
import contextlib
import os
import struct
import threading

from .directions import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Direction

FRAME = struct.Struct("<BqI")
KIND_C2S, KIND_S2C, KIND_END, KIND_INIT = 0, 1, 2, 3
"""Chunks each way (``n``: the time they were read, in ns), the end of the session (data: the
exit status in decimal, or empty) and the first frame (what the receiver needs to record)."""
KINDS: dict[str, int] = {CLIENT_TO_SERVER: KIND_C2S, SERVER_TO_CLIENT: KIND_S2C}
DIRECTIONS: dict[int, Direction] = {KIND_C2S: CLIENT_TO_SERVER, KIND_S2C: SERVER_TO_CLIENT}


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
        count = self.lines[kind] = self.lines[kind] + data.count(b"\n")
        self.SLOT.pack_into(self.map, kind * self.SLOT.size, count)

    def hand_over(self) -> None:
        self.SLOT.pack_into(self.map, self.HANDED_OVER * self.SLOT.size, 1)


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

    def end(self, exit_code: int | None) -> None:
        self.items.append((END, exit_code))
        self.wake.set()
