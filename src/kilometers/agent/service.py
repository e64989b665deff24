"""The agent: one recorder per user and data directory, for every ``km monitor`` of that user.

It runs one :class:`~kilometers.host.Host` (one store writer, one uploader, one OpenTelemetry
exporter, one Prometheus endpoint, the plugins, the analysis) and listens on a Unix socket that
only its user can reach. Each connection is one session: the relay's chunks go to the session's
recorder, and the agent acknowledges them once they are in the store, so that a relay whose
agent dies re-sends exactly what was not stored (see :mod:`kilometers.agent.link`).

It exits when no session has been open for ``agent_idle`` seconds, or on ``km agent stop``.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import logging
import os
import pickle
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..config import Settings
from ..frames import (
    FRAME,
    KIND_END,
    KIND_INIT,
    KIND_SYNC,
    RECORDED,
    direction_of,
    messages_in,
    never_received,
)
from ..host import Host, SessionHandle
from ..log import LOGGER, once
from .wire import (
    KIND_ACK,
    KIND_BYE,
    KIND_HELLO,
    KIND_SAY,
    KIND_SYNCED,
    VERSION,
    Hello,
    host_key,
    otel_environment,
    recv_exactly,
    session_from_info,
    socket_path,
    state_path,
    transport,
)

_log = logging.getLogger(__name__)

READ_SIZE = 1 << 18
CLOSE_TIMEOUT = 60.0
TOKEN_TIMEOUT = 5.0
"""Seconds a loopback connection gets to send the token."""


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    served: int = 0
    refused: int = 0


class Agent:
    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        agent: str,
        listener: socket.socket,
        lock: IO[bytes] | None = None,
        token: bytes | None = None,
    ) -> None:
        """``agent``: its id (agent_id of its settings); ``lock``: the agent lock this process
        holds (released as soon as it stops listening); ``token``: what a loopback connection
        must send first (None: a Unix socket, whose peer must be this user)."""
        self.settings = settings
        self.token = token
        self.agent = agent
        self.lock = lock
        self.data_dir = data_dir
        self.listener = listener
        self.key = host_key(settings, otel_environment())
        self.endpoint = socket_path(data_dir, agent, transport(settings))
        """Its socket, or its address file (loopback)."""
        self.host = Host(settings, metrics_port=settings.metrics_port)
        self.stats = Stats()
        self._sessions: dict[str, SessionHandle] = {}
        self._lock = threading.Lock()
        self._last_active = time.monotonic()
        self._stopping = threading.Event()
        self.standing: list[str] = []
        """Warnings of the host's start-up, said to every km monitor."""
        self._relays: dict[str, tuple[Callable[[int, int, bytes], None], set[str]]] = {}
        """Open sessions' connections: a locked send each (acks, the agent's warnings, BYE), and
        the warnings said to it."""
        relays = Relays(self)
        logging.getLogger(LOGGER).addHandler(relays)

    def broadcast(self, line: str, key: str | None = None) -> None:
        """A warning of the agent's to every connected ``km monitor``'s stderr (the client's log),
        each ``key`` once per ``km monitor``."""
        key = key or line
        with self._lock:
            relays = [(send, said) for send, said in self._relays.values() if key not in said]
            for _, said in relays:
                said.add(key)
        for send, _ in relays:
            send(KIND_SAY, 0, line.encode())

    @contextlib.contextmanager
    def _capture(self) -> Iterator[list[str]]:
        said: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                said.append(record.getMessage())

        handler = Keep(logging.WARNING)
        logger = logging.getLogger(LOGGER)
        logger.addHandler(handler)
        try:
            yield said
        finally:
            logger.removeHandler(handler)

    def stop(self) -> None:
        """End at the next turn of the accept loop (signal handlers, ``km agent stop``)."""
        self._stopping.set()

    # -- the main thread ---------------------------------------------------------------------------

    def serve(self) -> None:
        # what the host says at start-up (an exporter that is off, the analysis off) stands for
        # its whole life: every km monitor that connects is told, as it would tell itself
        from ..store.db import upgrade_apart

        # after `ready`, as the host's own opening was: relays wait for their HELLO meanwhile
        upgrade_apart(self.settings.db_url)  # Alembic never loads in the long-lived agent
        with self._capture() as said:
            self.host.start()
        self.standing = said
        if self.host.store_error is not None:
            _log.warning(f"km agent: cannot open the store ({self.host.store_error}); will retry")
        self.listener.settimeout(0.25)
        idle = self.settings.agent_idle
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    with self._lock:
                        quiet = not self._sessions and time.monotonic() - self._last_active > idle
                    if quiet:
                        break
                    continue
                conn.settimeout(None)
                with self._lock:
                    self._last_active = time.monotonic()
                threading.Thread(target=self._connection, args=(conn,), daemon=True).start()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        """No new sessions (the socket and the state file go first, then the lock: a km monitor
        starting now starts the next agent at once), then end those still open and close the
        sinks (their km monitors record by themselves from there)."""
        with contextlib.suppress(OSError):
            os.unlink(self.endpoint)
        self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(state_path(self.data_dir, self.agent))
        if self.lock is not None:
            self.lock.close()
        self.host.close(CLOSE_TIMEOUT)

    # -- one connection ------------------------------------------------------------------------------

    def _connection(self, conn: socket.socket) -> None:
        reader: FrameReader | None = None
        with conn:
            try:
                if not (self._token_given(conn) if self.token is not None else _same_user(conn)):
                    return
                reader = FrameReader(conn)
                first = reader.next_frame()
                if first is None or first[0] != KIND_INIT:
                    return
                hello = pickle.loads(first[2])
                if not isinstance(hello, Hello):
                    return
                if hello.op == "record":
                    self._record(conn, reader, hello)
                else:
                    _send(conn, KIND_HELLO, 0, json.dumps(self._control(hello)).encode())
            except (OSError, EOFError, pickle.UnpicklingError, struct.error, ValueError) as exc:
                _log.debug(f"km agent: connection ended ({exc!r})")
            finally:
                for fd in reader.fds if reader is not None else ():
                    with contextlib.suppress(OSError):
                        os.close(fd)

    def _token_given(self, conn: socket.socket) -> bool:
        """A loopback connection's first bytes are the token (anyone on this machine can connect:
        nothing of theirs is read, let alone unpickled, before it)."""
        assert self.token is not None
        conn.settimeout(TOKEN_TIMEOUT)
        got = recv_exactly(conn, len(self.token))
        if got is None:
            return False
        conn.settimeout(None)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hmac.compare_digest(got, self.token):
            return True
        self.stats.refused += 1
        _log.warning("km agent: refused a loopback connection without the token", extra=once("token"))
        return False

    def _control(self, hello: Hello) -> dict[str, Any]:
        if hello.op == "stop":
            self._stopping.set()
            return {"ok": True, "version": VERSION, "pid": os.getpid()}
        return {"ok": True, **self.status()}

    def status(self) -> dict[str, Any]:
        with self._lock:
            sessions = [
                {"id": h.session.id, "name": h.session.name, "pid": h.session.pid}
                for h in self._sessions.values()
            ]
        return {
            "pid": os.getpid(),
            "version": VERSION,
            "id": self.agent,
            "socket": str(self.endpoint),
            "data_dir": str(self.data_dir),
            "uptime_s": round(time.time() - self.stats.started, 1),
            "sessions": sessions,
            "served": self.stats.served,
            "refused": self.stats.refused,
            "idle_s": self.settings.agent_idle,
            "metrics_port": self.settings.metrics_port,
            "store": str(self.settings.db_url or "default"),
            "store_error": self._store_error(),
        }

    def _store_error(self) -> str | None:
        """Why the store could not be opened at start-up (the sink retries), for ``km proxy``."""
        if self.host.store_error is None:
            return None
        from ..store.db import error_text

        return error_text(self.host.store_error, self.settings.db_url)

    def _refuse(self, conn: socket.socket, reason: str) -> None:
        self.stats.refused += 1
        _send(conn, KIND_HELLO, 0, json.dumps({"ok": False, "version": VERSION, "reason": reason}).encode())

    def _record(self, conn: socket.socket, reader: FrameReader, hello: Hello) -> None:
        if hello.version != VERSION:
            return self._refuse(conn, f"km {VERSION} agent, km {hello.version} relay")
        settings = hello.settings
        if not isinstance(settings, Settings) or host_key(settings, hello.otel_env) != self.key:
            return self._refuse(conn, "other store, upload, policy, export or metrics settings")
        if self._stopping.is_set():
            return self._refuse(conn, "the agent is stopping")
        session = session_from_info(hello.session)
        try:
            handle = self.host.open_session(session, settings=settings, start=False)
        except RuntimeError:  # the host closed meanwhile
            return self._refuse(conn, "the agent is stopping")
        lock = threading.Lock()

        def send(kind: int, n: int, data: bytes) -> None:
            with lock, contextlib.suppress(OSError):
                _send(conn, kind, n, data)

        reply = {"ok": True, "version": VERSION, "session_id": session.id, "started_ns": session.started_ns}
        send(KIND_HELLO, 0, json.dumps(reply).encode())
        for line in self.standing:
            send(KIND_SAY, 0, line.encode())
        with self._lock:
            self._sessions[session.id] = handle
            self._relays[session.id] = (send, set(self.standing))
            self.stats.served += 1
        handle.start()
        exit_code: int | None = None
        ended = False
        received = [0, 0]
        try:
            exit_code, ended = self._pump(reader, handle, send, received)
            if not ended:  # the relay died: what it had not sent on yet is counted, not lost
                lost = never_received(reader.fds[0] if reader.fds else None, received)
                if lost:
                    handle.session.dropped_events += lost
                    _log.info(f"km agent: session {session.id} ended before handing over {lost} messages")
        finally:
            # the relay's own end, or the relay went away: what arrived is recorded either way
            handle.close(exit_code, CLOSE_TIMEOUT)
            with self._lock:
                self._sessions.pop(session.id, None)
                self._relays.pop(session.id, None)
                self._last_active = time.monotonic()
        if ended:
            send(KIND_BYE, 0, b"")
        return None

    def _pump(
        self,
        reader: FrameReader,
        handle: SessionHandle,
        send: Callable[[int, int, bytes], None],
        received: list[int],
    ) -> tuple[int | None, bool]:
        """Traffic frames (chunks, whole messages, session details) to the session's recorder
        until the relay's END (or its end), acknowledged once they are in the store: one
        checkpoint per read from the socket. ``received``: the messages received per direction
        (a chunk's newlines, one per whole message), counted here. A blocking policy's KIND_SYNC
        is answered once what came before it is processed: with the tools changed since pinned."""
        submit, checkpoint = handle.submit_frame, handle.recorder.checkpoint
        seq = 0

        def ack(n: int) -> None:
            send(KIND_ACK, n, b"")

        def synced(n: int) -> None:
            send(KIND_SYNCED, n, json.dumps(sorted(handle.tools_changed_now())).encode())

        while True:
            frames = reader.burst()
            if frames is None:
                return None, False
            before = seq
            for kind, ts, data in frames:
                if kind == KIND_END:
                    return (int(data) if data else None), True
                if kind in RECORDED:
                    seq += 1
                    received[direction_of(kind, data)] += messages_in(kind, data)
                    submit(kind, data, ts)
                elif kind == KIND_SYNC:
                    checkpoint(functools.partial(synced, ts))
            if seq != before:
                checkpoint(functools.partial(ack, seq))


class Relays(logging.Handler):
    """The agent's warnings go to the connected relays too (each once per relay): a store that
    cannot be written must show in the client's log, as it would without the agent."""

    def __init__(self, agent: Agent) -> None:
        super().__init__(logging.WARNING)
        self.agent = agent

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.agent.broadcast(record.getMessage(), getattr(record, "once", None))
        except Exception:
            self.handleError(record)


class FrameReader:
    """Frames from a socket, as many as each read completes."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buf = bytearray()
        self.pending: list[tuple[int, int, bytes]] = []
        self.fds: list[int] = []
        """Descriptors passed with the first frame (the relay's count of what it handed over)."""
        self._first = hasattr(socket, "recv_fds")

    def burst(self) -> list[tuple[int, int, bytes]] | None:
        """The frames completed by one read (maybe none); None at the end of the stream."""
        if self.pending:
            frames, self.pending = self.pending, []
            return frames
        if self._first:  # the relay passes its descriptor with its first bytes
            self._first = False
            chunk, self.fds, _, _ = socket.recv_fds(self.conn, READ_SIZE, 1)
        else:
            chunk = self.conn.recv(READ_SIZE)
        if not chunk:
            return None
        buf = self.buf
        buf += chunk
        frames = []
        pos, size, end = 0, FRAME.size, len(buf)
        while end - pos >= size:
            kind, n, length = FRAME.unpack_from(buf, pos)
            if end - pos - size < length:
                break
            frames.append((kind, n, bytes(buf[pos + size : pos + size + length])))
            pos += size + length
        del buf[:pos]
        return frames

    def next_frame(self) -> tuple[int, int, bytes] | None:
        """One frame (a connection's first); those read with it are kept for :meth:`burst`."""
        while True:
            frames = self.burst()
            if frames is None:
                return None
            if frames:
                self.pending = frames[1:]
                return frames[0]


def _send(conn: socket.socket, kind: int, n: int, data: bytes) -> None:
    conn.sendall(FRAME.pack(kind, n, len(data)) + data)


def _same_user(conn: socket.socket) -> bool:
    """The peer runs as this user (Linux: SO_PEERCRED; elsewhere the socket's 0600 mode decides)."""
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None or not hasattr(os, "getuid"):
        return True
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i"))
    except OSError:
        return True
    _, uid, _ = struct.unpack("3i", creds)
    return bool(uid == os.getuid())
