"""Per-minute rollups, updated in the ingest transaction, and the statistics computed from them.

Latency is kept as a log-scale histogram: bin ``b`` holds latencies in
``(BASE * GROWTH**(b-1), BASE * GROWTH**b]`` ms, so a percentile read from the bins is within
about 10% of the true value, whatever the data size, and no query ever scans raw events.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select

from ..store.schema import rollups, sessions

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
        b = NO_LATENCY if latency is None else latency_bin(latency)
        cell = cells[(e["ts_ns"] // 60_000_000_000, e["method"] or "", e["tool"] or "", b)]
        cell.events += 1
        cell.requests += e["kind"] in ("request", "notification")
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


def upsert_rollups(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(rollups)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_id", "minute", "server", "method", "tool", "bin"],
        set_={
            "events": rollups.c.events + ex.events,
            "requests": rollups.c.requests + ex.requests,
            "errors": rollups.c.errors + ex.errors,
            "bytes": rollups.c.bytes + ex.bytes,
            "latency_sum": rollups.c.latency_sum + ex.latency_sum,
        },
    )
    conn.execute(stmt, list(rows))


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
    r = rollups.c
    first, last = since_ns // 60_000_000_000, (until_ns - 1) // 60_000_000_000
    width = BUCKETS[bucket]
    # aggregate to the requested bucket in the database: far fewer rows cross into Python
    slot = ((r.minute // width) * width).label("slot") if width > 1 else r.minute.label("slot")
    query = (
        select(
            slot,
            r.server,
            r.method,
            r.tool,
            r.bin,
            func.sum(r.events),
            func.sum(r.requests),
            func.sum(r.errors),
            func.sum(r.bytes),
            func.sum(r.latency_sum),
        )
        .where(r.org_id == org_id, r.minute >= first, r.minute <= last)
        .group_by(slot, r.server, r.method, r.tool, r.bin)
    )
    if tool is not None:
        query = query.where(r.tool == tool)
    if server is not None:
        query = query.where(r.server == server)
    total = Group()
    series: dict[int, Group] = defaultdict(Group)
    by_method: dict[str, Group] = defaultdict(Group)
    by_tool: dict[tuple[str, str], Group] = defaultdict(Group)
    by_server: dict[str, Group] = defaultdict(Group)
    with engine.connect() as conn:
        for minute, row_server, method, row_tool, b, ev, req, err, size, lat in conn.execute(query):
            values = (b, int(ev), int(req), int(err), int(size), float(lat))
            total.add(*values)
            series[int(minute)].add(*values)
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
    from ..store.queries import risky_events

    totals = total.to_dict()
    totals["active_sessions"] = int(active or 0)
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
