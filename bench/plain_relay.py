"""A plain stdio relay for benchmarks: ``plain_relay.py CMD ARGS...``.

Spawns CMD and copies bytes both ways with two threads doing blocking ``os.read`` /
``os.write``, the same shape as km's forwarding path but with no capture at all. The
benchmark runs it as a third column so that km's cost can be split into "a Python relay
process in between" and "what km's capture adds on top of that".
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading


def pump(src: int, dst: int, on_eof: subprocess.Popen[bytes] | None = None) -> None:
    read, write = os.read, os.write
    while True:
        try:
            data = read(src, 1 << 16)
        except OSError:
            break
        if not data:
            break
        view = memoryview(data)
        try:
            while view:
                view = view[write(dst, view) :]
        except OSError:
            break
    if on_eof is not None and on_eof.stdin is not None:
        on_eof.stdin.close()


def main() -> int:
    proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    threads = [
        threading.Thread(target=pump, args=(sys.stdin.fileno(), proc.stdin.fileno(), proc), daemon=True),
        threading.Thread(target=pump, args=(proc.stdout.fileno(), sys.stdout.fileno()), daemon=True),
    ]
    for thread in threads:
        thread.start()
    code = proc.wait()
    threads[1].join(2.0)
    return code


if __name__ == "__main__":
    sys.exit(main())
