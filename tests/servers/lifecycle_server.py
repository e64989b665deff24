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
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType


def notify(method: str, **params: object) -> None:
    line = json.dumps({"jsonrpc": "2.0", "method": method, "params": params}) + "\n"
    os.write(1, line.encode())


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

    for line in sys.stdin.buffer:
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
