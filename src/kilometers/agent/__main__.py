"""``python -m kilometers.agent STATUS_FD AGENT_ID``: the agent, as ``km monitor`` starts it (its
settings pickled on stdin; one line on STATUS_FD says how the start went, see agent/link.py).

The lock comes first, before the heavy imports: of several agents started at once, the ones
that lose cost a bare interpreter's start."""

from __future__ import annotations

import os
import sys

from ..paths import data_dir
from .wire import agent_dir, lock_path, say, take_lock

if __name__ == "__main__":
    status_fd = int(sys.argv[1])
    agent = sys.argv[2]
    home = data_dir()
    try:
        agent_dir(home).mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = take_lock(lock_path(home, agent))  # held for the agent's life
    except OSError as exc:
        os.write(2, f"km agent: cannot use {agent_dir(home)}: {exc}\n".encode())  # (its log file)
        say(status_fd, f"cannot use {agent_dir(home)}: {exc.strerror or exc}")
        sys.exit(3)
    if lock is None:
        say(status_fd, "another")
        sys.exit(0)
    import pickle

    from ..log import setup
    from .daemon import run

    setup()
    settings = pickle.loads(sys.stdin.buffer.read())
    sys.stdin.close()
    sys.exit(run(settings, home, status_fd=status_fd, held=lock, agent=agent))
