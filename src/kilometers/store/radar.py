"""The deprecation radar: per server and per client, the protocol versions they speak and the
features they still rely on that the 2026-07-28 revision of MCP deprecates or removes.

It reads what is recorded: the sessions (negotiated version, transport, the server's
capabilities) and the methods of their messages, by direction. A feature counts for a peer when
that peer used it: a server that sent ``sampling/createMessage`` relies on sampling, and so does
the client that was asked (it answers for the server). ``dynamic client registration`` happens
on the authorization server, outside the MCP traffic km records, and is not shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, Engine, and_, bindparam, func, or_, select

from ..model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Session, format_ts
from .codec import session_from_row
from .queries import server_matches
from .schema import LOCAL_ORG, RADAR_METHODS, events, sessions

CURRENT_VERSION = "2026-07-28"
"""The newest protocol revision km knows; versions are dates and compare as text."""


@dataclass(frozen=True)
class Feature:
    key: str
    label: str
    status: str
    """``removed`` (gone in 2026-07-28) or ``deprecated`` (still works, on its way out)."""


FEATURES: dict[str, Feature] = {
    f.key: f
    for f in (
        Feature("handshake", "initialize handshake and sessions", "removed"),
        Feature("http_sse", "HTTP+SSE transport", "deprecated"),
        Feature("sampling", "sampling (sampling/createMessage)", "deprecated"),
        Feature("roots", "roots (roots/list)", "deprecated"),
        Feature("logging", "logging (logging/setLevel, notifications/message)", "deprecated"),
        Feature("ping", "ping", "deprecated"),
        Feature("client_progress", "client-to-server progress", "deprecated"),
    )
}

SIGNS: dict[tuple[str, str], tuple[str, ...]] = {
    # (direction, method) -> the features it shows, as "server:feature" / "client:feature"
    (CLIENT_TO_SERVER, "initialize"): ("client:handshake", "server:handshake"),
    (SERVER_TO_CLIENT, "sampling/createMessage"): ("server:sampling", "client:sampling"),
    (SERVER_TO_CLIENT, "roots/list"): ("server:roots", "client:roots"),
    (CLIENT_TO_SERVER, "notifications/roots/list_changed"): ("client:roots",),
    (CLIENT_TO_SERVER, "logging/setLevel"): ("client:logging", "server:logging"),
    (SERVER_TO_CLIENT, "notifications/message"): ("server:logging",),
    (CLIENT_TO_SERVER, "ping"): ("client:ping",),
    (SERVER_TO_CLIENT, "ping"): ("server:ping",),
    (CLIENT_TO_SERVER, "notifications/progress"): ("client:client_progress",),
}
"""What each message shows about who relies on what."""


@dataclass
class Use:
    sessions: set[str] = field(default_factory=set)
    messages: int = 0


@dataclass
class Peer:
    role: str
    """``server`` or ``client``."""
    name: str
    versions: set[str] = field(default_factory=set)
    aliases: set[str] = field(default_factory=set)
    """The names km recorded its sessions under (``--name``, the client's entry)."""
    sessions: int = 0
    last_seen_ns: int = 0
    uses: dict[str, Use] = field(default_factory=dict)

    @property
    def current(self) -> bool:
        """Whether it has spoken 2026-07-28 (or newer) in any session."""
        return any(v >= CURRENT_VERSION for v in self.versions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "versions": sorted(self.versions),
            "aliases": sorted(self.aliases),
            "current": self.current,
            "sessions": self.sessions,
            "last_seen": format_ts(self.last_seen_ns) if self.last_seen_ns else None,
            "features": [
                {
                    "feature": key,
                    "label": FEATURES[key].label,
                    "status": FEATURES[key].status,
                    "sessions": len(use.sessions),
                    "messages": use.messages,
                }
                for key, use in sorted(self.uses.items(), key=lambda kv: list(FEATURES).index(kv[0]))
            ],
        }


def _name(info: dict[str, Any] | None, fallback: str | None) -> str:
    name = (info or {}).get("name")
    return name if isinstance(name, str) and name else (fallback or "unknown")


def _method_counts(
    engine: Engine, org_id: str, session_ids: list[str]
) -> Iterable[tuple[str, str, str, int]]:
    """(session id, direction, method, messages) for the methods the radar looks at.

    Read from ``ix_events_org_radar``, which holds only those methods: the methods are written
    into the statement as the index's predicate names them (literals, in its order), which is
    how either database sees that the partial index covers the query."""
    c = events.c
    ids: BindParameter[list[str]] = bindparam("ids", session_ids, expanding=True, literal_execute=True)
    methods: BindParameter[list[str]] = bindparam(
        "radar_methods", list(RADAR_METHODS), expanding=True, literal_execute=True
    )
    query = (
        select(c.session_id, c.direction, c.method, func.count())
        .where(and_(c.org_id == org_id, c.method.in_(methods), c.session_id.in_(ids)))
        .where(c.kind.in_(("request", "notification")))
        .group_by(c.session_id, c.direction, c.method)
    )
    with engine.connect() as conn:
        for session_id, direction, method, count in conn.execute(query):
            yield session_id, direction, method, int(count)


def radar(
    engine: Engine, org_id: str = LOCAL_ORG, server: str | None = None, since_ns: int | None = None
) -> list[Peer]:
    """Every server and client seen (in the sessions of the servers matching ``server``, started
    at or after ``since_ns``), servers first, those relying on the most first."""
    found = _sessions(engine, org_id, server, since_ns)
    peers: dict[tuple[str, str], Peer] = {}
    of_session: dict[str, tuple[Peer, Peer]] = {}
    for s in found:
        pair = (
            _peer(peers, "server", _name(s.server, s.name), s),
            _peer(peers, "client", _name(s.client, None), s),
        )
        of_session[s.id] = pair
        if s.transport == "sse":
            for peer in pair:
                _use(peer, "http_sse", s.id, 0)
        if isinstance(s.capabilities, dict) and "logging" in s.capabilities:
            _use(pair[0], "logging", s.id, 0)
    for chunk in _chunks(list(of_session), 500):
        for session_id, direction, method, count in _method_counts(engine, org_id, chunk):
            server_peer, client_peer = of_session[session_id]
            for sign in SIGNS.get((direction, method), ()):
                role, feature = sign.split(":")
                _use(server_peer if role == "server" else client_peer, feature, session_id, count)
    return sorted(peers.values(), key=lambda p: (p.role != "server", -len(p.uses), p.name))


def _sessions(engine: Engine, org_id: str, server: str | None, since_ns: int | None) -> list[Session]:
    """The sessions that ended (or, still open, started) at or after ``since_ns``."""
    c = sessions.c
    query = select(sessions).where(c.org_id == org_id)
    if since_ns is not None:
        query = query.where(or_(c.ended_ns >= since_ns, and_(c.ended_ns.is_(None), c.started_ns >= since_ns)))
    with engine.connect() as conn:
        found = [session_from_row(row._mapping) for row in conn.execute(query)]
    return [s for s in found if server is None or server_matches(s.name, s.server, server)]


def _peer(peers: dict[tuple[str, str], Peer], role: str, name: str, s: Session) -> Peer:
    peer = peers.get((role, name))
    if peer is None:
        peer = peers[(role, name)] = Peer(role, name)
    peer.sessions += 1
    if role == "server" and s.name and s.name != name:
        peer.aliases.add(s.name)
    peer.last_seen_ns = max(peer.last_seen_ns, s.ended_ns or s.started_ns)
    if s.protocol_version:
        peer.versions.add(s.protocol_version)
    return peer


def _use(peer: Peer, feature: str, session_id: str, messages: int) -> None:
    use = peer.uses.setdefault(feature, Use())
    use.sessions.add(session_id)
    use.messages += messages


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
