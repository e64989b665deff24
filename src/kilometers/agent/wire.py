"""What ``km monitor`` and the agent say to each other, and where the agent lives.

Lean on purpose: ``km monitor``'s relay imports this before it forwards its first byte.

Frames both ways are ``<kind:u8><n:i64><length:u32><data>``, as to the recorder child
(:mod:`kilometers.recorder_process`):

- relay → agent: ``INIT`` (pickled :class:`Hello`), then chunks (``C2S``/``S2C``, ``n`` = the
  time they were read, in ns; each holds whole lines only), then ``END`` (data: the exit status
  in decimal, or empty);
- agent → relay: ``HELLO`` (JSON: ``ok``, ``version``, ``session_id``, ``reason``), ``ACK``
  (``n`` = how many chunks have reached the store), ``SAY`` (a line for km's stderr: the agent's
  warnings, such as a store it cannot write), ``BYE`` (the session is ended and stored).

A control client (``km agent status|stop``) sends an ``INIT`` whose :class:`Hello` has an
``op`` and gets one ``HELLO`` back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    import socket

    from ..model import Session

PROTOCOL = 2
VERSION = f"{__version__}/{PROTOCOL}"
"""Relay and agent work together only when both say the same."""

KIND_HELLO, KIND_ACK, KIND_BYE, KIND_SAY, KIND_SYNCED = 4, 5, 6, 7, 8
"""The agent's frames to a relay: its answer to the first frame (JSON), the number of the last
traffic frame in the store, the end of the session recorded, a warning for the client's log, the
answer to a KIND_SYNC (``n``: its number; data: the changed tools, a JSON list)."""

SUN_PATH_MAX = 100
"""Bytes a Unix socket's path may have (107 on Linux, 103 on macOS; kept below both)."""
ADDRESS_SUFFIX = ".addr"
"""A loopback agent's address file (``<port> <token in hex>``): what stands for its socket."""
TOKEN_SIZE = 32
"""Bytes of the secret a relay sends first on a loopback connection (nothing else is read before)."""


class Hello:
    """The relay's first frame (pickled): who it is and what it records.

    - ``op``: ``record`` a session, or a control request: ``status``, ``stop``;
    - ``settings``: the relay's resolved :class:`~kilometers.config.Settings`;
    - ``session``: the session's ``command``, ``cwd``, ``name``, ``pid`` (the agent gives it an id);
    - ``otel_env``: the relay's ``OTEL_*`` variables (they configure the exporter, so they must
      match the agent's)."""

    def __init__(
        self,
        version: str,
        op: str = "record",
        settings: Any = None,
        session: dict[str, Any] | None = None,
        otel_env: dict[str, str] | None = None,
    ) -> None:
        self.version = version
        self.op = op
        self.settings = settings
        self.session = session or {}
        self.otel_env = otel_env or {}


HOST_FIELDS = (
    "db_url", "api_url", "api_key", "upload_batch_size", "upload_interval", "policy",
    "policy_on_error", "analysis", "redact_pii", "otel", "otel_payloads", "otel_legacy_names",
    "metrics_port",
)  # fmt: skip
"""Settings of an agent's host, shared by its sessions. ``km monitor``s whose differ use another
agent of the same data directory (the others, such as the filters, are each session's own)."""


def host_key(settings: Any, otel_env: dict[str, str]) -> tuple[Any, ...]:
    values = tuple(repr(getattr(settings, name)) for name in HOST_FIELDS)
    return (*values, tuple(sorted(otel_env.items())) if settings.otel else (), transport(settings))


def transport(settings: Any) -> str:
    """``unix`` or ``tcp``: the setting, where ``auto`` is unix if the system has Unix sockets
    (Windows' Python has none)."""
    chosen = str(getattr(settings, "agent_transport", "auto"))
    if chosen != "auto":
        return chosen
    import socket

    return "unix" if hasattr(socket, "AF_UNIX") else "tcp"


def otel_environment() -> dict[str, str]:
    """The ``OTEL_*`` variables: they configure the exporter, so they are part of the host."""
    return {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}


def agent_id(settings: Any, otel_env: dict[str, str]) -> str:
    """The name of the agent for these host settings and this km version (``km monitor``s that
    share them share it; after an upgrade, a new agent starts beside the old one, which idles out)."""
    return _digest(repr((VERSION, host_key(settings, otel_env))).encode())


def _digest(data: bytes) -> str:
    """A short stable name for ``data`` (64 bits; zlib's checksums, not hashlib: loading OpenSSL
    would cost every km monitor 3 MiB; a collision only makes an agent refuse a session)."""
    import zlib

    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def agent_dir(data_dir: Path) -> Path:
    return data_dir / "agent"


def socket_path(data_dir: Path, agent: str, kind: str = "unix") -> Path:
    """Where the agent listens. ``tcp``: its address file, in the data directory. ``unix``: its
    socket, in the data directory, or (a path too long for a socket) in a private directory
    under $XDG_RUNTIME_DIR or the temp dir, named by a hash of the data directory."""
    if kind == "tcp":
        return agent_dir(data_dir) / f"{agent}{ADDRESS_SUFFIX}"
    path = agent_dir(data_dir) / f"{agent}.sock"
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        return path
    import tempfile

    digest = _digest(os.fsencode(data_dir))
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(base) / f"km-{uid}-{digest}" / f"{agent}.sock"


def lock_path(data_dir: Path, agent: str) -> Path:
    return agent_dir(data_dir) / f"{agent}.lock"


def state_path(data_dir: Path, agent: str) -> Path:
    return agent_dir(data_dir) / f"{agent}.json"


LOCK_HELD: type[OSError] = OSError if os.name == "nt" else BlockingIOError
"""What taking a held lock raises (Windows' msvcrt: EDEADLOCK or EACCES; flock: EWOULDBLOCK)."""


def take_lock(path: Path) -> IO[bytes] | None:
    """The agent's exclusive lock (0600), or None when another agent holds it; held as long as
    the returned file stays open (``flock``; on Windows, a lock on its first byte)."""
    handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except LOCK_HELD:
        handle.close()
        return None
    return handle


def recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    """``n`` bytes from ``sock``, or None when its stream ends first."""
    parts: list[bytes] = []
    while n:
        part = sock.recv(n)
        if not part:
            return None
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def say(status_fd: int | None, line: str) -> None:
    """One line to whoever started this agent (agent/link.py reads it), then the pipe closes.
    When it is the agent's stdout (started without ``fork``), stdout becomes the log (stderr)."""
    if status_fd is None:
        return
    try:
        os.write(status_fd, line.encode() + b"\n")
        if status_fd == 1:
            os.dup2(2, 1)  # (never a free descriptor 1, that the store's file could take)
        else:
            os.close(status_fd)
    except OSError:
        pass


def log_path(data_dir: Path) -> Path:
    return agent_dir(data_dir) / "agent.log"


def running(data_dir: Path) -> list[dict[str, Any]]:
    """The state files of the agents that said they run (pid, version, socket, id); an agent
    removes its own when it stops (a stale one, of an agent killed, leads to a dead socket)."""
    import json

    states = []
    for path in sorted(agent_dir(data_dir).glob("*.json")):
        try:
            states.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return states


def session_from_info(info: dict[str, Any]) -> Session:
    """The session a relay describes in its HELLO (``command``, ``cwd``, ``name``, ``pid``; ``km
    proxy``'s also ``id``, ``transport``, ``started_ns`` and ``server_side``)."""
    from ..model import Session

    session = Session(
        command=list(info.get("command", [])),
        cwd=str(info.get("cwd", "")),
        name=info.get("name"),
        pid=info.get("pid"),
        transport=str(info.get("transport") or "stdio"),
    )
    if isinstance(info.get("id"), str):  # km proxy's: the id its own host would have used
        session.id = info["id"]
    if isinstance(info.get("started_ns"), int):
        session.started_ns = info["started_ns"]
    session.server_side = bool(info.get("server_side"))
    return session
