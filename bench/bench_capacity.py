"""The team server's capacity model: measured inputs per event, and what they mean for a team.

    .venv/bin/python bench/bench_capacity.py                    # 200,000 events, ~2 min here
    .venv/bin/python bench/bench_capacity.py --events 1000000 --json out.json
    .venv/bin/python bench/bench_capacity.py --calls-per-hour 600 --peak 4

It starts a throwaway PostgreSQL 15 cluster (``tests/pg.py``), one real ``km serve`` on it, and
uploads bench_server's realistic batches (500 ~1 KB ``tools/call`` events each, gzip-compressed,
through ``POST /api/v1/events/batch``). Per event stored it measures:

- CPU of ``km serve`` and of all PostgreSQL processes (user + system);
- WAL written (``pg_current_wal_lsn`` before and after), what a replica or a backup receives;
- bytes on disk: the events table with its partitions, their indexes, the three rollup tables
  and sessions (after ``VACUUM ANALYZE``).

Then it applies them to teams of several sizes: each developer's agents make ``--calls-per-hour``
MCP calls in ``--hours`` working hours a day (a call is ``--events-per-call`` events: request,
answer and their share of notifications), the busiest second is ``--peak`` times the average of a
working hour, and a process or database core is planned at ``--utilisation`` of its capacity. The
figures and the model are written up in docs/deploy.md ("Capacity") and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import bench_server as bs  # noqa: E402  (the realistic workload and the km serve target)

TEAMS = (10, 50, 200, 1000, 5000)


@dataclass
class PerEvent:
    events: int
    rate: float
    """events/s through one km serve process (median of the rounds; noisy on a shared machine)"""
    serve_cpu_us: float
    db_cpu_us: float
    wal_bytes: float
    table_bytes: float
    index_bytes: float
    rollup_bytes: float
    session_bytes: float

    @property
    def disk_bytes(self) -> float:
        return self.table_bytes + self.index_bytes + self.rollup_bytes + self.session_bytes


def _bytes(conn: object, sql: str) -> int:
    return int(conn.execute(text(sql)).scalar_one() or 0)  # type: ignore[attr-defined]


def _relation_sizes(target: bs.Target) -> dict[str, int]:
    assert target.engine is not None
    with target.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        events = (
            "FROM pg_class c WHERE c.relkind = 'r' AND (c.relname = 'events' "
            "OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('events')))"
        )
        return {
            "table": _bytes(conn, f"SELECT sum(pg_table_size(c.oid)) {events}"),
            "indexes": _bytes(conn, f"SELECT sum(pg_indexes_size(c.oid)) {events}"),
            "rollups": _bytes(
                conn,
                "SELECT sum(pg_total_relation_size(t)) FROM unnest(ARRAY["
                "'rollups'::regclass, 'rollups_hour'::regclass, 'rollups_day'::regclass, "
                "'rollups_org_hour'::regclass]) AS t",
            ),
            "sessions": _bytes(conn, "SELECT pg_total_relation_size('sessions')"),
        }


def _wal_lsn(target: bs.Target) -> int:
    assert target.engine is not None
    with target.engine.connect() as conn:
        return _bytes(conn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")


def measure(total: int, rounds: int, clients: int) -> PerEvent:
    import pg  # the suite's throwaway cluster

    per_round = max(1, total // bs.BATCH // rounds)
    tmp = Path(tempfile.mkdtemp(prefix="km-bench-capacity-"))
    cluster = pg.start_cluster()
    target = bs.Target(
        "postgresql", cluster.create_database("kmcap"), bs._postgres_pids(cluster.datadir), tmp / "serve.log"
    )
    try:
        target.start()
        workload = bs.Workload(time.time_ns())
        sizes0, wal0 = _relation_sizes(target), _wal_lsn(target)
        done: list[bs.Round] = []
        for i in range(rounds):
            bodies = bs.encode(workload.next_batches(per_round), True)
            r = bs.ingest_round(target, bodies, True, clients)
            done.append(r)
            print(f"  round {i + 1}/{rounds}: {r.rate:,.0f} events/s", flush=True)
        wal = _wal_lsn(target) - wal0
        sizes = _relation_sizes(target)
        n = sum(r.events for r in done)
        return PerEvent(
            events=n,
            rate=statistics.median(r.rate for r in done),
            serve_cpu_us=sum(r.server_cpu for r in done) / n * 1e6,
            db_cpu_us=sum(r.db_cpu for r in done) / n * 1e6,
            wal_bytes=wal / n,
            table_bytes=(sizes["table"] - sizes0["table"]) / n,
            index_bytes=(sizes["indexes"] - sizes0["indexes"]) / n,
            rollup_bytes=(sizes["rollups"] - sizes0["rollups"]) / n,
            session_bytes=(sizes["sessions"] - sizes0["sessions"]) / n,
        )
    finally:
        target.stop()
        pg.remove_cluster(cluster)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Plan:
    developers: int
    events_per_day: float
    peak_events_s: float
    serve_processes: int
    db_cores: float
    disk_gb_per_month: float
    wal_gb_per_day: float


def plan(m: PerEvent, developers: int, args: argparse.Namespace) -> Plan:
    per_hour = developers * args.calls_per_hour * args.events_per_call
    peak = per_hour / 3600 * args.peak
    per_day = per_hour * args.hours
    return Plan(
        developers=developers,
        events_per_day=per_day,
        peak_events_s=peak,
        serve_processes=max(1, math.ceil(peak * m.serve_cpu_us / 1e6 / args.utilisation)),
        db_cores=peak * m.db_cpu_us / 1e6 / args.utilisation,
        disk_gb_per_month=per_day * args.days * m.disk_bytes / 1e9,
        wal_gb_per_day=per_day * m.wal_bytes / 1e9,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events to upload (default 200,000)")
    parser.add_argument("--rounds", type=int, default=4, help="upload rounds (default 4)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (default 4)")
    parser.add_argument("--calls-per-hour", type=float, default=300, help="MCP calls per developer per hour")
    parser.add_argument("--events-per-call", type=float, default=2.1, help="events per call (default 2.1)")
    parser.add_argument("--hours", type=float, default=8, help="working hours a day (default 8)")
    parser.add_argument("--days", type=float, default=21, help="working days a month (default 21)")
    parser.add_argument("--peak", type=float, default=3, help="busiest second / hourly average (default 3)")
    parser.add_argument(
        "--utilisation", type=float, default=0.6, help="planned share of a core (default 0.6)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()

    print(f"km capacity: {args.events:,} events into PostgreSQL, load average {os.getloadavg()[0]:.1f}")
    m = measure(args.events, args.rounds, args.clients)
    print(
        f"\nMeasured per event ({m.events:,} events, one km serve, median {m.rate:,.0f} events/s):\n"
        f"  CPU: km serve {m.serve_cpu_us:.0f} µs, PostgreSQL {m.db_cpu_us:.0f} µs "
        f"-> {1e6 / m.serve_cpu_us:,.0f} events/s per km serve core, "
        f"{1e6 / m.db_cpu_us:,.0f} per database core\n"
        f"  disk: events {m.table_bytes:,.0f} B + indexes {m.index_bytes:,.0f} B + rollups "
        f"{m.rollup_bytes:,.0f} B + sessions {m.session_bytes:,.0f} B = {m.disk_bytes:,.0f} B\n"
        f"  WAL: {m.wal_bytes:,.0f} B"
    )
    print(
        f"\nPlan ({args.calls_per_hour:g} calls per developer-hour x {args.events_per_call:g} events, "
        f"{args.hours:g} h/day, {args.days:g} days/month, peak {args.peak:g}x, cores at "
        f"{args.utilisation:.0%}):\n"
        "| developers | events/day | peak events/s | km serve processes | database cores "
        "| disk/month | WAL/day |\n"
        "|---:|---:|---:|---:|---:|---:|---:|"
    )
    plans = [plan(m, d, args) for d in TEAMS]
    for p in plans:
        print(
            f"| {p.developers:,} | {p.events_per_day / 1e6:,.2f} M | {p.peak_events_s:,.0f} | "
            f"{p.serve_processes} | {p.db_cores:.1f} | {p.disk_gb_per_month:,.0f} GB "
            f"| {p.wal_gb_per_day:,.1f} GB |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "per_event": asdict(m),
                    "settings": vars(args) | {"json": str(args.json)},
                    "plans": [asdict(p) for p in plans],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
