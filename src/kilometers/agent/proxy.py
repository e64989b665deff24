"""Who records ``km proxy``'s sessions: the user's agent, as for ``km monitor``, or the proxy's own
host.

By default each session the proxy opens is handed to the agent of the data directory over a
connection of its own (an :class:`~kilometers.agent.link.AgentLink`, whole messages instead of
byte chunks): one store writer, uploader, exporter and Prometheus endpoint for every ``km
monitor`` and ``km proxy`` of the user. The proxy's own :class:`~kilometers.host.Host` records
instead when a blocking policy must decide on the forwarding path, when the agent is turned off
(``KM_AGENT=0``, ``agent = false``) or cannot be started; and, session by session, when the
agent goes away mid-session: the host then resumes the agent's record of the session, skipping
what the agent stored, so no message is lost or recorded twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..frames import already_stored

if TYPE_CHECKING:
    from ..config import Settings
    from ..host import Host, SessionHandle
    from ..model import Session
    from ..security import Policy
    from .link import AgentLink


class AgentRecording:
    """``km proxy``'s sessions, recorded by the agent; its own host is started only for sessions
    the agent could not keep. A blocking policy's gate decides in the proxy (see AgentLink)."""

    def __init__(self, settings: Settings, policy: Policy, data_dir: Path) -> None:
        self.settings = settings
        self.policy = policy
        self.data_dir = data_dir
        self.own = OwnHost(settings, policy, server_side=True)

    def open_session(self, session: Session) -> AgentLink:
        from .link import AgentLink

        info = {
            "id": session.id,
            "command": session.command,
            "cwd": session.cwd,
            "name": session.name,
            "transport": session.transport,
            "started_ns": session.started_ns,
            "server_side": True,
        }
        link = AgentLink(self.settings, info, self.data_dir, fallback=self.own.fallback, policy=self.policy)
        link.start()
        return link

    def close(self, timeout: float | None = None) -> None:
        self.own.close(timeout)


class OwnHost:
    """This process's host, started on first use: it records the sessions the agent stopped
    recording (their :class:`HostSession`), and answers their blocking policy's questions."""

    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        *,
        server_side: bool = False,
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.server_side = server_side
        self.metrics_port = metrics_port
        self._host: Host | None = None
        self._lock = threading.Lock()

    def host(self) -> Host:
        with self._lock:
            if self._host is None:
                from ..host import Host

                host = Host(
                    self.settings,
                    policy=self.policy,
                    server_side=self.server_side,
                    metrics_port=self.metrics_port,
                )
                self._host = host.start()
            return self._host

    def fallback(self, session: Session, resume: bool) -> HostSession:
        """(an AgentLink's ``fallback``)"""
        return HostSession(self.host, session, resume)

    def close(self, timeout: float | None = None) -> None:
        with self._lock:
            host, self._host = self._host, None
        if host is not None:
            host.close(timeout)


class HostSession:
    """A session the agent stopped recording, recorded by the proxy's host from there on: it
    continues the agent's record (``resume``) and skips the messages the agent stored."""

    def __init__(self, host: Callable[[], Host], session: Session, resume: bool) -> None:
        self._host = host
        self.session = session
        self.resume = resume
        self.handle: SessionHandle | None = None
        self.stored: set[tuple[int, int]] = set()

    def start(self) -> None:
        host = self._host()
        session = self.session
        if self.resume and host.store is not None:
            from ..recorder_process import resume_session

            session, self.stored = resume_session(host, session)
        self.handle = host.open_session(session)

    def submit_frame(self, kind: int, data: bytes, ts_ns: int) -> None:
        if self.stored and already_stored(self.stored, kind, data, ts_ns):
            return  # the agent stored it before it went away
        assert self.handle is not None
        self.handle.submit_frame(kind, data, ts_ns)

    def tools_changed(self) -> frozenset[str]:
        return self.handle.tools_changed() if self.handle is not None else frozenset()

    def stop(self, exit_code: int | None, timeout: float | None = None) -> None:
        if self.handle is not None:
            self.handle.close(exit_code, timeout)
