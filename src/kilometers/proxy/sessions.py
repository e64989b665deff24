"""``km proxy``'s MCP session tracking: which km session each HTTP request belongs to.

A :class:`SessionTable` maps a key (``("sid", Mcp-Session-Id)``, ``("client", address,
User-Agent)`` for stateless clients, ``("sse", endpoint)`` for a legacy SSE stream) to a
:class:`LiveSession`: the km :class:`~kilometers.model.Session`, its :class:`Recording` (by the
user's agent or the process's host, see agent/proxy.py) and the transport state (open
streams, SSE event ids already recorded, the legacy stream). It opens sessions on first
sight, ends them (DELETE, 404, idle timeout, eviction past ``max_sessions``, shutdown), lets idle
ones release their sinks' files, and waits for ended ones to be written out. No IO of its own
beyond the recording threads it starts to close a session off the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl

from ..host import unrecorded
from ..model import Direction, Session

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ..security import Gate
    from .legacy import LegacyStream


class Recording(Protocol):
    """A session's recording: a :class:`~kilometers.host.SessionHandle` on the proxy's host, or an
    :class:`~kilometers.agent.link.AgentLink` to the user's agent (agent/proxy.py)."""

    @property
    def gate(self) -> Gate | None: ...

    def submit_message(
        self, direction: Direction, message: bytes, ts_ns: int, headers: Mapping[str, str] | None = None
    ) -> None: ...

    def submit_omitted(self, direction: Direction, size_bytes: int, ts_ns: int) -> None: ...

    def release(self) -> None: ...

    def close(self, exit_code: int | None, timeout: float | None = None) -> None: ...


Key = tuple[str, ...]

STREAMABLE_HTTP = "streamable_http"
SSE = "sse"
SEEN_EVENT_IDS = 10_000
"""SSE event ids remembered per session, so events replayed on resumption are recorded once."""
RELEASE_AFTER = 10.0
"""Seconds without traffic after which a session's sinks close their files (reopened on demand)."""
WARNING_INTERVAL = 10.0
"""Seconds between two warnings of one kind on stderr (unreachable upstream, sessions evicted)."""


@dataclass(eq=False)
class LiveSession:
    """One km session in progress: its Session, its recording (opened on the host), and
    transport state."""

    key: Key
    session: Session
    recording: Recording
    last_active: float = field(default_factory=time.monotonic)
    streams: int = 0
    """Open responses (SSE streams, bodies) that belong to this session."""
    ended: bool = False
    idle: bool = False
    """The recorder was told to release its sinks' file handles (no traffic for a while)."""
    seen_ids: OrderedDict[str, None] = field(default_factory=OrderedDict)
    legacy: LegacyStream | None = None
    gate: Gate | None = None

    def submit(
        self, direction: Direction, message: bytes, ts_ns: int, headers: Mapping[str, str] | None = None
    ) -> None:
        """One message; ``headers``: a request's ``Mcp-*`` headers, checked against its body."""
        self.last_active = time.monotonic()
        self.idle = False
        if not self.ended:  # (a stream may outlive its session: the recorder has stopped)
            if headers:
                self.recording.submit_message(direction, message, ts_ns, headers)
            else:
                self.recording.submit_message(direction, message, ts_ns)

    def submit_omitted(self, direction: Direction, size_bytes: int, ts_ns: int) -> None:
        """A message over MAX_BODY_BYTES once decoded: forwarded, recorded as a marker."""
        self.last_active = time.monotonic()
        self.idle = False
        if not self.ended:
            self.recording.submit_omitted(direction, size_bytes, ts_ns)

    def first_sighting(self, event_id: str | None) -> bool:
        """False when an SSE event with this id was already recorded (a replay after resumption)."""
        if event_id is None or event_id == "":
            return True
        if event_id in self.seen_ids:
            return False
        self.seen_ids[event_id] = None
        if len(self.seen_ids) > SEEN_EVENT_IDS:
            self.seen_ids.popitem(last=False)
        return True


class SessionTable:
    """The live sessions of one ``km proxy``, by key (see the module's docstring)."""

    def __init__(
        self,
        command: str,
        name: str,
        open_session: Callable[[Session], Recording] | None,
        *,
        idle_timeout: float,
        max_sessions: int,
        stop_timeout: float,
        warn: Callable[[str], None],
    ) -> None:
        self.command = command
        """The upstream as recorded (credentials removed): each session's command line."""
        self.name = name
        self.open_session = open_session
        """``Host.open_session``: a new session's recording (None: sessions are not recorded)."""
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.stop_timeout = stop_timeout
        self.warn = warn
        """Says a problem on stderr, once in a while (the proxy's rate-limited warning)."""
        self.live: dict[Key, LiveSession] = {}
        self.legacy_endpoints: dict[bytes, LiveSession] = {}
        self.ended_keys: OrderedDict[Key, None] = OrderedDict()
        """Sessions the server ended (deleted, expired): a late request for one is recorded on its own."""
        self._stopping: list[threading.Thread] = []
        self._next_eviction_warning = 0.0

    def get(self, key: Key) -> LiveSession | None:
        return self.live.get(key)

    def open(self, key: Key, transport: str, client_host: str, started_ns: int | None = None) -> LiveSession:
        """The session of ``key``, opened (and its recording started) on first sight."""
        live = self.live.get(key)
        if live is not None:
            return live
        if len(self.live) >= self.max_sessions:
            self._evict()
        session = Session(command=[self.command], cwd=client_host, name=self.name, transport=transport)
        if started_ns is not None:
            session.started_ns = started_ns
        recording: Recording | None = None
        if self.open_session is not None:
            try:
                recording = self.open_session(session)
            except Exception as exc:  # recording must never keep traffic from flowing
                self.warn(f"km proxy: cannot record this session ({exc!r}); traffic is forwarded unchanged")
        if recording is None:
            recording = unrecorded(session)
        live = LiveSession(key, session, recording, gate=recording.gate)
        self.live[key] = live
        return live

    def stateless(self, client_host: str, user_agent: bytes, started_ns: int | None = None) -> LiveSession:
        """The session of a client that sends no ``Mcp-Session-Id``: one per address and agent."""
        ua = user_agent.decode("latin-1")
        return self.open(("client", client_host, ua), STREAMABLE_HTTP, client_host, started_ns)

    def open_legacy(self, target: bytes, client_host: str) -> LiveSession:
        """The session of a legacy SSE stream whose ``endpoint`` event named ``target``."""
        live = self.open(("sse", target.decode("latin-1")), SSE, client_host)
        self.legacy_endpoints[target] = live
        return live

    def legacy(self, target: bytes) -> LiveSession | None:
        """The legacy SSE session a POST to ``target`` belongs to, if any."""
        live = self.legacy_endpoints.get(target)
        if live is not None:
            return live
        # the client may have re-encoded the query: match on the path and the session id parameter
        path, _, query = target.partition(b"?")
        wanted = _legacy_sid(query)
        if wanted is None:
            return None
        for known, candidate in self.legacy_endpoints.items():
            kpath, _, kquery = known.partition(b"?")
            if kpath == path and _legacy_sid(kquery) == wanted:
                return candidate
        return None

    def was_ended(self, key: Key) -> bool:
        """The server ended this session (DELETE, 404)."""
        return key in self.ended_keys

    def end(self, live: LiveSession, gone: bool = False) -> None:
        """End a session in the records; ``gone``: the server ended it (DELETE, 404)."""
        if live.ended:
            return
        live.ended = True
        if self.live.get(live.key) is live:
            del self.live[live.key]
        if gone:
            self.ended_keys[live.key] = None
            if len(self.ended_keys) > SEEN_EVENT_IDS:
                self.ended_keys.popitem(last=False)
        for target, other in list(self.legacy_endpoints.items()):
            if other is live:
                del self.legacy_endpoints[target]
        thread = threading.Thread(
            target=live.recording.close, args=(None, self.stop_timeout), name="km-session-end"
        )
        thread.start()
        self._stopping = [t for t in self._stopping if t.is_alive()]
        self._stopping.append(thread)

    def end_all(self) -> None:
        for live in list(self.live.values()):
            self.end(live)

    def join(self) -> None:
        """Wait until every ended session has been written out."""
        for thread in self._stopping:
            thread.join(self.stop_timeout)
        self._stopping = [t for t in self._stopping if t.is_alive()]

    def reap_idle(self) -> None:
        """End the sessions idle past ``idle_timeout`` (with no open stream); let the ones quiet
        for ``RELEASE_AFTER`` release their sinks' files."""
        now = time.monotonic()
        deadline = now - self.idle_timeout
        quiet = now - RELEASE_AFTER
        for live in list(self.live.values()):
            if live.streams == 0 and live.last_active < deadline:
                self.end(live)
            elif not live.idle and live.last_active < quiet:
                live.idle = True
                live.recording.release()  # the sinks close its files until the next message

    def _evict(self) -> None:
        """Make room for a new session: end the one idle longest (one without an open stream
        if there is any) and say so on stderr, once in a while."""
        victim = min(self.live.values(), key=lambda s: (s.streams > 0, s.last_active))
        self.end(victim)
        now = time.monotonic()
        if now >= self._next_eviction_warning:
            self._next_eviction_warning = now + WARNING_INTERVAL
            _log.warning(
                f"km proxy: {self.max_sessions} sessions are open (--max-sessions); ended the "
                f"one idle longest ({victim.session.transport} from {victim.session.cwd}) in the "
                "records. Raise --max-sessions if your clients need more at once."
            )


def _legacy_sid(query: bytes) -> str | None:
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in ("sessionId", "session_id"):
            return value
    return None
