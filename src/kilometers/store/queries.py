"""Reading the store back: sessions, events, a single event, live tail and per-method statistics."""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    tuple_,
)

from ..jsonrpc import CANCELLED, INPUT_REQUIRED, TASK
from ..model import LEVELS, Event, Session
from .codec import event_from_row, session_from_row
from .schema import LOCAL_ORG, events, sessions


class NotFound(LookupError):
    pass


def _match(conn: Connection, query: Select[Any], column: ColumnElement[str], ref: str) -> list[Row[Any]]:
    """Rows whose id starts with ``ref``, else ends with it (ids are time-ordered, so their
    random tail is the distinctive part). At most two rows: enough to detect ambiguity."""
    rows = list(conn.execute(query.where(column.startswith(ref, autoescape=True)).limit(2)))
    if not rows and len(ref) >= 4:
        rows = list(conn.execute(query.where(column.endswith(ref, autoescape=True)).limit(2)))
    return rows


def server_matches(name: str | None, server: dict[str, Any] | None, pattern: str) -> bool:
    """Whether a session's server matches a glob (fnmatch, case-sensitive): by the name km gave
    it (``--name``, the client's entry) or by the name the server reports."""
    reported = (server or {}).get("name")
    return any(isinstance(n, str) and fnmatch.fnmatchcase(n, pattern) for n in (name, reported))


def no_server(pattern: str) -> NotFound:
    """The error for a ``--server`` that matches no recorded session."""
    return NotFound(f"no session of a server matching {pattern!r} (`km sessions` shows each one's server)")


def server_sessions(
    engine: Engine, pattern: str, org_id: str = LOCAL_ORG, limit: int | None = None
) -> list[str]:
    """The ids of the sessions whose server matches ``pattern`` (:func:`server_matches`),
    newest first."""
    return [s.id for s in list_sessions(engine, limit, org_id, server=pattern)]


def list_sessions(
    engine: Engine, limit: int | None = 50, org_id: str = LOCAL_ORG, server: str | None = None
) -> list[Session]:
    """The newest ``limit`` sessions (all: None), or those of the servers matching the glob
    ``server``."""
    query = select(sessions).where(sessions.c.org_id == org_id).order_by(sessions.c.started_ns.desc())
    if server is None and limit is not None:
        query = query.limit(limit)
    found: list[Session] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            session = session_from_row(row._mapping)
            if server is None or server_matches(session.name, session.server, server):
                found.append(session)
                if len(found) == limit:
                    break
    return found


def resolve_session(engine: Engine, ref: str, org_id: str = LOCAL_ORG) -> str:
    """``latest``, a full id or a unique id prefix (or suffix) -> the session id; else a server
    name (or glob, see :func:`server_matches`) -> the id of that server's latest session."""
    with engine.connect() as conn:
        if ref == "latest":
            row = conn.execute(
                select(sessions.c.id)
                .where(sessions.c.org_id == org_id)
                .order_by(sessions.c.started_ns.desc())
                .limit(1)
            ).first()
            if row is None:
                raise NotFound("no sessions recorded yet: run a server through `km monitor -- CMD` first")
            return str(row[0])
        rows = _match(conn, select(sessions.c.id).where(sessions.c.org_id == org_id), sessions.c.id, ref)
    if not rows:
        latest = server_sessions(engine, ref, org_id, limit=1)
        if latest:
            return latest[0]
        raise NotFound(f"no session matches {ref!r}: no session id, nor a server's name (see `km sessions`)")
    if len(rows) > 1:
        raise NotFound(f"{ref!r} matches several sessions; give more characters of the id (or its end)")
    return str(rows[0][0])


def get_session(engine: Engine, session_id: str, org_id: str = LOCAL_ORG) -> Session:
    with engine.connect() as conn:
        row = conn.execute(
            select(sessions).where(sessions.c.org_id == org_id, sessions.c.id == session_id)
        ).first()
    if row is None:
        raise NotFound(f"no session {session_id!r}")
    return session_from_row(row._mapping)


@dataclass
class EventFilter:
    org_id: str = LOCAL_ORG
    session_id: str | None = None
    session_ids: list[str] | None = None
    """Only events of these sessions (``--server``: see :func:`server_sessions`)."""
    method: str | None = None
    tool: str | None = None
    kinds: list[str] = field(default_factory=list)
    errors_only: bool = False
    since_ns: int | None = None
    until_ns: int | None = None
    text: str | None = None
    """Case-insensitive substring of the stored payload."""
    min_level: str | None = None
    """Only events whose stored risk level is at least this one (``low`` … ``critical``)."""
    """Only events whose risk score is at least this."""

    def clauses(self) -> list[ColumnElement[bool]]:
        c = events.c
        out: list[ColumnElement[bool]] = [c.org_id == self.org_id]
        if self.session_id:
            out.append(c.session_id == self.session_id)
        if self.session_ids is not None:  # as literals: a long list must not exceed the bind limits
            ids: BindParameter[list[str]] = bindparam(
                "ids", self.session_ids, expanding=True, literal_execute=True, unique=True
            )
            out.append(c.session_id.in_(ids))
        if self.method:
            out.append(c.method == self.method)
        if self.tool:
            out.append(c.tool == self.tool)
        if self.kinds:
            out.append(c.kind.in_(self.kinds))
        if self.errors_only:  # errors, and cancelled requests with their cancellations
            out.append(or_(c.is_error.is_(True), is_cancellation(), c.id.in_(cancelled_ids(self.org_id))))
        if self.since_ns is not None:
            out.append(c.ts_ns >= self.since_ns)
        if self.until_ns is not None:
            out.append(c.ts_ns < self.until_ns)
        if self.text:
            out.append(func.lower(c.payload).contains(self.text.lower(), autoescape=True))
        if self.min_level is not None:  # risky rows only (the partial index), then the stored level
            out.append(and_(c.risk_score >= 1, level_rank() >= LEVELS.index(self.min_level)))
        return out

    def without_text(self) -> EventFilter:
        return replace(self, text=None)


def list_events(engine: Engine, flt: EventFilter, limit: int = 100) -> list[Event]:
    """The newest ``limit`` matching events, returned oldest first."""
    query = (
        select(events)
        .where(and_(*flt.clauses()))
        .order_by(events.c.ts_ns.desc(), events.c.seq.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = [event_from_row(r._mapping) for r in conn.execute(query)]
    rows.reverse()
    return rows


def events_after(engine: Engine, seq: int, flt: EventFilter, limit: int = 1000) -> list[tuple[int, Event]]:
    """Events stored after position ``seq`` (for ``km tail -f``), oldest first."""
    query = select(events).where(and_(events.c.seq > seq, *flt.clauses())).order_by(events.c.seq).limit(limit)
    with engine.connect() as conn:
        return [(r._mapping["seq"], event_from_row(r._mapping)) for r in conn.execute(query)]


def last_seq(engine: Engine) -> int:
    with engine.connect() as conn:
        row = conn.execute(select(events.c.seq).order_by(events.c.seq.desc()).limit(1)).first()
    return int(row[0]) if row else 0


def get_event(engine: Engine, ref: str, org_id: str = LOCAL_ORG) -> Event:
    with engine.connect() as conn:
        rows = _match(conn, select(events).where(events.c.org_id == org_id), events.c.id, ref)
    if not rows:
        raise NotFound(f"no event matches {ref!r} (see `km events`)")
    if len(rows) > 1:
        raise NotFound(f"{ref!r} matches several events; give more characters of the id (or its end)")
    return event_from_row(rows[0]._mapping)


def paired_event(engine: Engine, event: Event, org_id: str = LOCAL_ORG) -> Event | None:
    """The response to a request, or the request a response answers."""
    c = events.c
    cond = c.id == event.request_event_id if event.request_event_id else c.request_event_id == event.id
    with engine.connect() as conn:
        row = conn.execute(select(events).where(c.org_id == org_id, cond).limit(1)).first()
    return event_from_row(row._mapping) if row else None


def is_cancellation() -> ColumnElement[bool]:
    """A ``notifications/cancelled`` linked to the request it cancels."""
    return and_(events.c.method == CANCELLED, events.c.call_id.is_not(None))


def cancelled_ids(org_id: str) -> Select[Any]:
    """The ids of the cancelled requests of an organization (a subquery)."""
    e = events.alias("cancellations")
    return select(e.c.call_id).where(e.c.org_id == org_id, e.c.method == CANCELLED, e.c.call_id.is_not(None))


def cancelled(engine: Engine, ids: list[str], org_id: str = LOCAL_ORG) -> set[str]:
    """Which of these request events were cancelled (``notifications/cancelled`` names them)."""
    if not ids:
        return set()
    c = events.c
    query = select(c.call_id).where(c.org_id == org_id, c.method == CANCELLED, c.call_id.in_(ids))
    with engine.connect() as conn:
        return {str(r[0]) for r in conn.execute(query)}


@dataclass
class Call:
    """One logical call: its first request and every event linked to it, oldest first."""

    id: str
    events: list[Event]

    @property
    def rounds(self) -> int:
        """Rounds of a multi-round call (1 for a plain call)."""
        return max((e.round for e in self.events if e.round is not None), default=1)

    @property
    def answers(self) -> list[Event]:
        """The call's own responses: the first request's and each round's (not a task's)."""
        return [
            e
            for e in self.events
            if e.kind in ("response", "error") and (e.request_event_id == self.id or e.round is not None)
        ]

    @property
    def state(self) -> str:
        """``cancelled``, ``error``, ``input_required`` (waiting for the client's retry), ``task``
        (a task runs it), ``answered``, or ``pending`` (no answer recorded)."""
        if any(e.method == CANCELLED for e in self.events):
            return "cancelled"
        answers = self.answers
        if not answers:
            return "pending"
        last = answers[-1]
        if last.is_error:
            return "error"
        kind = result_type(last)
        return kind if kind in (INPUT_REQUIRED, TASK) else "answered"

    def to_dict(self) -> dict[str, Any]:
        latency = next((e.call_latency_ms for e in self.events if e.call_latency_ms is not None), None)
        if latency is None and self.rounds == 1 and self.answers:
            latency = self.answers[-1].latency_ms
        return {
            "id": self.id,
            "state": self.state,
            "rounds": self.rounds,
            "latency_ms": latency,
            "events": [
                {
                    "id": e.id,
                    "kind": e.kind,
                    "direction": e.direction,
                    "method": e.method,
                    "jsonrpc_id": e.jsonrpc_id,
                    "round": e.round,
                }
                for e in self.events
            ],
        }


def result_type(e: Event) -> str | None:
    """The ``resultType`` of a stored result (None when absent, or when the payload was cut)."""
    if e.kind != "response" or e.payload is None or "resultType" not in e.payload:
        return None
    try:
        value = orjson.loads(e.payload)
    except orjson.JSONDecodeError:
        return None
    result = value.get("result") if isinstance(value, dict) else None
    kind = result.get("resultType") if isinstance(result, dict) else None
    return kind if isinstance(kind, str) else None


def call_of(engine: Engine, event: Event, org_id: str = LOCAL_ORG) -> Call | None:
    """The logical call an event belongs to (or opens), when anything is linked to it."""
    root = event.call_id or event.id
    c = events.c
    linked = or_(c.id == root, c.call_id == root, c.request_event_id == root)
    query = select(events).where(c.org_id == org_id, linked)
    with engine.connect() as conn:
        found = [event_from_row(r._mapping) for r in conn.execute(query.order_by(c.ts_ns, c.seq))]
    if event.call_id is None and not any(e.call_id == root for e in found):
        return None  # nothing linked to it: a plain request and its answer
    return Call(root, found)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class StatRow:
    method: str
    tool: str | None
    count: int = 0
    errors: int = 0
    cancelled: int = 0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        lat = sorted(self.latencies)
        return {
            "method": self.method,
            "tool": self.tool,
            "count": self.count,
            "errors": self.errors,
            "cancelled": self.cancelled,
            "bytes": self.bytes,
            "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95),
            "p99_ms": percentile(lat, 99),
        }


def stats(engine: Engine, flt: EventFilter) -> list[StatRow]:
    """Per method and tool: calls (requests and notifications), errors, cancelled requests,
    latency percentiles, bytes. A multi-round call counts once, with its total latency (its
    first request to its final answer); the rounds' bytes count."""
    c = events.c
    query = select(
        c.kind, c.method, c.tool, c.latency_ms, c.is_error, c.size_bytes, c.round, c.call_latency_ms
    ).where(and_(c.method.is_not(None), *flt.clauses()))
    rows: dict[tuple[str, str | None], StatRow] = {}

    def row_of(method: str, tool: str | None) -> StatRow:
        row = rows.get((method, tool))
        if row is None:
            row = rows[(method, tool)] = StatRow(method, tool)
        return row

    # the requests the matching cancellations name, counted under the request's method and tool
    request = events.alias("request")
    cancellations = (
        select(request.c.method, request.c.tool, func.count())
        .join_from(events, request, and_(request.c.org_id == c.org_id, request.c.id == c.call_id))
        .where(and_(is_cancellation(), *flt.clauses()))
        .group_by(request.c.method, request.c.tool)
    )
    with engine.connect() as conn:
        for kind, method, tool, latency, is_error, size, round_, call_latency in conn.execute(query):
            row = row_of(method, tool)
            row.bytes += size
            if kind in ("request", "notification"):
                if round_ is None or round_ < 2:  # a retry is a round of the same call
                    row.count += 1
                continue
            if is_error:
                row.errors += 1
            if round_ is not None:  # a round's answer: the call's latency is on its final one
                latency = call_latency
            if latency is not None:
                row.latencies.append(latency)
        for method, tool, count in conn.execute(cancellations):
            if method is not None:
                row_of(method, tool).cancelled += int(count)
    return sorted(rows.values(), key=lambda r: (-r.count, r.method, r.tool or ""))


class BadCursor(ValueError):
    pass


CURSOR_PATTERN = r"^[0-9]{1,19}_[0-9A-Za-z-]{1,64}$"
"""A page cursor: ``<time in ns>_<id>`` of the last row of the previous page (the API declares it)."""
_CURSOR = re.compile(CURSOR_PATTERN)
_MAX_NS = 2**63 - 1


def _encode_cursor(ts_ns: int, ident: str) -> str:
    return f"{ts_ns}_{ident}"


def _decode_cursor(cursor: str) -> tuple[int, str]:
    """(time in ns, id) of a cursor matching :data:`CURSOR_PATTERN`, anything else is a
    :class:`BadCursor`. A time past the 64-bit range the databases store starts at the newest."""
    found = _CURSOR.fullmatch(cursor)
    if found is None:
        raise BadCursor("invalid cursor: pass back the next_cursor of a previous page unchanged")
    ts, ident = cursor.split("_", 1)
    return min(int(ts), _MAX_NS), ident


TEXT_SCAN_ROWS = 20_000
"""Events one free-text page reads at most (newest first). A substring of the payload cannot use
an index, so without a bound a rare word means reading every payload (seconds at 1M events on
PostgreSQL); with it, a page answers in ~0.1-0.3 s and its cursor continues further back."""


@dataclass
class EventPage:
    items: list[Event]
    next_cursor: str | None
    searched_to_ns: int | None = None
    """Set when a free-text page stopped at its scan bound: older events were not searched yet
    (``next_cursor`` continues from there)."""


def page_events(
    engine: Engine, flt: EventFilter, limit: int, cursor: str | None = None, oldest_first: bool = False
) -> EventPage:
    """Newest first (or ``oldest_first``), keyset-paginated on (ts_ns, id). With free text, one
    page reads at most ``TEXT_SCAN_ROWS`` events and may hold fewer than ``limit`` matches."""
    c = events.c

    def beyond(ts: int, ident: str, inclusive: bool = False) -> list[ColumnElement[bool]]:
        """Rows after (ts, ident) in reading order: the plain range lets the (org_id, ts_ns)
        and (org_id, session_id, ts_ns) indexes bound the scan; the OR makes it exact."""
        if oldest_first:
            same = c.id >= ident if inclusive else c.id > ident
            return [c.ts_ns >= ts, or_(c.ts_ns > ts, and_(c.ts_ns == ts, same))]
        same = c.id <= ident if inclusive else c.id < ident
        return [c.ts_ns <= ts, or_(c.ts_ns < ts, and_(c.ts_ns == ts, same))]

    def within(ts: int, ident: str) -> list[ColumnElement[bool]]:
        """Rows up to and including (ts, ident) in reading order."""
        if oldest_first:
            return [c.ts_ns <= ts, or_(c.ts_ns < ts, and_(c.ts_ns == ts, c.id <= ident))]
        return [c.ts_ns >= ts, or_(c.ts_ns > ts, and_(c.ts_ns == ts, c.id >= ident))]

    after: list[ColumnElement[bool]] = []
    if cursor:
        after = beyond(*_decode_cursor(cursor))
    clauses = [*flt.clauses(), *after]
    order = (c.ts_ns.asc(), c.id.asc()) if oldest_first else (c.ts_ns.desc(), c.id.desc())
    with engine.connect() as conn:
        bound = None
        if flt.text:
            # the last of the next TEXT_SCAN_ROWS events, text aside: read in index order
            bound = conn.execute(
                select(c.ts_ns, c.id)
                .where(and_(*flt.without_text().clauses(), *after))
                .order_by(*order)
                .offset(TEXT_SCAN_ROWS - 1)
                .limit(1)
            ).first()
            if bound is not None:
                clauses += within(bound[0], bound[1])
        query = select(events).where(and_(*clauses)).order_by(*order).limit(limit + 1)
        rows = [event_from_row(r._mapping) for r in conn.execute(query)]
    if len(rows) > limit:
        rows = rows[:limit]
        return EventPage(rows, _encode_cursor(rows[-1].ts_ns, rows[-1].id))
    if bound is not None:  # the scan bound, not the data, ended this page: go on from there
        return EventPage(rows, _encode_cursor(bound[0], bound[1]), searched_to_ns=int(bound[0]))
    return EventPage(rows, None)


def page_sessions(
    engine: Engine, org_id: str, limit: int, cursor: str | None = None, min_level: str | None = None
) -> tuple[list[Session], str | None]:
    """Newest first, keyset-paginated on (started_ns, id); with ``min_level``, only the sessions
    with an event at that risk level or above."""
    c = sessions.c
    clauses: list[ColumnElement[bool]] = [c.org_id == org_id]
    if min_level is not None:  # risky rows only (the partial index), then the stored level
        e = events.c
        risky = select(e.session_id).where(
            e.org_id == org_id, e.risk_score >= 1, level_rank() >= LEVELS.index(min_level)
        )
        clauses.append(c.id.in_(risky))
    if cursor:
        ts, ident = _decode_cursor(cursor)
        clauses.append(tuple_(c.started_ns, c.id) < tuple_(ts, ident))
    query = select(sessions).where(and_(*clauses)).order_by(c.started_ns.desc(), c.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = [session_from_row(r._mapping) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (_encode_cursor(rows[-1].started_ns, rows[-1].id) if more and rows else None)


# A stored risk level was decided once, by the scale the recording was analysed with (a policy
# may set its own thresholds): queries compare levels (LEVELS), never re-derive them from scores.


def level_rank() -> ColumnElement[int]:
    """The stored risk level's rank (0 for none or no findings), for comparisons in SQL."""
    return case({level: rank for rank, level in enumerate(LEVELS)}, value=events.c.risk_level, else_=0)


def session_risk(
    engine: Engine, session_ids: list[str], org_id: str = LOCAL_ORG
) -> dict[str, dict[str, Any]]:
    """Per session: events with findings and the highest risk (uses the (org_id, risk_score) index)."""
    if not session_ids:
        return {}
    c = events.c
    query = (
        select(c.session_id, func.count(), func.max(c.risk_score), func.max(level_rank()))
        .where(c.org_id == org_id, c.risk_score >= 1, c.session_id.in_(session_ids))
        .group_by(c.session_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out = {sid: {"events_with_findings": 0, "max_score": 0, "level": "none"} for sid in session_ids}
    for sid, count, top, rank in rows:
        out[sid] = {"events_with_findings": int(count), "max_score": int(top), "level": LEVELS[int(rank)]}
    return out


def risky_events(engine: Engine, org_id: str, since_ns: int, until_ns: int) -> int:
    """Events with findings in a time window (only risky rows are touched, through the partial index
    ``ix_events_org_risky_ts``)."""
    c = events.c
    query = select(func.count()).where(
        c.org_id == org_id, c.risk_score >= 1, c.ts_ns >= since_ns, c.ts_ns < until_ns
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)
