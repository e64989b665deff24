"""The frames ``km monitor`` hands its chunks over in, to its recorder process or to the agent:
``<kind:u8><n:i64><length:u32><data>``. Lean on purpose: the relay imports it before it
forwards its first byte."""

from __future__ import annotations

import struct

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
        import os

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
