"""The local store sink: batched inserts into SQLite (or any SQLAlchemy URL), off the forwarding path."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, insert, update

from ..log import once
from ..model import Event, Session
from ..sinks import Sink
from . import db
from .codec import event_row, session_row
from .live import LiveLock
from .rollups import COUNTS, WRITTEN, coarsen, rollup_rows
from .schema import LOCAL_ORG, events, sessions

_log = logging.getLogger(__name__)

RETRY_OPEN_SECONDS = 5.0
_PROBE = Event(
    session_id="", ts_ns=0, direction="client_to_server", kind="invalid", size_bytes=0, payload=None
)


def _insert(table: str, names: Sequence[str], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(mark for _ in names)})"


@dataclass(frozen=True, slots=True)
class _Statements:
    """The SQL of a batch, written once per store in the driver's parameter style and run on the
    driver's cursor (whose statement cache prepares each one once per connection)."""

    events: str
    rollups: tuple[tuple[str, int, tuple[str, ...]], ...]
    """Upserts adding to each rollup table, with the table's width in minutes and the columns of
    its parameters (its key, then the counts)."""
    counts: str

    @classmethod
    def for_engine(cls, engine: Engine) -> _Statements:
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        names = list(event_row(_PROBE).keys())
        return cls(
            events=_insert(events.name, names, mark),
            rollups=tuple(
                (
                    _insert(table.name, (*key, *COUNTS), mark)
                    + f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                    + ", ".join(f"{c} = {table.name}.{c} + excluded.{c}" for c in COUNTS),
                    width,
                    (*key, *COUNTS),
                )
                for table, width, key in WRITTEN
            ),
            counts=f"UPDATE {sessions.name} SET event_count = {mark}, error_count = {mark} "
            f"WHERE org_id = {mark} AND id = {mark}",
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
        self._sql: _Statements | None = None
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

    def adopt(self, session: Session) -> None:
        """A session whose row is in the store already (resumed after the agent went away): its
        later writes update that row."""
        self._written(session)

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
        if not batch:
            return
        engine = self._ready()
        if engine is None:
            self._count_lost(session, len(batch))
            return
        try:
            # the rows are built before the transaction opens: it holds the store's write lock
            rows = [event_row(e) for e in batch]
            server = session.name or (session.server or {}).get("name") or ""
            minutes = rollup_rows(LOCAL_ORG, str(server)[:200], rows)
            sql = self._statements(engine)
            with engine.begin() as conn:
                if session.id not in self._written_ids:
                    conn.execute(insert(sessions).values(session_row(session)))
                # the driver's own cursor and prepared statements: SQLAlchemy's statement building
                # and per-row processing were half of the store's cost per message (benchmarks.md)
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                try:
                    cursor.executemany(sql.events, [tuple(r.values()) for r in rows])
                    # per-minute, hour and day rollups, as on the team server, so km ui's charts
                    # work on local data
                    for statement, width, columns in sql.rollups:
                        key = columns[: -len(COUNTS)]
                        cursor.executemany(
                            statement, [tuple(r[c] for c in columns) for r in coarsen(minutes, width, key)]
                        )
                    cursor.execute(
                        sql.counts, (session.event_count, session.error_count, LOCAL_ORG, session.id)
                    )
                finally:
                    cursor.close()
            self._written(session)
        except Exception as exc:
            self._count_lost(session, len(batch))
            self._warn(exc)

    def _statements(self, engine: Engine) -> _Statements:
        if self._sql is None:
            self._sql = _Statements.for_engine(engine)
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
