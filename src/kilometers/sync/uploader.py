"""Forwarding the local store to a team server (``km serve``): lossless, resumable, exactly-once there.

How it holds:

- every event is committed to the local store first (by the store sink); the uploader only reads it
  back, in ``seq`` order, beyond a cursor kept per server in the ``sync_state`` table;
- the cursor moves only after the server acknowledged (2xx) every event up to it, and only forwards
  (a conditional ``UPDATE … WHERE value < new``), so several km processes sharing one store never move
  it back and a crash at any point leaves events to be sent again, never skipped;
- the server is idempotent on event ids, so whatever is sent twice (a crash between the 2xx and the
  cursor write, two processes uploading at once) is stored once.

Ended sessions are sent once more with ``"events": []`` so the server learns their final state
(``ended_at``, ``exit_code``); ``sync_state`` records ``session:<id>`` when that was acknowledged.

The API key is held by the HTTP client only: it is never logged, stored or put in an exception.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, and_, exists, func, literal, select

from .. import jsonlimits
from ..model import Event, Session
from ..store.codec import event_from_row, session_from_row
from ..store.schema import LOCAL_ORG, events, sessions, sync_state
from .client import NoGzip, QuotaExceeded, Rejected, TeamClient, TooLarge, TransientError, backoff_delay
from .state import LAST_UPLOAD, QUOTA, REJECTED, SyncState

MAX_EVENTS_PER_REQUEST = 5000
"""The server refuses larger batches (400), whatever ``batch_size`` says."""
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
"""Uncompressed bytes per request at most (the server's default limit is 10 MB); lowered after a 413."""
MIN_BODY_BYTES = 16 * 1024
SESSIONS_PER_PASS = 100
Progress = Callable[[int], None]
"""Called with the number of events the server just acknowledged."""


# -- small helpers --------------------------------------------------------------------------------


def _pending(cursor: int) -> tuple[Any, Any]:
    """Local events beyond ``cursor``, found by a range of the primary key (``seq``).

    ``org_id || ''`` keeps SQLite from picking the ``org_id`` index instead: in the local store every
    row has org ``local``, so that index selects the whole table, which would then be scanned and
    sorted on every pass (seconds on a large store); the key range reads only the pending rows."""
    return events.c.org_id.concat("") == LOCAL_ORG, events.c.seq > cursor


_NULL_PAYLOAD = b',"payload":null}'
OMITTED_WHEN_NULL = ("mcp_headers",)
"""Fields newer than the team servers still in use may be: left out when empty, so that an
upload to a server one release older (which refuses unknown fields) still stores the event."""


def _wire(event: Event) -> dict[str, Any]:
    data = event.to_dict()
    for name in OMITTED_WHEN_NULL:
        if data.get(name) is None:
            data.pop(name, None)
    return data


def event_body(row: Mapping[str, Any]) -> bytes:
    """One event of an upload request (``Event.to_dict`` as JSON) from its stored row, with the
    stored payload text spliced in as it is: a payload km stored whole is JSON text it already
    checked, so it is neither parsed nor encoded again. A cut payload (sent as text when it is
    no longer JSON) or one that may nest too deep (a store written by an older km) is decided
    by ``Event.to_dict`` as before."""
    event = event_from_row(row)
    payload = event.payload
    if payload is None or event.truncated or jsonlimits.may_be_too_deep(payload):
        return orjson.dumps(_wire(event))
    event.payload = None
    head = orjson.dumps(_wire(event))
    assert head.endswith(_NULL_PAYLOAD)  # to_dict puts the payload last
    return b"".join((head[: -len(_NULL_PAYLOAD)], b',"payload":', payload.encode(), b"}"))


# -- results --------------------------------------------------------------------------------------


@dataclass
class UploadResult:
    events: int = 0
    """Events the server acknowledged (accepted + duplicates + rejected one by one)."""
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    """Events the server refused one by one (kept locally; see ``messages``)."""
    sessions: int = 0
    """Final session states sent."""
    more: bool = False
    """More is pending (the pass stopped at ``batch_size`` events)."""
    messages: list[str] = field(default_factory=list)

    def add(self, other: UploadResult) -> None:
        self.events += other.events
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.sessions += other.sessions
        self.more = other.more
        self.messages.extend(other.messages[: max(0, 20 - len(self.messages))])


@dataclass
class Backlog:
    """What is waiting to be uploaded to one server."""

    by_server: dict[str, int]
    """Pending events per server name (the ``name`` of their session)."""
    sessions: int
    """Ended sessions whose final state has not been sent yet."""
    cursor: int
    last_upload_ns: int | None
    rejected: int
    quota_ns: int | None = None
    """When the server last refused an upload for the plan's monthly limit (None: not refused
    since the last accepted upload)."""
    quota_message: str | None = None

    @property
    def events(self) -> int:
        return sum(self.by_server.values())


@dataclass
class _Chunk:
    """Consecutive events of one session, sent as one request."""

    session_id: str
    seqs: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    size: int = 0


# -- the uploader ---------------------------------------------------------------------------------


class Uploader:
    """Uploads the local store's events beyond the cursor kept for ``api_url``; see the module doc."""

    def __init__(
        self,
        engine: Engine,
        api_url: str,
        api_key: str,
        batch_size: int = 500,
        *,
        timeout: float = 30.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        compress: bool = True,
        host: str | None = None,
    ) -> None:
        self.engine = engine
        self.client = TeamClient(api_url, api_key, timeout=timeout, compress=compress)
        self.target = self.client.target
        self.state = SyncState(engine, self.target)
        self.batch_size = max(1, batch_size)
        self.max_body_bytes = max(MIN_BODY_BYTES, max_body_bytes)
        self.host = host if host is not None else socket.gethostname()[:255]
        self.totals = UploadResult()
        """Everything acknowledged through this uploader (:meth:`sync` resets it)."""

    def __repr__(self) -> str:  # never show the key
        return f"Uploader({self.target!r}, batch_size={self.batch_size})"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> int:
        """Every local event with ``seq`` up to this was acknowledged by the server."""
        return self.state.cursor()

    def acquire_lease(self, owner: str, ttl: float) -> bool:
        """See :meth:`SyncState.acquire_lease` (``km sync`` does not need one)."""
        return self.state.acquire_lease(owner, ttl)

    def release_lease(self, owner: str) -> None:
        self.state.release_lease(owner)

    # -- reading the backlog -------------------------------------------------------------------------

    def _unsent_sessions(self, cursor: int) -> Any:
        """Ended sessions whose final state was not acknowledged and none of whose events is pending."""
        key = literal("session:") + sessions.c.id
        return and_(
            sessions.c.org_id == LOCAL_ORG,
            sessions.c.ended_ns.is_not(None),
            ~exists().where(sync_state.c.target == self.target, sync_state.c.key == key),
            # only the pending events are scanned (a range of the primary key), not each session's
            sessions.c.id.not_in(select(events.c.session_id).where(*_pending(cursor))),
        )

    def backlog(self) -> Backlog:
        cursor = self.cursor()
        # count per session first (one pass over the pending rows), then name the sessions
        per_session = (
            select(events.c.session_id, func.count().label("n"))
            .where(*_pending(cursor))
            .group_by(events.c.session_id)
            .subquery()
        )
        named = per_session.outerjoin(
            sessions, and_(sessions.c.org_id == LOCAL_ORG, sessions.c.id == per_session.c.session_id)
        )
        query = (
            select(sessions.c.name, func.sum(per_session.c.n)).select_from(named).group_by(sessions.c.name)
        )
        with self.engine.connect() as conn:
            by_server: dict[str, int] = {}
            for name, count in conn.execute(query):
                label = name or "(unnamed)"
                by_server[label] = by_server.get(label, 0) + int(count)
            pending_sessions = conn.execute(
                select(func.count()).select_from(sessions).where(self._unsent_sessions(cursor))
            ).scalar_one()
        return Backlog(
            by_server=dict(sorted(by_server.items(), key=lambda kv: (-kv[1], kv[0]))),
            sessions=int(pending_sessions),
            cursor=cursor,
            last_upload_ns=self.state.get_int(LAST_UPLOAD),
            rejected=self.state.get_int(REJECTED) or 0,
            **self.state.quota(),
        )

    def _load_session(self, conn: Any, session_id: str, first_ts_ns: int) -> Session:
        row = conn.execute(
            select(sessions).where(sessions.c.org_id == LOCAL_ORG, sessions.c.id == session_id)
        ).first()
        if row is None:  # not expected (the store sink writes the session first), but never stuck
            return Session(command=[], cwd="", id=session_id, started_ns=first_ts_ns)
        return session_from_row(row._mapping)

    def _session_dict(self, session: Session) -> dict[str, Any]:
        """``Session.to_dict()`` plus the host, within the server's length limits (never refused whole)."""
        data = session.to_dict()
        for key, limit in (("name", 200), ("transport", 32), ("protocol_version", 32)):
            if isinstance(data.get(key), str):
                data[key] = data[key][:limit]
        if self.host:
            data["host"] = self.host
        return data

    # -- sending ------------------------------------------------------------------------------------

    def _request(self, body: bytes, timeout: float | None) -> dict[str, Any]:
        try:
            return self.client.request(body, timeout)
        except QuotaExceeded as exc:
            self.state.note_quota(exc.server_message)
            raise

    def _send(self, session_json: bytes, chunk: _Chunk, timeout: float | None) -> UploadResult:
        """Send one chunk, halving it on 413 until it fits; a lone event too large is rejected."""
        body = b'{"session":' + session_json + b',"events":[' + b",".join(chunk.bodies) + b"]}"
        try:
            data = self._request(body, timeout)
        except TooLarge as exc:
            self.max_body_bytes = max(MIN_BODY_BYTES, min(self.max_body_bytes, len(body) // 2))
            if len(chunk.bodies) == 1:
                return UploadResult(
                    events=1,
                    rejected=1,
                    messages=[f"event {chunk.ids[0]} is too large for the team server ({exc}); kept locally"],
                )
            half = len(chunk.bodies) // 2
            result = UploadResult()
            for part in (slice(0, half), slice(half, None)):
                sub = _Chunk(chunk.session_id, chunk.seqs[part], chunk.ids[part], chunk.bodies[part])
                result.add(self._send(session_json, sub, timeout))
            return result
        errors = data.get("errors") or []
        messages = []
        for err in errors[:5] if isinstance(errors, list) else []:
            if isinstance(err, dict):
                messages.append(f"the server rejected event {err.get('id')}: {err.get('message')}")
        rejected = len(errors) if isinstance(errors, list) else 0
        return UploadResult(
            events=len(chunk.bodies),
            accepted=int(data.get("accepted") or 0),
            duplicates=int(data.get("duplicates") or 0),
            rejected=rejected,
            messages=messages,
        )

    def _chunks(self, rows: Sequence[Any]) -> Iterator[_Chunk]:
        """Consecutive events of one session, at most MAX_EVENTS_PER_REQUEST and ``max_body_bytes``."""
        chunk: _Chunk | None = None
        for row in rows:
            mapping = row._mapping
            body = event_body(mapping)
            if chunk is not None and (
                chunk.session_id != mapping["session_id"]
                or len(chunk.bodies) >= MAX_EVENTS_PER_REQUEST
                or chunk.size + len(body) > self.max_body_bytes
            ):
                yield chunk
                chunk = None
            if chunk is None:
                chunk = _Chunk(mapping["session_id"])
            chunk.seqs.append(mapping["seq"])
            chunk.ids.append(mapping["id"])
            chunk.bodies.append(body)
            chunk.size += len(body) + 1
        if chunk is not None:
            yield chunk

    def has_pending_events(self) -> bool:
        """A cheap check (one primary-key lookup) for events beyond the cursor."""
        cursor = self.cursor()
        with self.engine.connect() as conn:
            row = conn.execute(select(events.c.seq).where(*_pending(cursor)).limit(1)).first()
        return row is not None

    def upload_once(
        self, progress: Progress | None = None, timeout: float | None = None, final_states: bool = True
    ) -> UploadResult:
        """Send up to ``batch_size`` pending events (then, when none is left and ``final_states``, the
        ended sessions' final states). Raises an :class:`UploadError` when the server cannot take them;
        what was acknowledged before stays acknowledged."""
        deadline = None if timeout is None else time.monotonic() + timeout

        def remaining() -> float | None:
            return None if deadline is None else deadline - time.monotonic()

        result = UploadResult()
        cursor = self.cursor()
        query = select(events).where(*_pending(cursor)).order_by(events.c.seq).limit(self.batch_size)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            session_of: dict[str, Session] = {}
            for row in rows:
                sid = row._mapping["session_id"]
                if sid not in session_of:
                    session_of[sid] = self._load_session(conn, sid, row._mapping["ts_ns"])
        session_json = {sid: orjson.dumps(self._session_dict(s)) for sid, s in session_of.items()}
        for chunk in self._chunks(rows):
            left = remaining()
            if left is not None and left <= 0:
                result.more = True
                return result
            part = self._send(session_json[chunk.session_id], chunk, left)
            self.state.advance(chunk.seqs[-1])
            session = session_of.pop(chunk.session_id, None)
            if session is not None and session.ended_ns is not None:
                # the server now has its final state: no separate update needed
                self.state.write(f"session:{session.id}", str(session.ended_ns))
            self.state.note_rejected(part.rejected)
            self.state.write(LAST_UPLOAD, str(time.time_ns()))
            if part.accepted:
                self.state.delete(QUOTA)  # the server takes events again
            result.add(part)
            self.totals.add(part)
            if progress is not None:
                progress(part.events)
        if len(rows) >= self.batch_size:
            result.more = True
            return result
        if final_states:
            result.add(self._send_final_states(cursor=self.cursor(), remaining=remaining))
        return result

    def _send_final_states(self, cursor: int, remaining: Callable[[], float | None]) -> UploadResult:
        result = UploadResult()
        query = (
            select(sessions)
            .where(self._unsent_sessions(cursor))
            .order_by(sessions.c.started_ns)
            .limit(SESSIONS_PER_PASS + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows[:SESSIONS_PER_PASS]:
            left = remaining()
            if left is not None and left <= 0:
                result.more = True
                return result
            session = session_from_row(row._mapping)
            data = self._session_dict(session)
            try:
                self._request(orjson.dumps({"session": data, "events": []}), left)
            except TooLarge as exc:
                raise Rejected(f"the final state of session {session.id} is too large ({exc})") from None
            self.state.write(f"session:{session.id}", str(session.ended_ns))
            result.sessions += 1
            self.totals.sessions += 1
        result.more = len(rows) > SESSIONS_PER_PASS
        return result

    def check(self) -> None:
        """Raise an :class:`UploadError` unless the server is reachable and accepts the key, storing
        nothing: the request carries no batch, so a server that took the key answers 400 (malformed)."""
        try:
            self.client.post(b"{}", None)
        except QuotaExceeded as exc:
            self.state.note_quota(exc.server_message)
            raise
        except Rejected as exc:
            if "HTTP 400" in str(exc) or "HTTP 422" in str(exc):
                return
            raise
        except (TooLarge, NoGzip):
            return

    def sync(
        self,
        progress: Progress | None = None,
        retries: int = 3,
        max_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> UploadResult:
        """Upload the whole backlog now. Transient failures are retried ``retries`` times in a row (with
        backoff, or as long as ``Retry-After`` says when that is at most ``max_wait`` s); then the last
        error is raised. Events acknowledged before a failure stay acknowledged (and counted in
        :attr:`totals`)."""
        self.totals = UploadResult()
        failures = 0
        while True:
            try:
                part = self.upload_once(progress)
            except TransientError as exc:
                failures += 1
                wait = exc.retry_after if exc.retry_after is not None else backoff_delay(failures, cap=10.0)
                if failures > retries or wait > max_wait:
                    raise
                sleep(wait)
                continue
            failures = 0
            if not part.more:
                return self.totals
