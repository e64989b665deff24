"""``python -m kilometers.agent STATUS_FD``: the agent, as ``km monitor`` starts it (its settings
pickled on stdin; one line on STATUS_FD says how the start went, see agent/link.py)."""

from __future__ import annotations

import pickle
import sys

from ..log import setup
from .daemon import run

if __name__ == "__main__":
    setup()
    settings = pickle.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    sys.exit(run(settings, status_fd=int(sys.argv[1]) if len(sys.argv) > 1 else None))
