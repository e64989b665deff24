"""Reading findings back: one row per element of an event's ``findings`` (the security view).

A finding lives inside its event's risk (``events.findings``, a JSON array written by
:func:`kilometers.store.codec.event_row` or the team server's ingest). The array is expanded
in SQL, ``json_each`` on SQLite and ``json_array_elements`` on PostgreSQL, so filters, order
and keyset pages apply to findings, not events. Only events with findings are read: their
``risk_score`` is set (the ``(org_id, risk_score)`` index), an event without any has NULL.

On PostgreSQL the array is cast to ``json`` (not ``jsonb``, which refuses a ``\\u0000`` a
finding's path may hold) and a field is compared as its JSON text (``value -> 'rule'``), never
unescaped in SQL; every stored array was serialised by orjson, so that text is canonical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import (
    JSON,
    BindParameter,
    ColumnElement,
    Engine,
    FromClause,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    select,
    true,
    tuple_,
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


class _Elements:
    """The findings array of ``events`` as rows, and its fields, in the engine's dialect."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"
        if self.pg:
            fn = (
                # PostgreSQL's json operators refuse a \u0000 they unescape: such text reads as an
                # escaped backslash here; a finding's own fields come from the stored text
                func.json_array_elements(cast(func.replace(events.c.findings, "\\u0000", "\\\\u0000"), JSON))
                .table_valued("value", with_ordinality="idx")
                .render_derived("finding")
            )
            self.table: FromClause = fn
            self.index: ColumnElement[int] = fn.c.idx - 1
        else:
            fn = func.json_each(events.c.findings).table_valued("key", "value")
            self.table = fn
            self.index = fn.c.key
        self._fn = fn

    def field(self, name: str) -> ColumnElement[Any]:
        """A field of the finding, comparable with :meth:`lit` (PostgreSQL: its JSON text)."""
        if self.pg:
            return cast(self._fn.c.value.op("->")(literal(name, Text)), Text)
        return func.json_extract(self._fn.c.value, f"$.{name}")

    def lit(self, value: str) -> str:
        return orjson.dumps(value).decode() if self.pg else value

    def decode(self, value: Any) -> Any:
        if not self.pg or value is None:
            return value
        return orjson.loads(value)

    def severity_rank(self) -> ColumnElement[int]:
        whens = {self.lit(s): rank for rank, s in enumerate(SEVERITIES)}
        return case(whens, value=self.field("severity"), else_=0)

    def rule_matches(self, rule: str) -> ColumnElement[bool]:
        column = self.field("rule")
        if rule.endswith("*"):
            prefix = self.lit(rule[:-1])
            return column.startswith(prefix[:-1] if self.pg else prefix, autoescape=True)
        return column == self.lit(rule)


def _clauses(flt: FindingFilter, el: _Elements) -> list[ColumnElement[bool]]:
    c = events.c
    out: list[ColumnElement[bool]] = [c.org_id == flt.org_id, c.risk_score >= 0]
    if flt.session_id:
        out.append(c.session_id == flt.session_id)
    if flt.session_ids is not None:
        # as literals: a long list must not exceed the bind limits
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
    if flt.rule:
        out.append(el.rule_matches(flt.rule))
    if flt.severities:
        ranks = sorted({SEVERITIES.index(s) for s in flt.severities})
        out.append(el.severity_rank().in_(ranks))
    if flt.min_severity is not None:
        out.append(el.severity_rank() >= SEVERITIES.index(flt.min_severity))
    return out


def encode_cursor(row: FindingRow) -> str:
    return f"{SEVERITIES.index(row.severity)}_{row.ts_ns}_{row.event_id}_{row.index}"


def decode_cursor(cursor: str) -> tuple[int, int, str, int]:
    if _CURSOR.fullmatch(cursor) is None:
        raise BadCursor("invalid cursor: pass back the next_cursor of a previous page unchanged")
    rank, ts, ident, index = cursor.split("_")
    return int(rank), min(int(ts), _MAX_NS), ident, int(index)


def _server_label(name: str | None, server_json: str | None) -> str | None:
    if name:
        return name
    reported = _load(server_json)
    found = reported.get("name") if isinstance(reported, dict) else None
    return found if isinstance(found, str) else None


def page_findings(
    engine: Engine, flt: FindingFilter, limit: int, cursor: str | None = None, sort: Sort = "newest"
) -> tuple[list[FindingRow], str | None]:
    """Findings in ``sort`` order (``severity``: highest first, then newest), keyset-paginated."""
    c, s = events.c, sessions.c
    el = _Elements(engine.dialect.name)
    rank = el.severity_rank()
    key = tuple_(rank, c.ts_ns, c.id, el.index) if sort == "severity" else tuple_(c.ts_ns, c.id, el.index)
    clauses = _clauses(flt, el)
    if cursor:
        r, ts, ident, index = decode_cursor(cursor)
        after = (r, ts, ident, index) if sort == "severity" else (ts, ident, index)
        clauses.append(key > tuple_(*after) if sort == "oldest" else key < tuple_(*after))
    order = [rank.desc()] if sort == "severity" else []
    if sort == "oldest":
        order += [c.ts_ns.asc(), c.id.asc(), el.index.asc()]
    else:
        order += [c.ts_ns.desc(), c.id.desc(), el.index.desc()]
    query = (
        select(
            c.id,
            c.session_id,
            c.ts_ns,
            el.index,
            c.findings,
            rank,
            c.tool,
            c.method,
            c.kind,
            c.direction,
            c.risk_level,
            s.name,
            s.server,
        )
        .select_from(events)
        .join(el.table, true())
        .outerjoin(sessions, and_(s.org_id == c.org_id, s.id == c.session_id))
        .where(and_(*clauses))
        .order_by(*order)
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        rows = [_finding_row(r) for r in conn.execute(query)]
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1])
    return rows, None


def _finding_row(r: Any) -> FindingRow:
    (ident, session_id, ts_ns, index, stored, rank, tool, method, kind, direction, level, name, server) = r
    every = _load(stored)
    data = every[index] if isinstance(every, list) and 0 <= index < len(every) else None
    data = data if isinstance(data, dict) else {}
    path, message = data.get("path", ""), data.get("message", "")
    return FindingRow(
        event_id=ident,
        session_id=session_id,
        ts_ns=int(ts_ns),
        index=int(index),
        rule=str(data.get("rule", "")),
        severity=SEVERITIES[int(rank)],
        path=path if isinstance(path, str) else "",
        message=message if isinstance(message, str) else "",
        server=_server_label(name, server),
        tool=tool,
        method=method,
        kind=kind,
        direction=direction,
        event_level=level or "none",
    )


@dataclass
class FindingSummary:
    total: int
    by_severity: dict[str, int]
    groups: list[FindingGroup]


def summarize_findings(engine: Engine, flt: FindingFilter, group: Group = "rule") -> FindingSummary:
    """Findings grouped by rule or by server: counts per severity, sessions, first and last seen;
    the groups ordered by their highest severity, then by count."""
    c, s = events.c, sessions.c
    el = _Elements(engine.dialect.name)
    rank = el.severity_rank()
    rule = el.field("rule")
    each = (
        select(c.session_id, c.ts_ns, rule.label("rule"), rank.label("rank"))
        .select_from(events)
        .join(el.table, true())
        .where(and_(*_clauses(flt, el)))
        .subquery()
    )
    query = (
        select(
            each.c.session_id,
            s.name,
            s.server,
            each.c.rule,
            each.c.rank,
            func.count(),
            func.min(each.c.ts_ns),
            func.max(each.c.ts_ns),
        )
        .select_from(each)
        .outerjoin(sessions, and_(s.org_id == flt.org_id, s.id == each.c.session_id))
        .group_by(each.c.session_id, s.name, s.server, each.c.rule, each.c.rank)
    )
    groups: dict[str, FindingGroup] = {}
    total = 0
    by_severity = dict.fromkeys(SEVERITIES, 0)
    with engine.connect() as conn:
        for session_id, name, server, rule_value, r, count, first, last in conn.execute(query):
            rule_id = el.decode(rule_value)
            rule_id = rule_id if isinstance(rule_id, str) else ""
            server_name = _server_label(name, server) or "(unknown server)"
            key, other = (rule_id, server_name) if group == "rule" else (server_name, rule_id)
            g = groups.get(key) or groups.setdefault(key, FindingGroup(key))
            severity = SEVERITIES[int(r)]
            g.count += int(count)
            g.by_severity[severity] += int(count)
            g.first_ns = min(g.first_ns, int(first))
            g.last_ns = max(g.last_ns, int(last))
            g.sessions.add(session_id)
            g.others.add(other)
            total += int(count)
            by_severity[severity] += int(count)
    ordered = sorted(groups.values(), key=lambda g: (-SEVERITIES.index(g.highest), -g.count, g.key))
    return FindingSummary(total, by_severity, ordered)
