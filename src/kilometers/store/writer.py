"""The local store sink: batched inserts into SQLite (or any SQLAlchemy URL), off the forwarding path."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence

from sqlalchemy import Engine, insert, update

from ..log import once
from ..model import Event, Session
from ..sinks import Sink
from . import db
from .codec import event_row, session_row
from .live import LiveLock
from .rollups import rollup_rows, upsert_rollups
from .schema import LOCAL_ORG, sessions

_log = logging.getLogger(__name__)

RETRY_OPEN_SECONDS = 5.0
_PROBE = Event(
    session_id="", ts_ns=0, direction="client_to_server", kind="invalid", size_bytes=0, payload=None
)


class StoreSink(Sink):
    """Writes sessions and events. If the store cannot be written, traffic is unaffected:
    the problem is said once on stderr and the events that could not be kept are counted.

    One StoreSink (one engine) serves every session of a process (kilometers.host): its hooks
    run on the sessions' recorder threads at once, so what it knows of a session is kept by
    session id, and the store is opened (and migrated) by one thread at a time."""

    name = "store"

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        """Held while the store is opened, and around the per-session maps."""
        self._lost: dict[str, int] = {}
        self._next_open = 0.0
        self._written_ids: set[str] = set()
        self._sql: str | None = None
        self._live: dict[str, LiveLock] = {}

    @property
    def lost_events(self) -> int:
        with self._lock:
            return sum(self._lost.values())

    def _warn(self, exc: BaseException) -> None:
        _log.warning(
            f"km: cannot write the event store {db.display_url(self.url)} "
            f"({db.error_text(exc, self.url)}); traffic is forwarded unchanged and what is not "
            "stored is counted as dropped; free some space or set KM_HOME or --db to a writable place",
            extra=once(f"store-write:{self.url}"),
        )

    def _written(self, session: Session) -> None:
        """The session's row exists: hold its lock file, so that the session is ended by the
        next km to open the store if this process dies before ending it (store/live.py)."""
        with self._lock:
            self._written_ids.add(session.id)
            if session.id in self._live:
                return
            db_file = db.sqlite_file(self.url)
            if db_file:
                with contextlib.suppress(OSError):  # without it, only the sweep after a crash is lost
                    self._live[session.id] = LiveLock(db_file, session.id)

    def open(self) -> Engine:
        """The engine, opening (and migrating) the store the first time; raises when it cannot.
        The one way in for every session and for the uploader: one thread migrates, at most."""
        with self._lock:
            if self._engine is None:
                self._engine = db.open_store(self.url)
            return self._engine

    def _ready(self) -> Engine | None:
        engine = self._engine
        if engine is not None:
            return engine
        if time.monotonic() < self._next_open:
            return None
        try:
            return self.open()
        except Exception as exc:
            self._next_open = time.monotonic() + RETRY_OPEN_SECONDS
            self._warn(exc)
            return None

    def _write_session(self, engine: Engine, session: Session) -> None:
        row = session_row(session)
        with engine.begin() as conn:
            if session.id in self._written_ids:
                conn.execute(
                    update(sessions)
                    .where(sessions.c.org_id == LOCAL_ORG, sessions.c.id == session.id)
                    .values(row)
                )
            else:
                conn.execute(insert(sessions).values(row))
        self._written(session)

    def on_session_start(self, session: Session) -> None:
        engine = self._ready()
        if engine is None:
            return
        try:
            self._write_session(engine, session)
        except Exception as exc:
            self._warn(exc)

    def on_session_update(self, session: Session) -> None:
        self.on_session_start(session)

    def on_session_end(self, session: Session) -> None:
        with self._lock:
            session.dropped_events += self._lost.pop(session.id, 0)
        engine = self._ready()
        if engine is None:
            self._forget(session)
            return
        try:
            self._write_session(engine, session)
        except Exception as exc:
            self._warn(exc)
            self._forget(session)
            return
        with self._lock:
            self._written_ids.discard(session.id)
            live = self._live.pop(session.id, None)
        if live is not None:
            live.release(ended=True)

    def _forget(self, session: Session) -> None:
        """An end that could not be stored: the session's lock file is left to the next sweep."""
        with self._lock:
            self._written_ids.discard(session.id)
            live = self._live.pop(session.id, None)
        if live is not None:
            live.release(ended=False)

    def _count_lost(self, session: Session, n: int) -> None:
        with self._lock:
            self._lost[session.id] = self._lost.get(session.id, 0) + n

    def on_events(self, session: Session, batch: Sequence[Event]) -> None:
        engine = self._ready()
        if engine is None:
            self._count_lost(session, len(batch))
            return
        try:
            with engine.begin() as conn:
                if session.id not in self._written_ids:
                    conn.execute(insert(sessions).values(session_row(session)))
                # plain DB-API executemany: SQLAlchemy's per-row processing was ~30% of the recorder's time
                rows = [event_row(e) for e in batch]
                conn.exec_driver_sql(self._insert_sql(engine), [tuple(r.values()) for r in rows])
                # per-minute rollups, as on the team server, so km ui's charts work on local data
                server = session.name or (session.server or {}).get("name") or ""
                upsert_rollups(conn, rollup_rows(LOCAL_ORG, str(server)[:200], rows))
                conn.execute(
                    update(sessions)
                    .where(sessions.c.org_id == LOCAL_ORG, sessions.c.id == session.id)
                    .values(event_count=session.event_count, error_count=session.error_count)
                )
            self._written(session)
        except Exception as exc:
            self._count_lost(session, len(batch))
            self._warn(exc)

    def _insert_sql(self, engine: Engine) -> str:
        if self._sql is None:
            mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
            names = list(event_row(_PROBE).keys())
            self._sql = f"INSERT INTO events ({', '.join(names)}) VALUES ({', '.join(mark for _ in names)})"
        return self._sql

    def release(self) -> None:
        if self._engine is not None:
            self._engine.dispose()  # closes the pooled connections; the next batch opens one again

    def close(self) -> None:
        with self._lock:
            live, self._live = list(self._live.values()), {}
        for lock in live:
            lock.release(ended=False)  # an end not stored is left to the next sweep
        if self._engine is not None:
            self._engine.dispose()
