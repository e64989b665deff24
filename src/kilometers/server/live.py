"""Live events: every server process tails the events table for the organizations someone is
watching and pushes new events to their browsers over Server-Sent Events.

Each stream stays bound to the credential that opened it: every ``RECHECK_SECONDS`` it asks the
database again whether that browser session or API key still grants the same access (signed out,
expired, removed, role changed, key revoked: the stream ends with an ``event: revoked`` message).
A re-check, rather than a notification on each change, also sees expiry (which no one makes) and
changes made by any process or by `km admin`, on SQLite as on PostgreSQL, at the cost of one
indexed lookup per stream every two seconds.

On PostgreSQL, ingestion runs ``pg_notify('km_events', org_id)`` in its transaction, so every
process (not only the one that ingested) wakes up the moment a batch commits. On SQLite (the
local store, written by `km monitor` processes) the tailer polls every ``poll_interval``.

The same PostgreSQL connection listens on ``km_auth``, which a trigger (migration 0008) notifies
whenever API keys, memberships or organizations change: every process then drops its cached key
lookups (:meth:`LiveHub.on_auth_change`) and re-checks each open stream's credential at once,
instead of at its next ``RECHECK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, and_, func, select

from ..model import LEVELS, Event
from ..store.codec import event_from_row
from ..store.schema import events

_log = logging.getLogger(__name__)

CHANNEL = "km_events"
AUTH_CHANNEL = "km_auth"
LOOKBACK = 500
"""PostgreSQL sequences are assigned before commit: look back a little and de-duplicate."""
QUEUE_MAX = 10_000
HEARTBEAT_SECONDS = 15.0
RECHECK_SECONDS = 2.0
"""How often a stream re-checks its credential (access ends at most this long after it should)."""
REVOKED = (
    b'event: revoked\ndata: {"code":"access_ended",'
    b'"message":"this sign-in or API key no longer grants access"}\n\n'
)


@dataclass
class LiveFilter:
    session_id: str | None = None
    method: str | None = None
    tool: str | None = None
    kind: str | None = None
    errors: bool = False
    q: str | None = None
    min_level: str | None = None
    """Only events whose stored risk level is at least this one (``low`` … ``critical``)."""

    def matches(self, e: Event) -> bool:
        if self.min_level and LEVELS.index(_level(e)) < LEVELS.index(self.min_level):
            return False
        if self.session_id and e.session_id != self.session_id:
            return False
        if self.method and e.method != self.method:
            return False
        if self.tool and e.tool != self.tool:
            return False
        if self.kind and e.kind != self.kind:
            return False
        if self.errors and not e.is_error:
            return False
        return not (self.q and self.q.lower() not in (e.payload or "").lower())


def _level(e: Event) -> str:
    level = (e.risk or {}).get("level")
    return level if level in LEVELS else "none"


@dataclass(eq=False)
class Subscription:
    org_id: str
    flt: LiveFilter
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    lost: int = 0
    recheck: bool = False
    """Set when credentials changed somewhere: the stream re-checks its own before going on."""

    def offer(self, data: bytes) -> None:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.lost += 1

    def recheck_now(self) -> None:
        self.recheck = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(b"")  # wakes the stream up; not sent


class LiveHub:
    def __init__(self, engine: Engine, poll_interval: float = 0.2) -> None:
        self.engine = engine
        self.poll_interval = poll_interval
        self.postgres = engine.dialect.name == "postgresql"
        self._subs: dict[str, set[Subscription]] = {}
        self._last: dict[str, int] = {}
        self._sent: dict[str, deque[str]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: threading.Thread | None = None
        self._auth_listeners: list[Callable[[], None]] = []

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="km-live", daemon=True)
            self._thread.start()
        self.listen()

    def listen(self) -> None:
        """On PostgreSQL, start listening to ``km_events`` and ``km_auth`` (the server does at
        start-up, so that credential changes reach it before any stream is open)."""
        if self.postgres and self._listener is None:
            self._listener = threading.Thread(target=self._listen, name="km-listen", daemon=True)
            self._listener.start()

    def on_auth_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the listener thread) whenever keys, members or organizations
        changed, and after each reconnection (changes may have been missed meanwhile)."""
        self._auth_listeners.append(callback)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # -- subscribers -----------------------------------------------------------------------------

    def subscribe(self, org_id: str, flt: LiveFilter) -> Subscription:
        sub = Subscription(org_id, flt, asyncio.get_running_loop())
        with self._lock:
            if org_id not in self._subs:
                self._subs[org_id] = set()
                self._last[org_id] = self._max_seq(org_id)
                self._sent[org_id] = deque(maxlen=4 * LOOKBACK)
            self._subs[org_id].add(sub)
        self.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.org_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.org_id]

    def subscriber_count(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._subs.values())

    def notify(self) -> None:
        """New events may exist (called by ingestion in this process, and by LISTEN)."""
        self._wake.set()

    # -- the tailer thread ------------------------------------------------------------------------

    def _max_seq(self, org_id: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(events.c.seq)).where(events.c.org_id == org_id)).scalar()
        return int(value or 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(2.0 if self.postgres else self.poll_interval)
            self._wake.clear()
            with self._lock:
                orgs = list(self._subs)
            for org_id in orgs:
                try:
                    self._deliver(org_id)
                except Exception as exc:  # database restarting: try again on the next wake-up
                    _log.error(f"km serve: live tail failed: {exc}")

    def _deliver(self, org_id: str) -> None:
        since = self._last.get(org_id, 0) - (LOOKBACK if self.postgres else 0)
        query = (
            select(events)
            .where(and_(events.c.org_id == org_id, events.c.seq > since))
            .order_by(events.c.seq)
            .limit(5000)
        )
        with self.engine.connect() as conn:
            rows = [r._mapping for r in conn.execute(query)]
        if not rows:
            return
        sent = self._sent.setdefault(org_id, deque(maxlen=4 * LOOKBACK))
        recent = set(sent)
        with self._lock:
            subs = list(self._subs.get(org_id, ()))
        for row in rows:
            if row["id"] in recent:
                continue
            sent.append(row["id"])
            event = event_from_row(row)
            data: bytes | None = None
            for sub in subs:
                if sub.flt.matches(event):
                    if data is None:
                        data = orjson.dumps(event.to_dict())
                    sub.loop.call_soon_threadsafe(sub.offer, data)
        self._last[org_id] = max(self._last.get(org_id, 0), max(int(r["seq"]) for r in rows))
        if len(rows) == 5000:
            self._wake.set()

    def _auth_changed(self) -> None:
        for callback in self._auth_listeners:
            try:
                callback()
            except Exception as exc:  # one failing listener must not stop the others
                _log.warning(f"km serve: credential change not applied: {exc}")
        with self._lock:
            subs = [sub for group in self._subs.values() for sub in group]
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # its event loop has just closed
                sub.loop.call_soon_threadsafe(sub.recheck_now)

    def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {AUTH_CHANNEL}")
                    self._wake.set()  # catch up on anything missed while (re)connecting
                    self._auth_changed()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if note.channel == AUTH_CHANNEL:
                                self._auth_changed()
                            else:
                                self._wake.set()
            except Exception:
                self._stop.wait(1.0)  # PostgreSQL restarting: reconnect


async def stream(
    hub: LiveHub,
    org_id: str,
    flt: LiveFilter,
    is_disconnected: Any,
    allowed: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body: ``event: event`` messages, and a comment line as heartbeat. ``allowed`` is
    asked every ``RECHECK_SECONDS`` whether the caller's credential still grants access; when it
    does not, an ``event: revoked`` message ends the stream."""
    sub = hub.subscribe(org_id, flt)
    idle = 0.0
    checked = time.monotonic()
    try:
        yield b": connected\n\n"
        while True:
            due = sub.recheck or time.monotonic() - checked >= RECHECK_SECONDS
            if allowed is not None and due:
                sub.recheck = False
                if not await allowed():
                    yield REVOKED
                    return
                checked = time.monotonic()
            try:
                data = await asyncio.wait_for(sub.queue.get(), 1.0)
                if not data:  # recheck_now's wake-up
                    continue
            except TimeoutError:
                if await is_disconnected():
                    return
                idle += 1.0
                if idle >= HEARTBEAT_SECONDS:
                    idle = 0.0
                    yield b": ping\n\n"
                continue
            idle = 0.0
            yield b"event: event\ndata: " + data + b"\n\n"
            if sub.lost:
                yield b"event: lagged\ndata: " + str(sub.lost).encode() + b"\n\n"
                sub.lost = 0
    finally:
        hub.unsubscribe(sub)
