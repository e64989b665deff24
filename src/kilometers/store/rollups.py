"""Rollups per minute, hour and day, updated in the ingest transaction, and the statistics
computed from them.

Latency is kept as a log-scale histogram: bin ``b`` holds latencies in
``(BASE * GROWTH**(b-1), BASE * GROWTH**b]`` ms, so a percentile read from the bins is within
about 10% of the true value, whatever the data size, and no query ever scans raw events.

A statistics window reads whole days from the day table, whole hours at its edges from the hour
table and the remaining minutes from the minute table, so a week costs about as much as a day.
Its series (one point per bucket) cannot use a table coarser than the bucket: in hour buckets it
reads the org's own hour table (``rollups_org_hour``: no server, method or tool split) unless the
window is narrowed to one tool or server.
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
    cast,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from . import bulk
from .db import upsert
from .schema import rollups, rollups_day, rollups_hour, rollups_org_hour, sessions

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
ORG_KEY = ("org_id", "minute", "bin")
"""The key of ``rollups_org_hour``: the org's counts per hour and bin, every server together."""
COUNTS = ("events", "requests", "errors", "bytes", "latency_sum")
WRITTEN: tuple[tuple[Table, int, tuple[str, ...]], ...] = (
    (rollups, 1, KEY),
    (rollups_hour, 60, KEY),
    (rollups_day, 1440, KEY),
    (rollups_org_hour, 60, ORG_KEY),
)
"""Every rollup table with its width in minutes and its key, in the order a batch adds to them
(always the same order, so concurrent batches never wait for each other in a cycle)."""


def coarsen(rows: Sequence[dict[str, Any]], width: int, key: Sequence[str] = KEY) -> list[dict[str, Any]]:
    """Per-minute rollup rows summed into ``width``-minute rows of ``key`` (and the counts), sorted
    by key (so concurrent batches lock rows in the same order)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        k = tuple(row[c] if c != "minute" else row[c] // width * width for c in key)
        into = merged.get(k)
        if into is None:
            merged[k] = {**dict(zip(key, k, strict=True)), **{c: row[c] for c in COUNTS}}
        else:
            for c in COUNTS:
                into[c] += row[c]
    return [merged[k] for k in sorted(merged)]


def _adding(stmt: Any, table: Table, key: Sequence[str] = KEY) -> Any:
    """``stmt`` as an upsert that adds its counts to an existing row."""
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: table.c[c] + stmt.excluded[c] for c in COUNTS}
    )


def upsert_rollups(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Add per-minute rollup rows (from :func:`rollup_rows`) to every rollup table (:data:`WRITTEN`),
    each table's rows sorted by key (so concurrent batches lock the rows they share in the same
    order, and never wait for each other in a cycle). On PostgreSQL one array statement per
    table (:mod:`.bulk`), whatever the number of rows."""
    if not rows:
        return
    for table, width, key in WRITTEN:
        merged = coarsen(rows, width, key)
        if conn.dialect.name == "postgresql":
            bulk.add_counts(conn, table, merged, key, COUNTS)
        else:
            conn.execute(_adding(upsert(conn, table), table, key), merged)


def trim_rollups(conn: Connection, org_id: str, cutoff_minute: int) -> None:
    """Forget everything before ``cutoff_minute`` (retention). The hour and day that straddle the
    cutoff are rebuilt from the minute table, so they count only what is kept."""
    conn.execute(delete(rollups).where(rollups.c.org_id == org_id, rollups.c.minute < cutoff_minute))
    for table, width, key in WRITTEN[1:]:
        start = cutoff_minute // width * width
        straddles = start != cutoff_minute
        end = start + width if straddles else cutoff_minute
        conn.execute(delete(table).where(table.c.org_id == org_id, table.c.minute < end))
        if not straddles:
            continue
        r = rollups.c
        dims = [r[c] for c in key if c != "minute"]
        refill = (
            select(
                *(literal(start, BigInteger) if c == "minute" else r[c] for c in key),
                *(func.sum(r[c]) for c in COUNTS),
            )
            .where(r.org_id == org_id, r.minute >= start, r.minute < start + width)
            .group_by(*dims)
        )
        conn.execute(_adding(upsert(conn, table).from_select([*key, *COUNTS], refill), table, key))


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


def _rows(
    levels: Sequence[tuple[Table, int]],
    org_id: str,
    first: int,
    end: int,
    width: int,
    tool: str | None,
    server: str | None,
    dims: bool,
) -> Any:
    """The rollup rows of minutes ``[first, end)`` from ``levels`` (coarsest in the middle): their
    (server, method, tool) if ``dims``, else their series slot (``width`` minutes); bin and counts."""
    parts: list[Select[Any]] = []
    for table, lo, hi in plan(first, end, levels):
        r = table.c
        slot = ((r.minute // width) * width) if width > 1 else r.minute
        head = (r.server, r.method, r.tool) if dims else (slot.label("slot"),)
        query = select(*head, r.bin, *(r[c] for c in COUNTS)).where(
            r.org_id == org_id, r.minute >= lo, r.minute < hi
        )
        if tool is not None:
            query = query.where(r.tool == tool)
        if server is not None:
            query = query.where(r.server == server)
        parts.append(query)
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery()


def _grouped(
    conn: Connection, org_id: str, first: int, end: int, width: int, tool: str | None, server: str | None
) -> Iterable[Any]:
    """The rollup rows of minutes ``[first, end)`` in two sets, each read from the fewest rows
    that give it exactly: by (series slot, bin), from the tables no coarser than the bucket (the
    org's own hour table in hour buckets when nothing narrows the window: its rows come as they
    are, each one (slot, bin) already), and summed by (server, method, tool, bin) with a NULL
    slot, from the day table for whole days whatever the bucket. A week in hour buckets is
    ~8,300 + ~6,000 rows at 10M events, not 2 x 25,000; Python adds up what each answer needs."""
    if first >= end:
        return ()
    # a table coarser than the bucket cannot place its rows in the series
    series_levels = [(t, w) for t, w in LEVELS if w <= width]
    org_series = width == 60 and tool is None and server is None
    if org_series:
        series_levels = [(rollups_org_hour if t is rollups_hour else t, w) for t, w in series_levels]
    s = _rows(series_levels, org_id, first, end, width, tool, server, dims=False)
    d = _rows(LEVELS, org_id, first, end, width, tool, server, dims=True)
    none = null()
    if org_series:
        # each org hour row is one (slot, bin) already: grouping them in the database cost more
        # than Python adding the few minute rows at the edges into their slots
        by_slot = select(s.c.slot, none, none, none, s.c.bin, *(s.c[c] for c in COUNTS))
    else:
        by_slot = select(s.c.slot, none, none, none, s.c.bin, *_sums(s)).group_by(s.c.slot, s.c.bin)
    by_dims = select(none, d.c.server, d.c.method, d.c.tool, d.c.bin, *_sums(d)).group_by(
        d.c.server, d.c.method, d.c.tool, d.c.bin
    )
    if conn.dialect.name == "postgresql":
        # a parallel plan (which PostgreSQL picks for a week) starts its workers for a few
        # thousand rows: 46 -> 34 ms in process at 10M events; for this transaction only
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
    # every row at once: the driver's row-by-row fetch cost more than the query on PostgreSQL
    return conn.execute(union_all(by_slot, by_dims)).all()


def _sums(rows: Any) -> list[Any]:
    """The counts of ``rows`` summed; the integer ones as BIGINT (PostgreSQL's SUM of a BIGINT is
    a NUMERIC, which reaches Python as a slower ``Decimal``)."""
    return [
        func.sum(rows.c[c]) if c == "latency_sum" else cast(func.sum(rows.c[c]), BigInteger) for c in COUNTS
    ]


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
