"""Reading findings back: one item per element of an event's ``findings`` (the security view).

A finding lives inside its event's risk (``events.findings``, a JSON array written by orjson
through :func:`kilometers.store.codec.event_row` or the team server's ingest). Only events with
findings are read (their ``risk_score`` is set: the ``(org_id, risk_score)`` index; an event
without any has NULL), in the order of the ``(org_id, ts_ns)`` index, a chunk at a time, and
their arrays are expanded here, so a page of findings stops reading as soon as it is full.

Filters on an event's columns (session, tool, time) are SQL. A rule or severity filter is first
a substring of the stored array (``"rule":"secret.``, which orjson's compact text always
holds for such a finding), then checked exactly on each decoded finding: the substring only
spares decoding the arrays that cannot match. The same code serves SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Engine,
    and_,
    bindparam,
    case,
    false,
    null,
    or_,
    select,
)

from .codec import _load
from .queries import BadCursor
from .schema import LOCAL_ORG, events, sessions

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
"""Finding severities in order (kilometers.analysis.findings.SEVERITIES; the store may not import
analysis, a test keeps the two equal). An unknown severity counts as ``info``, as
:meth:`~kilometers.analysis.findings.Finding.from_dict` reads it."""

Sort = Literal["newest", "oldest", "severity"]
Group = Literal["rule", "server"]

CURSOR_PATTERN = r"^[0-4]_[0-9]{1,19}_[0-9A-Za-z-]{1,64}_[0-9]{1,6}$"
"""A findings page cursor: ``<severity rank>_<event time in ns>_<event id>_<index in the event>``
of the last finding of the previous page."""
_CURSOR = re.compile(CURSOR_PATTERN)
_MAX_NS = 2**63 - 1
CHUNK = 500
"""Events read per query while filling a page."""


@dataclass
class FindingFilter:
    org_id: str = LOCAL_ORG
    session_id: str | None = None
    session_ids: list[str] | None = None
    """Only findings of these sessions (a server: :func:`kilometers.store.queries.server_sessions`)."""
    tool: str | None = None
    rule: str | None = None
    """A rule id, or a family ending in ``*`` (``secret.*``)."""
    severities: list[str] = field(default_factory=list)
    min_severity: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None

    def ranks(self) -> set[int]:
        """The severity ranks a finding may have."""
        out = set(range(len(SEVERITIES)))
        if self.severities:
            out &= {SEVERITIES.index(s) for s in self.severities}
        if self.min_severity is not None:
            out &= set(range(SEVERITIES.index(self.min_severity), len(SEVERITIES)))
        return out

    def rule_matches(self, rule: str) -> bool:
        if not self.rule:
            return True
        return rule.startswith(self.rule[:-1]) if self.rule.endswith("*") else rule == self.rule


@dataclass(frozen=True)
class FindingRow:
    event_id: str
    session_id: str
    ts_ns: int
    index: int
    """Position of the finding in its event's ``risk.findings``."""
    rule: str
    severity: str
    path: str
    message: str
    server: str | None
    tool: str | None
    method: str | None
    kind: str
    direction: str
    event_level: str

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self.severity)


@dataclass
class FindingGroup:
    key: str
    count: int = 0
    by_severity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SEVERITIES, 0))
    first_ns: int = _MAX_NS
    last_ns: int = 0
    sessions: set[str] = field(default_factory=set)
    others: set[str] = field(default_factory=set)
    """The servers a rule was found on, or the rules found on a server."""

    @property
    def highest(self) -> str:
        return next(s for s in reversed(SEVERITIES) if self.by_severity[s]) if self.count else "info"


@dataclass
class FindingSummary:
    total: int
    by_severity: dict[str, int]
    groups: list[FindingGroup]


def _json_text(value: str) -> str:
    return orjson.dumps(value).decode()


def _clauses(flt: FindingFilter) -> list[ColumnElement[bool]]:
    """SQL on the event's own columns: the events with findings that the filter may want."""
    c = events.c
    out: list[ColumnElement[bool]] = [c.org_id == flt.org_id, c.risk_score >= 0]
    if flt.session_id:
        out.append(c.session_id == flt.session_id)
    if flt.session_ids is not None:  # as literals: a long list must not exceed the bind limits
        ids: BindParameter[list[str]] = bindparam(
            "ids", flt.session_ids, expanding=True, literal_execute=True, unique=True
        )
        out.append(c.session_id.in_(ids))
    if flt.tool:
        out.append(c.tool == flt.tool)
    if flt.since_ns is not None:
        out.append(c.ts_ns >= flt.since_ns)
    if flt.until_ns is not None:
        out.append(c.ts_ns < flt.until_ns)
    return out


def _prefilter(flt: FindingFilter, ranks: set[int], stored: ColumnElement[str]) -> ColumnElement[bool] | None:
    """Substrings the stored array has when it may hold a matching finding (None: any array)."""
    if not ranks:  # the severity filters exclude each other: no finding matches
        return false()
    out: list[ColumnElement[bool]] = []
    if flt.rule:
        family = flt.rule.endswith("*")
        text = _json_text(flt.rule[:-1] if family else flt.rule)
        out.append(stored.contains('"rule":' + (text[:-1] if family else text), autoescape=True))
    if 0 not in ranks:  # "info" also stands for unknown severities: no substring for those
        out.append(or_(*(stored.contains(f'"severity":"{SEVERITIES[r]}"') for r in sorted(ranks))))
    return and_(*out) if out else None


_COLUMNS = (
    events.c.id,
    events.c.session_id,
    events.c.ts_ns,
    events.c.findings,
    events.c.tool,
    events.c.method,
    events.c.kind,
    events.c.direction,
    events.c.risk_level,
)


def _events(
    engine: Engine,
    flt: FindingFilter,
    ranks: set[int],
    oldest_first: bool,
    after: tuple[int, str] | None,
) -> Iterator[Sequence[Any]]:
    """The events that may hold a matching finding in (ts_ns, id) order, from just after
    ``after``: a chunk of the events with findings per query, read in index order, of which the
    substring filter (:func:`_prefilter`) keeps the arrays that can match. Filtering inside the
    chunk, rather than in the scan, keeps the plan an ordered index walk whatever the database
    estimates about the substring (PostgreSQL otherwise reads and sorts every risky event)."""
    c = events.c
    clauses = _clauses(flt)
    while True:
        bound: list[ColumnElement[bool]] = []
        if after is not None:
            ts, ident = after
            # the plain range lets the (org_id, ts_ns) index bound the scan; the OR makes it exact
            if oldest_first:
                bound = [c.ts_ns >= ts, or_(c.ts_ns > ts, and_(c.ts_ns == ts, c.id > ident))]
            else:
                bound = [c.ts_ns <= ts, or_(c.ts_ns < ts, and_(c.ts_ns == ts, c.id < ident))]
        order = (c.ts_ns.asc(), c.id.asc()) if oldest_first else (c.ts_ns.desc(), c.id.desc())
        chunk = select(*_COLUMNS).where(and_(*clauses, *bound)).order_by(*order).limit(CHUNK).subquery()
        k = chunk.c
        wanted = _prefilter(flt, ranks, k.findings)
        stored = k.findings if wanted is None else case((wanted, k.findings), else_=null())
        inner = (k.ts_ns.asc(), k.id.asc()) if oldest_first else (k.ts_ns.desc(), k.id.desc())
        query = select(
            k.id, k.session_id, k.ts_ns, stored, k.tool, k.method, k.kind, k.direction, k.risk_level
        ).order_by(*inner)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        yield from (r for r in rows if r[3] is not None)
        if len(rows) < CHUNK:
            return
        after = (int(rows[-1][2]), str(rows[-1][0]))


def _severity(value: Any) -> str:
    return value if isinstance(value, str) and value in SEVERITIES else "info"


def _expand(row: Sequence[Any], flt: FindingFilter, ranks: set[int]) -> list[FindingRow]:
    """The event's matching findings, in their stored order (server names are filled in later)."""
    ident, session_id, ts_ns, stored, tool, method, kind, direction, level = row
    every = _load(stored)
    out: list[FindingRow] = []
    for index, f in enumerate(every if isinstance(every, list) else []):
        if not isinstance(f, dict):
            continue
        rule, severity = f.get("rule"), _severity(f.get("severity"))
        rule = rule if isinstance(rule, str) else ""
        if SEVERITIES.index(severity) not in ranks or not flt.rule_matches(rule):
            continue
        path, message = f.get("path", ""), f.get("message", "")
        out.append(
            FindingRow(
                event_id=ident,
                session_id=session_id,
                ts_ns=int(ts_ns),
                index=index,
                rule=rule,
                severity=severity,
                path=path if isinstance(path, str) else "",
                message=message if isinstance(message, str) else "",
                server=None,
                tool=tool,
                method=method,
                kind=kind,
                direction=direction,
                event_level=level or "none",
            )
        )
    return out


def encode_cursor(row: FindingRow) -> str:
    return f"{row.rank}_{row.ts_ns}_{row.event_id}_{row.index}"


def decode_cursor(cursor: str) -> tuple[int, int, str, int]:
    if _CURSOR.fullmatch(cursor) is None:
        raise BadCursor("invalid cursor: pass back the next_cursor of a previous page unchanged")
    rank, ts, ident, index = cursor.split("_")
    return int(rank), min(int(ts), _MAX_NS), ident, int(index)


def _in_time_order(
    engine: Engine,
    flt: FindingFilter,
    ranks: set[int],
    oldest_first: bool,
    cursor: tuple[int, str, int] | None,
) -> Iterator[FindingRow]:
    """Findings in event time order; within an event in stored order (oldest first) or the
    reverse (newest first), so both orders are exact reverses of each other."""
    if not ranks:
        return
    after = None if cursor is None else (cursor[0], cursor[1])
    if cursor is not None:  # the rest of the cursor's own event first
        ts, ident, index = cursor
        row = _one_event(engine, flt.org_id, ident, ts)
        if row is not None:
            found = _expand(row, flt, ranks)
            rest = [f for f in found if (f.index > index if oldest_first else f.index < index)]
            yield from rest if oldest_first else reversed(rest)
    for row in _events(engine, flt, ranks, oldest_first, after):
        found = _expand(row, flt, ranks)
        yield from found if oldest_first else reversed(found)


def _one_event(engine: Engine, org_id: str, ident: str, ts_ns: int) -> Sequence[Any] | None:
    c = events.c
    with engine.connect() as conn:
        return conn.execute(
            select(*_COLUMNS).where(c.org_id == org_id, c.id == ident, c.ts_ns == ts_ns, c.risk_score >= 0)
        ).first()


def _by_severity(
    engine: Engine, flt: FindingFilter, ranks: set[int], cursor: tuple[int, int, str, int] | None
) -> Iterator[FindingRow]:
    """The highest severity first, then newest first: one time-ordered pass per severity."""
    for rank in sorted(ranks, reverse=True):
        if cursor is not None and rank > cursor[0]:
            continue
        at = cursor[1:] if cursor is not None and rank == cursor[0] else None
        yield from _in_time_order(engine, flt, {rank}, False, at)


def _name_servers(engine: Engine, org_id: str, rows: list[FindingRow]) -> list[FindingRow]:
    labels = _server_labels(engine, org_id, {r.session_id for r in rows})
    return [replace(r, server=labels.get(r.session_id)) for r in rows]


def _server_labels(engine: Engine, org_id: str, session_ids: set[str]) -> dict[str, str | None]:
    """Each session's server: the name km gave it, else the name the server reported."""
    if not session_ids:
        return {}
    s = sessions.c
    ids: BindParameter[list[str]] = bindparam(
        "sids", sorted(session_ids), expanding=True, literal_execute=True, unique=True
    )
    with engine.connect() as conn:
        rows = conn.execute(select(s.id, s.name, s.server).where(s.org_id == org_id, s.id.in_(ids))).all()
    out: dict[str, str | None] = {}
    for ident, name, server in rows:
        reported = _load(server)
        found = reported.get("name") if isinstance(reported, dict) else None
        out[ident] = name or (found if isinstance(found, str) else None)
    return out


def page_findings(
    engine: Engine, flt: FindingFilter, limit: int, cursor: str | None = None, sort: Sort = "newest"
) -> tuple[list[FindingRow], str | None]:
    """Findings in ``sort`` order (``severity``: the highest first, then the newest),
    keyset-paginated; a page reads events only until it is full."""
    ranks = flt.ranks()
    after = decode_cursor(cursor) if cursor else None
    if sort == "severity":
        found: Iterator[FindingRow] = _by_severity(engine, flt, ranks, after)
    else:
        found = _in_time_order(engine, flt, ranks, sort == "oldest", after[1:] if after else None)
    rows: list[FindingRow] = []
    for row in found:
        rows.append(row)
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = _name_servers(engine, flt.org_id, rows[:limit])
    return rows, (encode_cursor(rows[-1]) if more else None)


def summarize_findings(engine: Engine, flt: FindingFilter, group: Group = "rule") -> FindingSummary:
    """Findings grouped by rule or by server: counts per severity, sessions, first and last seen;
    the groups ordered by their highest severity, then by count."""
    ranks = flt.ranks()
    # (session, rule, severity) -> [count, first, last]: few keys, however many findings
    cells: dict[tuple[str, str, str], list[int]] = {}
    c = events.c
    wanted = _prefilter(flt, ranks, c.findings)
    query = select(c.session_id, c.ts_ns, c.findings).where(
        and_(*_clauses(flt), *([] if wanted is None else [wanted]))
    )
    # events repeat the same findings (the same tool, the same leak): each distinct array is
    # decoded once (grouping by the array in SQL instead made SQLite sort every one: 10x slower)
    decoded: dict[str, list[tuple[str, str]]] = {}
    if ranks:
        with engine.connect() as conn:
            for session_id, ts_ns, stored in conn.execute(query):
                found = decoded.get(stored)
                if found is None:
                    found = decoded[stored] = _matching(stored, flt, ranks)
                for rule, severity in found:
                    cell = cells.get((session_id, rule, severity))
                    if cell is None:
                        cells[(session_id, rule, severity)] = [1, ts_ns, ts_ns]
                    else:
                        cell[0] += 1
                        cell[1] = min(cell[1], ts_ns)
                        cell[2] = max(cell[2], ts_ns)
    labels = _server_labels(engine, flt.org_id, {sid for sid, _, _ in cells})
    groups: dict[str, FindingGroup] = {}
    by_severity = dict.fromkeys(SEVERITIES, 0)
    for (session_id, rule, severity), (count, first, last) in cells.items():
        server = labels.get(session_id) or "(unknown server)"
        key, other = (rule, server) if group == "rule" else (server, rule)
        g = groups.get(key) or groups.setdefault(key, FindingGroup(key))
        g.count += count
        g.by_severity[severity] += count
        g.first_ns = min(g.first_ns, int(first))
        g.last_ns = max(g.last_ns, int(last))
        g.sessions.add(session_id)
        g.others.add(other)
        by_severity[severity] += count
    ordered = sorted(groups.values(), key=lambda g: (-SEVERITIES.index(g.highest), -g.count, g.key))
    return FindingSummary(sum(by_severity.values()), by_severity, ordered)


def _matching(stored: str | None, flt: FindingFilter, ranks: set[int]) -> list[tuple[str, str]]:
    """(rule, severity) of each finding of a stored array that the filter wants."""
    every = _load(stored)
    out = []
    for f in every if isinstance(every, list) else []:
        if not isinstance(f, dict):
            continue
        rule, severity = f.get("rule"), _severity(f.get("severity"))
        rule = rule if isinstance(rule, str) else ""
        if SEVERITIES.index(severity) in ranks and flt.rule_matches(rule):
            out.append((rule, severity))
    return out
