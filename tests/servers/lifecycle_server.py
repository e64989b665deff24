"""A scriptable stdio "server" for process-lifecycle tests (no MCP logic).

It announces itself with one JSON-RPC notification on stdout,
``{"jsonrpc": "2.0", "method": "test/ready", "params": {"pid": ..., "grandchild": ...}}``,
unless ``--silent``; then reads stdin line by line:

- a line ``exit`` makes it exit with ``--exit-code``;
- at EOF it writes a ``test/eof`` notification and exits with ``--exit-code``, or with
  ``--on-eof ignore`` keeps running (a server that ignores its stdin closing).

Other options: ``--exit-after S`` exits S seconds after starting, whatever stdin does;
``--sigterm trap`` writes a ``test/sigterm`` notification and exits 0 on SIGTERM,
``--sigterm ignore`` ignores it; ``--grandchild`` starts a long-sleeping child process
(it inherits stdin/stdout/stderr, like a server's helper processes would).

Stdin is read with ``select`` on stdin and a signal wakeup pipe, never with a bare blocking
``read``: Python runs a signal handler only between bytecodes, so a SIGTERM landing just before
a blocking ``read`` starts would wait for the next input line (a test sending SIGTERM right
after ``test/ready`` then saw the trapping server SIGKILLed by km after the grace period).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType


def notify(method: str, **params: object) -> None:
    line = json.dumps({"jsonrpc": "2.0", "method": method, "params": params}) + "\n"
    os.write(1, line.encode())


def stdin_lines() -> Iterator[bytes]:
    """Stdin's lines, waking up for signals: the wakeup pipe makes ``select`` return as soon as
    one arrives, and the handler then runs before the next read."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    pending = b""
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 512)  # the handler runs at the next bytecode
        if 0 not in ready:
            continue
        data = os.read(0, 65536)
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        yield from (line + b"\n" for line in lines)
    if pending:
        yield pending


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--exit-after", type=float)
    parser.add_argument("--on-eof", choices=["exit", "ignore"], default="exit")
    parser.add_argument("--sigterm", choices=["default", "trap", "ignore"], default="default")
    parser.add_argument("--grandchild", action="store_true")
    parser.add_argument("--silent", action="store_true")
    parser.add_argument("--stderr", default="lifecycle server: hello on stderr")
    args = parser.parse_args()

    # whatever the test runner ignored, this server dies of signals like a normal program
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    if args.sigterm == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.sigterm == "trap":

        def on_term(_signum: int, _frame: FrameType | None) -> None:
            notify("test/sigterm")
            os._exit(0)

        signal.signal(signal.SIGTERM, on_term)

    print(args.stderr, file=sys.stderr, flush=True)
    grandchild = None
    if args.grandchild:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        grandchild = child.pid
    if args.exit_after is not None:
        timer = threading.Timer(args.exit_after, os._exit, (args.exit_code,))
        timer.daemon = True
        timer.start()
    if not args.silent:
        notify("test/ready", pid=os.getpid(), grandchild=grandchild)

    for line in stdin_lines():
        if line.strip() == b"exit":
            os._exit(args.exit_code)
    if not args.silent:
        notify("test/eof")
    if args.on_eof == "ignore":
        while True:
            time.sleep(3600)
    os._exit(args.exit_code)


if __name__ == "__main__":
    main()
