"""Writing to a file descriptor without losing a byte, shared by the stdio relay and the
recorder child."""

from __future__ import annotations

import os


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``: ``os.write`` may write less than it was given (pipes)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
