"""A raw "server" that copies stdin to stdout unchanged and unbuffered, then exits on EOF.

Used to check that km forwards bytes exactly, whatever they are (not necessarily JSON).
"""

from __future__ import annotations

import os


def main() -> None:
    while True:
        data = os.read(0, 1 << 16)
        if not data:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(1, view) :]


if __name__ == "__main__":
    main()
