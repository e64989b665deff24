"""What the uploader remembers per team server, in the store's ``sync_state`` table: the
cursor (every event up to it was acknowledged), the last upload, events refused one by one, the
last quota refusal, the final states sent, and the lease that keeps one process uploading at a
time. Each change is one statement (atomic on SQLite and PostgreSQL alike), so several km
processes sharing one store never interleave a read and a write, and the cursor only moves
forwards."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from sqlalchemy import BigInteger, Engine, Text, and_, cast, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from ..model import new_id
from ..store.schema import sync_state

CURSOR = "cursor"
LAST_UPLOAD = "last_upload_ns"
REJECTED = "rejected_events"
QUOTA = "quota_exceeded"
"""``<time ns> <the server's message>`` of the last 402, until an upload is accepted again."""
LEASE = "lease"


class SyncState:
    """The ``sync_state`` rows of one server (``target``, its API URL) in one store."""

    def __init__(self, engine: Engine, target: str) -> None:
        self.engine = engine
        self.target = target

    def where(self, key: str) -> Any:
        return and_(sync_state.c.target == self.target, sync_state.c.key == key)

    def get(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(sync_state.c.value).where(self.where(key))).scalar()
        return None if value is None else str(value)

    def get_int(self, key: str) -> int | None:
        value = self.get(key)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def write(self, key: str, value: str, only_if: Any = None) -> bool:
        """Set ``key`` (when ``only_if`` holds for an existing row); True when this call changed it."""
        for _ in range(5):
            where = self.where(key) if only_if is None else and_(self.where(key), only_if)
            with self.engine.begin() as conn:
                if conn.execute(update(sync_state).where(where).values(value=value)).rowcount:
                    return True
                if conn.execute(select(literal(1)).where(self.where(key))).first() is not None:
                    return False  # present, and the condition does not hold
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(sync_state).values(target=self.target, key=key, value=value))
                return True
            except IntegrityError:
                continue  # another process inserted it just now: apply the condition to its row
        return False

    def delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sync_state).where(self.where(key)))

    # -- the cursor and counters ---------------------------------------------------------------------

    def cursor(self) -> int:
        """Every local event with ``seq`` up to this was acknowledged by the server."""
        return self.get_int(CURSOR) or 0

    def advance(self, seq: int) -> None:
        """Move the cursor to ``seq``, never back (a late process cannot undo a later one)."""
        self.write(CURSOR, str(seq), cast(sync_state.c.value, BigInteger) < seq)

    def note_rejected(self, count: int) -> None:
        """Count events the server refused one by one (shown by ``km status``)."""
        if not count:
            return
        total = cast(cast(sync_state.c.value, BigInteger) + count, Text)
        for _ in range(5):
            with self.engine.begin() as conn:
                if conn.execute(update(sync_state).where(self.where(REJECTED)).values(value=total)).rowcount:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(sync_state).values(target=self.target, key=REJECTED, value=str(count))
                    )
                return
            except IntegrityError:
                continue

    def note_quota(self, message: str) -> None:
        self.write(QUOTA, f"{time.time_ns()} {message}")

    def quota(self) -> dict[str, Any]:
        """``quota_ns`` and ``quota_message`` of the last 402 still in force (empty: none)."""
        when, _, message = (self.get(QUOTA) or "").partition(" ")
        if not when.isdigit():
            return {}
        return {"quota_ns": int(when), "quota_message": message}

    # -- leases: one uploader at a time per store and server -------------------------------------

    def acquire_lease(self, owner: str, ttl: float) -> bool:
        """Become (or stay) the one process uploading from this store to this server for ``ttl`` s.

        Several ``km monitor`` processes share a store; without a lease each would send the same
        events (harmless, the server deduplicates, but wasteful). ``km sync`` does not need one."""
        now = time.time_ns()
        value = f"{now + int(ttl * 1e9):020d} {owner}"
        expired_or_mine = sync_state.c.value.endswith(" " + owner, autoescape=True) | (
            sync_state.c.value < f"{now:020d}"
        )
        if self.write(LEASE, value, expired_or_mine):
            return True
        # held: take it over at once if its holder is a process of this machine that no longer runs
        current = self.get(LEASE)
        if current is not None and _holder_is_gone(current.partition(" ")[2]):
            return self.write(LEASE, value, sync_state.c.value == current)
        return False

    def release_lease(self, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(sync_state)
                .where(self.where(LEASE), sync_state.c.value.endswith(" " + owner, autoescape=True))
                .values(value=f"{0:020d} {owner}")
            )


def lease_owner() -> str:
    """A token naming this process for :meth:`Uploader.acquire_lease`: ``host:pid:unique``."""
    return f"{socket.gethostname()}:{os.getpid()}:{new_id()}"


def _holder_is_gone(owner: str) -> bool:
    """True when ``owner`` (see :func:`lease_owner`) names a process of this host that has exited."""
    try:
        host, pid_text, _ = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    return False
