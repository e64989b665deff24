"""Rollups per minute, hour and day, updated in the ingest transaction, and the statistics
computed from them.

Latency is kept as a log-scale histogram: bin ``b`` holds latencies in
``(BASE * GROWTH**(b-1), BASE * GROWTH**b]`` ms, so a percentile read from the bins is within
about 10% of the true value, whatever the data size, and no query ever scans raw events.

A statistics window reads whole days from the day table, whole hours at its edges from the hour
table and the remaining minutes from the minute table, so a week costs about as much as a day.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Select,
    Table,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    tuple_,
    union_all,
)

from . import bulk
from .db import upsert
from .schema import rollups, rollups_day, rollups_hour, sessions

BASE_MS = 0.01
GROWTH = 1.2
MAX_BIN = 120  # ~ 3.4e5 s: anything slower lands in the last bin
NO_LATENCY = -1
BYTES_PER_TOKEN = 4
"""Rough size of a token of JSON/text in bytes: ``est_tokens`` is an estimate, labelled as such."""


def latency_bin(latency_ms: float) -> int:
    if latency_ms <= BASE_MS:
        return 0
    return min(MAX_BIN, math.ceil(math.log(latency_ms / BASE_MS, GROWTH)))


def bin_value(b: int) -> float:
    """A representative latency for a bin (its geometric middle)."""
    if b <= 0:
        return BASE_MS
    return float(BASE_MS * GROWTH ** (b - 0.5))


@dataclass
class Cell:
    events: int = 0
    requests: int = 0
    errors: int = 0
    bytes: int = 0
    latency_sum: float = 0.0


def rollup_rows(org_id: str, server: str, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregate stored event rows into rollup increments."""
    cells: dict[tuple[int, str, str, int], Cell] = defaultdict(Cell)
    for e in events:
        latency = e["latency_ms"]
        multi_round = e.get("round") is not None
        if multi_round and e["kind"] in ("response", "error"):
            # one multi-round call is one latency: the whole call's, on its final answer
            latency = e.get("call_latency_ms")
        b = NO_LATENCY if latency is None else latency_bin(latency)
        cell = cells[(e["ts_ns"] // 60_000_000_000, e["method"] or "", e["tool"] or "", b)]
        cell.events += 1
        # one multi-round call is one call: its retries (rounds 2, 3...) are not counted again
        cell.requests += e["kind"] in ("request", "notification") and not (multi_round and e["round"] > 1)
        cell.errors += bool(e["is_error"])
        cell.bytes += e["size_bytes"]
        cell.latency_sum += latency or 0.0
    return [
        {
            "org_id": org_id,
            "minute": minute,
            "server": server,
            "method": method,
            "tool": tool,
            "bin": b,
            "events": c.events,
            "requests": c.requests,
            "errors": c.errors,
            "bytes": c.bytes,
            "latency_sum": c.latency_sum,
        }
        for (minute, method, tool, b), c in cells.items()
    ]


LEVELS: tuple[tuple[Table, int], ...] = ((rollups_day, 1440), (rollups_hour, 60), (rollups, 1))
"""The rollup tables, coarsest first, with their width in minutes."""
KEY = ("org_id", "minute", "server", "method", "tool", "bin")
COUNTS = ("events", "requests", "errors", "bytes", "latency_sum")


def coarsen(rows: Sequence[dict[str, Any]], width: int) -> list[dict[str, Any]]:
    """Per-minute rollup rows summed into ``width``-minute rows, sorted by key (so concurrent
    batches lock rows in the same order)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] if k != "minute" else row[k] // width * width for k in KEY)
        into = merged.get(key)
        if into is None:
            merged[key] = {**row, "minute": key[1]}
        else:
            for c in COUNTS:
                into[c] += row[c]
    return [merged[k] for k in sorted(merged)]


def _adding(stmt: Any, table: Table) -> Any:
    """``stmt`` as an upsert that adds its counts to an existing row."""
    return stmt.on_conflict_do_update(
        index_elements=list(KEY), set_={c: table.c[c] + stmt.excluded[c] for c in COUNTS}
    )


def upsert_rollups(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add per-minute rollup rows (from :func:`rollup_rows`) to the minute, hour and day tables,
    each table's rows sorted by key (so concurrent batches lock the rows they share in the same
    order, and never wait for each other in a cycle). On PostgreSQL one array statement per
    table (:mod:`.bulk`), whatever the number of rows."""
    if not rows:
        return
    for table, width in reversed(LEVELS):
        merged = coarsen(rows, width)
        if conn.dialect.name == "postgresql":
            bulk.add_counts(conn, table, merged, KEY, COUNTS)
        else:
            conn.execute(_adding(upsert(conn, table), table), merged)


def trim_rollups(conn: Connection, org_id: str, cutoff_minute: int) -> None:
    """Forget everything before ``cutoff_minute`` (retention). The hour and day that straddle the
    cutoff are rebuilt from the minute table, so they count only what is kept."""
    conn.execute(delete(rollups).where(rollups.c.org_id == org_id, rollups.c.minute < cutoff_minute))
    for table, width in LEVELS[:-1]:
        start = cutoff_minute // width * width
        straddles = start != cutoff_minute
        end = start + width if straddles else cutoff_minute
        conn.execute(delete(table).where(table.c.org_id == org_id, table.c.minute < end))
        if not straddles:
            continue
        r = rollups.c
        refill = (
            select(
                r.org_id,
                literal(start, BigInteger),
                r.server,
                r.method,
                r.tool,
                r.bin,
                *(func.sum(r[c]) for c in COUNTS),
            )
            .where(r.org_id == org_id, r.minute >= start, r.minute < start + width)
            .group_by(r.org_id, r.server, r.method, r.tool, r.bin)
        )
        conn.execute(_adding(upsert(conn, table).from_select([*KEY, *COUNTS], refill), table))


def plan(first: int, end: int, levels: Sequence[tuple[Table, int]]) -> list[tuple[Table, int, int]]:
    """Cover minutes ``[first, end)`` with as few rollup rows as possible: (table, from, to) parts,
    whole units of the coarsest table in the middle and finer tables at the edges."""
    if first >= end:
        return []
    table, width = levels[0]
    if width == 1:
        return [(table, first, end)]
    lo, hi = -(-first // width) * width, end // width * width
    if lo >= hi:
        return plan(first, end, levels[1:])
    return [*plan(first, lo, levels[1:]), (table, lo, hi), *plan(hi, end, levels[1:])]


@dataclass
class Group:
    events: int = 0
    requests: int = 0
    errors: int = 0
    bytes: int = 0
    latency_sum: float = 0.0
    response_bytes: int = 0
    bins: dict[int, int] = field(default_factory=dict)

    def add(self, b: int, events: int, requests: int, errors: int, size: int, latency_sum: float) -> None:
        self.events += events
        self.requests += requests
        self.errors += errors
        self.bytes += size
        self.latency_sum += latency_sum
        if b != NO_LATENCY:
            self.bins[b] = self.bins.get(b, 0) + events
            self.response_bytes += size

    def percentile(self, q: float) -> float | None:
        total = sum(self.bins.values())
        if not total:
            return None
        rank = max(1, math.ceil(q / 100 * total))
        seen = 0
        for b in sorted(self.bins):
            seen += self.bins[b]
            if seen >= rank:
                return round(bin_value(b), 3)
        return None  # pragma: no cover

    def to_dict(self) -> dict[str, Any]:
        answered = sum(self.bins.values())
        return {
            "events": self.events,
            "calls": self.requests,
            "errors": self.errors,
            "error_rate": round(self.errors / self.requests, 4) if self.requests else 0.0,
            "bytes": self.bytes,
            "response_bytes": self.response_bytes,
            "est_tokens": self.response_bytes // BYTES_PER_TOKEN,
            "latency_avg_ms": round(self.latency_sum / answered, 3) if answered else None,
            "p50_ms": self.percentile(50),
            "p95_ms": self.percentile(95),
            "p99_ms": self.percentile(99),
        }


def _grouped(
    conn: Connection, org_id: str, first: int, end: int, width: int, tool: str | None, server: str | None
) -> Iterable[Any]:
    """The rollup rows of minutes ``[first, end)`` summed in the database twice: by (series slot,
    bin), and by (server, method, tool, bin) with a NULL slot. A week of hourly rows (tens of
    thousands) comes out as a few thousand: Python adds up only what each answer needs."""
    parts: list[Select[Any]] = []
    # a table coarser than the bucket cannot place its rows in the series
    for table, lo, hi in plan(first, end, [(t, w) for t, w in LEVELS if w <= width]):
        r = table.c
        slot = ((r.minute // width) * width) if width > 1 else r.minute
        query = select(slot.label("slot"), r.server, r.method, r.tool, r.bin, *(r[c] for c in COUNTS)).where(
            r.org_id == org_id, r.minute >= lo, r.minute < hi
        )
        if tool is not None:
            query = query.where(r.tool == tool)
        if server is not None:
            query = query.where(r.server == server)
        parts.append(query)
    if not parts:
        return ()
    u = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("u")
    sums = [func.sum(u.c[c]) for c in COUNTS]
    if conn.dialect.name == "postgresql":  # one pass over the rows for both groupings
        dims = (u.c.server, u.c.method, u.c.tool, u.c.bin)
        # a column outside a row's grouping set is NULL there: the slot of the (dims) rows
        both = func.grouping_sets(tuple_(u.c.slot, u.c.bin), tuple_(*dims))
        return conn.execute(select(u.c.slot, *dims, *sums).group_by(both))
    none = null()
    by_slot = select(u.c.slot, none, none, none, u.c.bin, *sums).group_by(u.c.slot, u.c.bin)
    by_dims = select(none, u.c.server, u.c.method, u.c.tool, u.c.bin, *sums).group_by(
        u.c.server, u.c.method, u.c.tool, u.c.bin
    )
    return [*conn.execute(by_slot), *conn.execute(by_dims)]


BUCKETS = {"minute": 1, "hour": 60, "day": 1440}


def stats(
    engine: Engine,
    org_id: str,
    since_ns: int,
    until_ns: int,
    bucket: str = "hour",
    tool: str | None = None,
    server: str | None = None,
) -> dict[str, Any]:
    """Time-bucketed counts and latency percentiles by method, tool and server, from rollups only.
    ``tool`` / ``server`` narrow everything (series included) to one tool or server."""
    first, end = since_ns // 60_000_000_000, (until_ns - 1) // 60_000_000_000 + 1
    width = BUCKETS[bucket]
    total = Group()
    series: dict[int, Group] = defaultdict(Group)
    by_method: dict[str, Group] = defaultdict(Group)
    by_tool: dict[tuple[str, str], Group] = defaultdict(Group)
    by_server: dict[str, Group] = defaultdict(Group)
    with engine.connect() as conn:
        for slot, row_server, method, row_tool, b, ev, req, err, size, lat in _grouped(
            conn, org_id, first, end, width, tool, server
        ):
            values = (b, int(ev), int(req), int(err), int(size), float(lat))
            if slot is not None:  # a series point
                series[int(slot)].add(*values)
                continue
            total.add(*values)
            by_method[method].add(*values)
            if row_tool:
                by_tool[(row_server, row_tool)].add(*values)
            by_server[row_server].add(*values)
        s = sessions.c
        active = conn.execute(
            select(func.count())
            .select_from(sessions)
            .where(
                s.org_id == org_id,
                s.started_ns < until_ns,
                or_(s.ended_ns.is_(None), s.ended_ns >= since_ns),
            )
        ).scalar()
        running = conn.execute(
            select(func.count())
            .select_from(sessions)
            .where(s.org_id == org_id, s.started_ns < until_ns, s.ended_ns.is_(None))
        ).scalar()
    from .queries import risky_events

    totals = total.to_dict()
    totals["active_sessions"] = int(active or 0)
    totals["running_sessions"] = int(running or 0)
    totals["findings"] = risky_events(engine, org_id, since_ns, until_ns)
    return {
        "since": since_ns,
        "until": until_ns,
        "bucket": bucket,
        "totals": totals,
        "series": [{"minute": m, **g.to_dict()} for m, g in sorted(series.items())],
        "by_method": [{"method": k, **g.to_dict()} for k, g in sorted(by_method.items()) if k],
        "by_tool": [{"server": s, "tool": t, **g.to_dict()} for (s, t), g in sorted(by_tool.items())],
        "by_server": [{"server": k, **g.to_dict()} for k, g in sorted(by_server.items())],
    }
