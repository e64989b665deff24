"""Starting the agent process: one per data directory, whoever starts it.

``python -m kilometers.agent`` (what ``km monitor`` runs, with its settings pickled on stdin)
and ``km agent run`` (in the foreground) both come here. The agent takes an exclusive lock on
``agent.lock`` before anything else: of several started at once, one wins and the others exit
with status 0 at once; the winner replaces a stale socket file and listens.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import stat
import time
from pathlib import Path
from typing import IO

from ..config import Settings
from ..paths import data_dir as default_data_dir
from .wire import (
    TOKEN_SIZE,
    VERSION,
    agent_dir,
    agent_id,
    lock_path,
    otel_environment,
    say,
    socket_path,
    state_path,
    take_lock,
    transport,
)

_log = logging.getLogger("kilometers.agent")

LOST_RACE = 0
"""Exit status of an agent that found another one holding the lock."""
CANNOT_LISTEN = 3
NICENESS = 10


def _private_socket_dir(path: Path) -> None:
    """The socket's directory: created 0700; one that exists must be this user's and private."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)


def listen(path: Path, kind: str = "unix") -> tuple[socket.socket, bytes | None]:
    """The agent's listening socket, and the token a loopback one requires of every connection."""
    if kind == "tcp":
        return listen_loopback(path)
    return listen_unix(path), None


def listen_loopback(path: Path) -> tuple[socket.socket, bytes]:
    """Loopback TCP on a port the system picks, and a fresh secret: both written to ``path``
    (0600, replaced whole), so that only this user's relays can find and open the agent."""
    _private_socket_dir(path.parent)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    token = os.urandom(TOKEN_SIZE)
    temporary = path.with_name(f"{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(f"{sock.getsockname()[1]} {token.hex()}\n")
    os.replace(temporary, path)
    return sock, token


def listen_unix(path: Path) -> socket.socket:
    _private_socket_dir(path.parent)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: whoever made it is gone (we hold the lock)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old)
    path.chmod(0o600)
    sock.listen(128)
    return sock


def batch_scheduling() -> None:
    """Linux: SCHED_BATCH for this thread and those it starts: when its batch window ends, the
    agent does not preempt a forwarding relay, client or server that is running (it still gets
    its fair share: nothing starves)."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is not None and hasattr(os, "sched_setscheduler"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, policy, os.sched_param(0))


def run(
    settings: Settings | None = None,
    data_dir: Path | None = None,
    status_fd: int | None = None,
    held: IO[bytes] | None = None,
    agent: str | None = None,
) -> int:
    """Be the agent of ``data_dir`` for these settings until idle or stopped; ``settings``:
    resolved here when None; ``held``: the agent's lock, when the caller took it already;
    ``agent``: its id, when the caller worked it out already."""
    home = data_dir or default_data_dir()
    if settings is None:
        from .. import config

        settings = config.load_lenient({})[0]
    agent = agent or agent_id(settings, otel_environment())
    try:
        agent_dir(home).mkdir(parents=True, exist_ok=True, mode=0o700)
        held = held or take_lock(lock_path(home, agent))
    except OSError as exc:
        _log.error(f"km agent: cannot use {agent_dir(home)}: {exc}")
        say(status_fd, f"cannot use {agent_dir(home)}: {exc.strerror or exc}")
        return CANNOT_LISTEN
    if held is None:
        say(status_fd, "another")
        return LOST_RACE
    kind = transport(settings)
    path = socket_path(home, agent, kind)
    try:
        listener, token = listen(path, kind)
    except OSError as exc:
        _log.error(f"km agent: cannot listen on {path}: {exc}")
        say(status_fd, f"cannot listen on {path}: {exc.strerror or exc}")
        return CANNOT_LISTEN
    state = {
        "pid": os.getpid(),
        "version": VERSION,
        "id": agent,
        "socket": os.fspath(path),
        "started": time.time(),
    }
    with contextlib.suppress(OSError):  # its owner's only, as everything in the data directory
        fd = os.open(state_path(home, agent), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as state_file:
            state_file.write(json.dumps(state))
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # recording can wait, traffic cannot
            os.nice(NICENESS)
    batch_scheduling()
    from .service import Agent

    service = Agent(settings, home, agent, listener, held, token)
    for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, lambda *_: service.stop())
    _log.info(f"km agent {VERSION} ({agent}): pid {os.getpid()}, listening on {path}")
    say(status_fd, "ready")
    try:
        service.serve()
    finally:
        held.close()
    return 0
