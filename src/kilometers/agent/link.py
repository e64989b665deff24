"""``km monitor``'s side of the agent: hand the session's chunks to the user's agent.

:meth:`AgentLink.submit` is called from the forwarding threads and only appends to a deque.
One thread (``km-link``) does the rest, off the forwarding path:

- it connects to the agent of this data directory, starting it when there is none (concurrent
  first starts race for the agent's lock file: exactly one agent wins, the others exit and every
  relay connects to the winner);
- every batch window it frames the chunks into whole lines per direction, sends them, and keeps
  each frame until the agent acknowledges it (the agent acknowledges once the frame's events are
  in the store);
- when the agent cannot be started or reached, refuses the session (another km version, other
  store or export settings), or dies mid-session, it records by itself instead: the child
  recorder of :mod:`kilometers.recorder_process`, to which it re-sends the frames the agent had
  not acknowledged; the child resumes the agent's session and skips what the agent had stored
  already, so no message is lost or recorded twice.

Forwarding never waits for any of this. Imports stay light (no store, no analysis): they are
what ``km monitor`` pays before its first byte.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..fdio import write_all
from ..frames import END, FRAME, KIND_C2S, KIND_END, KIND_INIT, KIND_S2C, KIND_SYNC, Handover
from .wire import (
    ADDRESS_SUFFIX,
    KIND_ACK,
    KIND_BYE,
    KIND_HELLO,
    KIND_SAY,
    KIND_SYNCED,
    VERSION,
    Hello,
    agent_dir,
    agent_id,
    log_path,
    otel_environment,
    recv_exactly,
    running,
    session_from_info,
    socket_path,
    transport,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..config import Settings
    from ..directions import Direction
    from ..model import Session
    from ..security import Gate, Policy


class Fallback(Protocol):
    """Who records a session the agent cannot (the recorder process for ``km monitor``, the
    process's own host for ``km proxy``): given the traffic frames the agent did not store."""

    def start(self) -> None: ...

    def submit_frame(self, kind: int, data: bytes, ts_ns: int) -> None: ...

    def stop(self, exit_code: int | None, timeout: float | None = None) -> None: ...

    def tools_changed(self) -> frozenset[str]:
        """(a blocking policy's question: see ``SessionHandle.tools_changed``)"""
        ...


def _warn(line: str) -> None:
    """A line on km's stderr, through the CLI's handler (logging is imported only then)."""
    import logging

    from ..log import setup

    setup()
    logging.getLogger("kilometers.agent").warning(line)


BATCH_WINDOW = 0.05
"""Seconds the link gathers chunks after the first one (as the recorders do)."""
START_TIMEOUT = 15.0
"""Seconds a new agent gets to listen on its socket."""
HELLO_TIMEOUT = 30.0
"""Seconds the agent gets to answer a session (its first start opens and migrates the store)."""
BYE_TIMEOUT = 60.0
SYNC_TIMEOUT = 1.0
"""Seconds a blocking policy waits for the agent's changed tools (as for its own recorder's)."""


class AgentUnavailable(Exception):
    """Why this session is not recorded by the agent."""


def connect(path: Path, timeout: float | None = None) -> socket.socket | None:
    """A connection to the agent at ``path`` (its socket, or a loopback agent's address file),
    or None when nobody listens there."""
    if path.name.endswith(ADDRESS_SUFFIX):
        return _connect_loopback(path, timeout)
    if not hasattr(socket, "AF_UNIX"):
        raise OSError("this system has no Unix sockets (agent_transport = 'tcp' works everywhere)")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        sock.close()
        return None
    except OSError:
        sock.close()
        raise
    return sock


def _connect_loopback(path: Path, timeout: float | None) -> socket.socket | None:
    """Loopback: the port and the token from the agent's address file (written whole, this
    user's only); the token goes first."""
    try:
        port, token = path.read_text(encoding="ascii").split()
        address, secret = ("127.0.0.1", int(port)), bytes.fromhex(token)
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None  # (no agent, or not an address km wrote: whoever starts next replaces it)
    try:
        sock = socket.create_connection(address, timeout=timeout)
    except ConnectionRefusedError:
        return None  # (a stale file: its agent is gone)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(secret)
    except OSError:
        sock.close()
        raise
    return sock


def read_frame(sock: socket.socket) -> tuple[int, int, bytes] | None:
    header = recv_exactly(sock, FRAME.size)
    if header is None:
        return None
    kind, n, length = FRAME.unpack(header)
    data = recv_exactly(sock, length) if length else b""
    return None if data is None else (kind, n, data)


def spawn(settings: Settings, data_dir: Path, agent: str) -> Callable[[float], str]:
    """Start an agent for ``data_dir`` in the background; returns what waits (at most the
    seconds given) for the line in which it says how its start went (see :func:`reach`).

    A double fork: the agent is nobody's child (a client that kills its server's process tree
    never reaches it), in a session of its own (nor does a client's Ctrl-C or hang-up), and holds
    none of km's descriptors but the ones given here: the settings on its stdin, its log file as
    stdout and stderr (never km's stdout), the status pipe."""
    if not hasattr(os, "fork"):
        return spawn_process(settings, data_dir, agent)
    log = _open_log(data_dir)
    settings_r, settings_w = os.pipe()
    status_r, status_w = os.pipe()
    argv = [sys.executable, "-m", "kilometers.agent", str(status_w), agent]
    env = {**os.environ, "KM_HOME": os.fspath(data_dir)}
    try:
        pid = os.fork()
        if pid == 0:  # only system calls from here: this process has km's threads' locks
            try:
                os.setsid()
                if os.fork() == 0:
                    os.dup2(settings_r, 0)
                    os.dup2(log, 1)
                    os.dup2(log, 2)
                    os.set_inheritable(status_w, True)
                    os.execve(sys.executable, argv, env)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    finally:
        for fd in (log, settings_r, status_w):
            os.close(fd)
    import pickle

    with contextlib.suppress(OSError):  # an agent that lost the race exits before reading it
        write_all(settings_w, pickle.dumps(settings))
    os.close(settings_w)
    return lambda timeout: _started(status_r, timeout)


def _open_log(data_dir: Path) -> int:
    """The agent's log file (this user's only), its directory made when missing."""
    agent_dir(data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(log_path(data_dir), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def spawn_process(settings: Settings, data_dir: Path, agent: str) -> Callable[[float], str]:
    """Start an agent without ``fork`` (Windows): a process detached from km's console and in a
    process group of its own (out of the client's job when the job allows it), with the settings
    on its stdin and its log file as stderr; it says how its start went on its stdout."""
    import pickle
    import subprocess

    argv = [sys.executable, "-m", "kilometers.agent", "1", agent]
    env = {**os.environ, "KM_HOME": os.fspath(data_dir)}
    flags = [0]
    if os.name == "nt":
        detached = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        flags = [detached | subprocess.CREATE_BREAKAWAY_FROM_JOB, detached]  # type: ignore[attr-defined]
    with os.fdopen(_open_log(data_dir), "ab") as log:
        for i, creationflags in enumerate(flags):
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                    creationflags=creationflags, start_new_session=os.name == "posix",
                )  # fmt: skip
                break
            except PermissionError:  # a job that forbids breakaway
                if i == len(flags) - 1:
                    raise
    assert proc.stdin is not None and proc.stdout is not None
    with contextlib.suppress(OSError):  # an agent that lost the race exits before reading it
        proc.stdin.write(pickle.dumps(settings))
    with contextlib.suppress(OSError):
        proc.stdin.close()
    said: list[bytes] = []
    reader = threading.Thread(target=lambda: said.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()

    def started(timeout: float) -> str:
        reader.join(timeout)
        if reader.is_alive():
            return f"it did not start within {timeout:g} s"
        proc.stdout.close()  # type: ignore[union-attr]
        text = said[0].decode(errors="replace").strip()
        if text != "ready":  # it exits: another agent won, or it could not start
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        return text or "it exited at once"

    return started


def _started(status: int, timeout: float) -> str:
    """What a new agent said on its status pipe: ``ready``, ``another`` (an agent started by
    someone else is starting), or why it could not start."""
    import select

    parts: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([status], [], [], left)[0]:
                return f"it did not start within {timeout:g} s"
            part = os.read(status, 4096)
            if not part:
                text = b"".join(parts).decode(errors="replace").strip()
                return text or "it exited at once"
            parts.append(part)
            if b"\n" in part:
                return b"".join(parts).decode(errors="replace").strip()
    finally:
        os.close(status)


def reach(settings: Settings, data_dir: Path, start: bool = True) -> socket.socket:
    """A connection to the data directory's agent for these settings, started when there is none."""
    agent = agent_id(settings, otel_environment())
    path = socket_path(data_dir, agent, transport(settings))
    try:
        sock = connect(path)
    except OSError as exc:
        raise AgentUnavailable(f"cannot reach the agent at {path} ({exc.strerror or exc})") from None
    if sock is not None:
        return sock
    if not start:
        raise AgentUnavailable("no agent runs")
    try:
        said = spawn(settings, data_dir, agent)(START_TIMEOUT)
    except OSError as exc:
        raise AgentUnavailable(f"cannot start the agent ({exc.strerror or exc})") from None
    except Exception as exc:  # (subprocess's own errors, where there is no fork)
        raise AgentUnavailable(f"cannot start the agent ({exc!r})") from None
    if said not in ("ready", "another"):
        raise AgentUnavailable(f"the agent could not start: {said} (see {log_path(data_dir)})")
    deadline = time.monotonic() + START_TIMEOUT
    while True:  # ("another": the winner of a concurrent start may not listen yet)
        with contextlib.suppress(OSError):
            sock = connect(path)
        if sock is not None:
            return sock
        if time.monotonic() > deadline:
            raise AgentUnavailable(f"the agent did not start within {START_TIMEOUT:g} s")
        time.sleep(0.01)


def request(path: Path, op: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """A control request (``status``, ``stop``) to the agent listening at ``path``; None when
    none does."""
    try:
        sock = connect(path, timeout)
    except OSError:
        return None
    if sock is None:
        return None
    with sock:
        return _ask(sock, op)


def _ask(sock: socket.socket, op: str) -> dict[str, Any] | None:
    import json
    import pickle

    data = pickle.dumps(Hello(VERSION, op=op))
    try:
        sock.sendall(FRAME.pack(KIND_INIT, 0, len(data)) + data)
        frame = read_frame(sock)
    except OSError:
        return None
    if frame is None or frame[0] != KIND_HELLO:
        return None
    answer: dict[str, Any] = json.loads(frame[2])
    return answer


def serving(settings: Settings, data_dir: Path) -> dict[str, Any]:
    """Start the data directory's agent for these settings if none runs, and wait until it serves
    (its store opened and migrated): its status. ``km proxy`` calls it before it listens."""
    with reach(settings, data_dir) as sock:
        sock.settimeout(HELLO_TIMEOUT)
        answer = _ask(sock, "status")
    if answer is None:
        raise AgentUnavailable(f"the agent did not answer within {HELLO_TIMEOUT:g} s")
    if answer.get("version") != VERSION:
        raise AgentUnavailable(f"km {answer.get('version')} agent, km {VERSION} here")
    return answer


def request_all(data_dir: Path, op: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The answers of every agent of ``data_dir`` that runs (one per set of host settings)."""
    answers = []
    for state in running(data_dir):
        answer = request(Path(state.get("socket", "")), op, timeout)
        if answer is not None:
            answers.append(answer)
    return answers


class AgentLink:
    """The recorder of a ``km monitor`` (or of one ``km proxy`` session) that the agent records."""

    def __init__(
        self,
        settings: Settings | Callable[[], Settings],
        session: dict[str, Any],
        data_dir: Path,
        handover: Handover | None = None,
        fallback: Callable[[Session, bool], Fallback] | None = None,
        policy: Policy | None = None,
    ) -> None:
        """``session``: what the agent needs to know of it (see ``wire.session_from_info``);
        ``handover``: the forwarding threads' (the relay makes it before importing this);
        ``fallback``: who records the session when the agent cannot, given it and whether the
        agent began its record (default: a recorder process; a blocking policy needs one that
        answers ``tools_changed``); ``policy``: a blocking one gets its :attr:`gate` here, on the
        forwarding path, while the agent records."""
        self.gate: Gate | None = None
        """The blocking policy's gate: it decides in this process, with the analysis only (no
        store); the tools changed since pinned come from the agent (:meth:`tools_changed`)."""
        if policy is not None and policy.mode == "block":
            from ..security import Gate

            self.gate = Gate(policy, self.tools_changed, str(session.get("name") or "server"))
        self._settings = settings
        self._fallback = fallback
        self.session_info = session
        self.data_dir = data_dir
        self.handover = handover or Handover()
        self._items: collections.deque[Any] = self.handover.items
        self._wake = self.handover.wake
        self._lines = self.handover.lines
        """What was handed over, shared with the agent: if km is killed, the agent counts what
        it never received as dropped (POSIX)."""
        self._thread = threading.Thread(target=self.run, name="km-link", daemon=True)
        self._unacked: collections.deque[tuple[int, int, int, bytes]] = collections.deque()
        self._seq = 0
        self._tails: dict[int, list[bytes]] = {KIND_C2S: [], KIND_S2C: []}
        self._sock: socket.socket | None = None
        self._acks: threading.Thread | None = None
        self._bye = threading.Event()
        self._lost = threading.Event()
        self.child: Fallback | None = None
        self.session_id: str | None = None
        self.started_ns: int | None = None
        self._off = False
        """Neither the agent nor a child records (the child could not start): only forward."""
        self.fallback_reason: str | None = None
        """Why this session is recorded by km itself, not by the agent (None: the agent did)."""
        self._syncs: dict[int, tuple[threading.Event, list[frozenset[str]]]] = {}
        self._sync_number = 0
        self._sync_lock = threading.Lock()
        self._tools_known: frozenset[str] = frozenset()
        """The last answer to :meth:`tools_changed` (kept when no recorder can answer in time)."""
        self._recording = threading.Event()
        """Set once the agent took the session, or another recorder did, or none can."""

    # -- called from the forwarding threads -------------------------------------------------------

    def submit(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        self.handover.submit(direction, data, ts_ns)

    def submit_message(
        self, direction: Direction, message: bytes, ts_ns: int, headers: Mapping[str, str] | None = None
    ) -> None:
        """One already-framed message (``km proxy``), with the request's ``Mcp-*`` headers."""
        self.handover.submit_message(direction, message, ts_ns, headers)

    def submit_omitted(self, direction: Direction, size_bytes: int, ts_ns: int) -> None:
        self.handover.submit_omitted(direction, size_bytes, ts_ns)

    def update_session(self, **details: object) -> None:
        """New details of the session (``km monitor --url``'s transport), in order with its traffic."""
        changed = {k: v for k, v in details.items() if self.session_info.get(k) != v}
        if changed:
            self.session_info.update(changed)  # (what a fallback recorder starts from)
            self.handover.update_session(changed, time.time_ns())

    def release(self) -> None:
        """The session is idle (``km proxy``): nothing to let go of here; the agent's sinks are
        shared and stay open."""

    def backlog(self) -> int:
        return len(self._items)

    def tools_changed(self, timeout: float = SYNC_TIMEOUT) -> frozenset[str]:
        """The tools changed since pinned, once the recorder (the agent, else the fallback) has
        processed everything handed over so far: a tools/list the server just sent is checked
        before the gate lets a call to one of its tools through. Called by the gate on a
        forwarding thread; when no recorder answers within ``timeout``, the last answer. The
        timeout runs from when a recorder has the session: a first call is not let through
        unchecked because the agent is still starting."""
        self._recording.wait(START_TIMEOUT + HELLO_TIMEOUT)
        deadline = time.monotonic() + timeout
        while not self._off:
            with self._sync_lock:
                self._sync_number += 1
                number = self._sync_number
                waiter: tuple[threading.Event, list[frozenset[str]]] = (threading.Event(), [])
                self._syncs[number] = waiter
            self.handover.sync(number)
            answered = waiter[0].wait(max(0.0, deadline - time.monotonic()))
            with self._sync_lock:
                self._syncs.pop(number, None)
            if answered and waiter[1]:
                self._tools_known = waiter[1][0]
                break
            if not answered or time.monotonic() >= deadline:
                break
            # the agent went away before it answered: asked again, of the recorder that took over
        return self._tools_known

    def _synced(self, number: int, changed: frozenset[str] | None) -> None:
        """The answer to question ``number`` (None: nobody can answer; the last one stands)."""
        with self._sync_lock:
            waiter = self._syncs.get(number)
        if waiter is not None:
            if changed is not None:
                waiter[1].append(changed)
            waiter[0].set()

    def _unanswered(self) -> None:
        """No recorder will answer the questions asked so far (the agent went away)."""
        with self._sync_lock:
            numbers = list(self._syncs)
        for number in numbers:
            self._synced(number, None)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, exit_code: int | None, timeout: float | None = None) -> None:
        """Hand over the end of the session; return once it is recorded (or ``timeout``)."""
        self.handover.end(exit_code)
        self._thread.join(timeout)

    close = stop
    """(what ``km proxy`` calls a session's end)"""

    @property
    def settings(self) -> Settings:
        if callable(self._settings):
            self._settings = self._settings()
        return self._settings

    # -- the link thread ---------------------------------------------------------------------------

    def run(self) -> None:
        """The link thread's work, until the session's end is handed over and recorded."""
        try:
            self._open()
        except AgentUnavailable as exc:
            self._fall_back(str(exc))
        except Exception as exc:  # the settings, say: forwarding goes on, unrecorded
            self._give_up(exc)
        finally:
            self._recording.set()
        items, wake = self._items, self._wake
        while True:
            wake.wait()
            if not (items and (items[-1][0] is END or items[-1][0] == KIND_SYNC)):
                time.sleep(BATCH_WINDOW)  # (a blocking policy's question is sent at once)
            wake.clear()
            frames: list[tuple[int, int, bytes]] = []
            end: Any = None
            while items:
                item = items.popleft()
                if item[0] is END:
                    end = item
                    break
                self._frame(item, frames)
            try:
                if end is not None:
                    frames.extend(self._flush_tails())
                if self.child is None and not self._off and self._lost.is_set():
                    self._fall_back("the agent went away")
                self._send(frames)
                if end is not None:
                    self._finish(end[1])
            except Exception as exc:
                self._give_up(exc)
            if end is not None:
                self.handover.close()
                return

    def _give_up(self, exc: Exception) -> None:
        """Something km did not foresee: say it once, keep forwarding, record no more."""
        if not self._off:
            self._off = True
            _warn(f"km: recording stopped ({exc!r}); traffic is unaffected")

    def _open(self) -> None:
        import json
        import pickle

        settings = self.settings
        for attempt in (1, 2):
            sock = reach(settings, self.data_dir)
            hello = Hello(
                VERSION,
                settings=settings,
                session=self.session_info,
                otel_env=otel_environment(),
            )
            data = pickle.dumps(hello)
            try:
                sock.settimeout(HELLO_TIMEOUT)
                self._send_init(sock, FRAME.pack(KIND_INIT, 0, len(data)) + data)
                frame = read_frame(sock)
                sock.settimeout(None)
            except OSError as exc:
                frame = None
                reason = f"the agent did not answer ({exc.strerror or exc})"
            else:
                reason = "the agent closed the connection"
            if frame is None or frame[0] != KIND_HELLO:
                sock.close()
                if attempt == 2:
                    raise AgentUnavailable(reason)
                continue  # an agent that was exiting just then: start another
            answer = json.loads(frame[2])
            if answer.get("version") != VERSION or not answer.get("ok"):
                sock.close()
                why = answer.get("reason") or f"km {answer.get('version')} agent, km {VERSION} here"
                raise AgentUnavailable(f"the agent cannot record this session: {why}")
            self._sock = sock
            self.session_id = answer["session_id"]
            self.started_ns = answer.get("started_ns")
            self._acks = threading.Thread(target=self._read_acks, args=(sock,), name="km-acks", daemon=True)
            self._acks.start()
            return

    def _send_init(self, sock: socket.socket, data: bytes) -> None:
        """The first frame, with the shared count of what was handed over when there is one."""
        if self._lines is None or sock.family == socket.AF_INET:  # (loopback carries no descriptors)
            sock.sendall(data)
            return
        sent = socket.send_fds(sock, [data], [self._lines.fd])
        if sent < len(data):
            sock.sendall(data[sent:])

    def _frame(self, item: tuple[int, bytes, int], out: list[tuple[int, int, bytes]]) -> None:
        """Whole lines only, so that a frame re-sent elsewhere never starts mid-message (messages
        are whole already)."""
        kind, data, ts = item
        if kind > KIND_S2C:
            out.append((kind, ts, data))
            return
        tail = self._tails[kind]
        cut = data.rfind(b"\n") + 1
        if not cut:
            tail.append(data)
            return
        if tail:
            tail.append(data[:cut])
            whole = b"".join(tail)
            tail.clear()
        else:
            whole = data if cut == len(data) else data[:cut]
        out.append((kind, ts, whole))
        if cut < len(data):
            tail.append(data[cut:])

    def _flush_tails(self) -> list[tuple[int, int, bytes]]:
        """What the streams ended with, after their last newline."""
        now = time.time_ns()
        out = [(kind, now, b"".join(tail)) for kind, tail in self._tails.items() if tail]
        for tail in self._tails.values():
            tail.clear()
        return out

    def _send(self, frames: list[tuple[int, int, bytes]]) -> None:
        if not frames:
            return
        if self._off:
            self._unanswered()
            return
        if self.child is not None:
            for kind, ts, data in frames:
                if kind == KIND_SYNC:
                    # what the agent said stands: the listing it checked is skipped on resume
                    self._synced(ts, self.child.tools_changed() | self._tools_known)
                else:
                    self.child.submit_frame(kind, data, ts)
            return
        parts: list[bytes] = []
        pack, unacked = FRAME.pack, self._unacked
        for kind, ts, data in frames:
            if kind != KIND_SYNC:  # (a question is not traffic: not numbered, not re-sent)
                self._seq += 1
                unacked.append((self._seq, kind, ts, data))
            parts.append(pack(kind, ts, len(data)))
            parts.append(data)
        try:
            assert self._sock is not None
            self._sock.sendall(b"".join(parts))
        except OSError as exc:
            self._fall_back(f"the agent went away ({exc.strerror or exc})")

    def _read_acks(self, sock: socket.socket) -> None:
        unacked = self._unacked
        try:
            while True:
                frame = read_frame(sock)
                if frame is None:
                    break
                kind, n, _ = frame
                if kind == KIND_ACK:
                    while unacked and unacked[0][0] <= n:
                        unacked.popleft()
                elif kind == KIND_SYNCED:
                    import json

                    self._synced(n, frozenset(json.loads(frame[2])))
                elif kind == KIND_SAY:
                    _warn(frame[2].decode(errors="replace"))
                elif kind == KIND_BYE:
                    self._bye.set()
                    return
        except OSError:
            pass
        self._lost.set()
        self._wake.set()  # (the link falls back, and questions are asked again of the fallback)

    def _finish(self, exit_code: int | None) -> None:
        if self.child is None and not self._off:
            data = b"" if exit_code is None else str(exit_code).encode()
            try:
                assert self._sock is not None
                self._sock.sendall(FRAME.pack(KIND_END, 0, len(data)) + data)
            except OSError:
                pass
            deadline = time.monotonic() + BYE_TIMEOUT
            while not self._bye.is_set() and not self._lost.is_set() and time.monotonic() < deadline:
                self._bye.wait(0.05)
            if self._bye.is_set():
                self._close_socket()
                return
            self._fall_back("the agent went away before the session was stored")
        if self.child is not None:
            self.child.stop(exit_code, BYE_TIMEOUT)

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._acks is not None and self._acks is not threading.current_thread():
            self._acks.join(5)

    def _fall_back(self, reason: str) -> None:
        """Record by ourselves from here on: the child recorder, given what the agent did not
        acknowledge (it resumes the agent's session, skipping what the agent stored)."""
        if self._lines is not None:  # (before the agent sees the end: it is no loss)
            self._lines.hand_over()
        self._close_socket()
        self.fallback_reason = reason
        _warn(f"km: {reason}; recording without the agent")
        session = session_from_info(self.session_info)
        resume = self.session_id is not None
        if resume:
            assert self.session_id is not None
            session.id = self.session_id
            if self.started_ns is not None:
                session.started_ns = self.started_ns
        child = (self._fallback or self._recorder_process)(session, resume)
        try:
            child.start()
        except OSError as exc:
            _warn(f"km: cannot start the recorder process ({exc}); traffic is unaffected but not recorded")
            self._unacked.clear()
            self._off = True
            self._unanswered()
            return
        self.child = child
        pending = list(self._unacked)
        self._unacked.clear()
        for _, kind, ts, data in pending:
            child.submit_frame(kind, data, ts)
        self._unanswered()  # questions the agent never answered are asked again, of the child

    def _recorder_process(self, session: Session, resume: bool) -> Fallback:
        from ..recorder_process import RecorderProcess

        settings = self.settings
        return RecorderProcess(settings, session, settings.metrics_port, resume=resume)
