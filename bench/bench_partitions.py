"""Partitioned events on PostgreSQL: what retention costs with whole months dropped against
row-by-row deletes, and how long `km db upgrade` takes to convert a plain table holding data.

    .venv/bin/python bench/bench_partitions.py                 # 1,200,000 events, 3 repeats
    .venv/bin/python bench/bench_partitions.py --events 300000 --repeats 1

One throwaway PostgreSQL 15 cluster (``tests/pg.py``). Per repeat, two databases hold the same
events, spread evenly over six months (1 KB payloads, one organization with 90 days' retention,
``now`` at the end of the sixth month): ``plain`` stays at migration 0008 (the unpartitioned
table), ``partitioned`` is converted from the same state by ``km db upgrade`` (timed). Then
``apply_retention`` removes the three oldest months from each (timed), and the sizes of the
table and its indexes are read before and after. Medians over repeats; the two databases are
measured side by side in each repeat.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from alembic import command  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from kilometers.server import tenancy  # noqa: E402
from kilometers.server.retention import DAY_NS, apply_retention  # noqa: E402
from kilometers.store import db, partitions  # noqa: E402

from pg import remove_cluster, start_cluster  # noqa: E402

KM = str(Path(sys.executable).parent / "km")
FIRST = (2026, 1)
NOW = partitions.start_ns((2026, 7)) - 1  # the end of June: January to June hold events


def fill(engine: Engine, org_id: str, n: int) -> None:
    lo, hi = partitions.start_ns(FIRST), NOW
    step = (hi - lo) // n
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO events (org_id, id, session_id, ts_ns, direction, kind, method, tool, "
                "size_bytes, is_error, truncated, payload) "
                "SELECT :org, gen_random_uuid()::text, 's' || (i / 1000), :lo + i * :step, "
                "'client_to_server', 'request', 'tools/call', 'read_file', 1000, false, false, "
                "repeat(md5(i::text), 32) FROM generate_series(0, :n - 1) AS i"
            ),
            {"org": org_id, "lo": lo, "step": step, "n": n},
        )


def size_mb(engine: Engine) -> tuple[float, float]:
    """(table, indexes) of events in MB, partitions included."""
    with engine.connect() as conn:
        tables = conn.execute(
            text(
                "SELECT coalesce(sum(pg_table_size(c.oid)), 0), coalesce(sum(pg_indexes_size(c.oid)), 0) "
                "FROM pg_class c WHERE c.relkind = 'r' AND (c.relname = 'events' "
                "OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('events')))"
            )
        ).one()
    return tables[0] / 2**20, tables[1] / 2**20


def at_0008(url: str, n: int) -> Engine:
    engine = db.make_engine(url)
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0008")
    org = tenancy.create_org(engine, "acme", "unlimited")
    tenancy.set_limits(engine, org, None, 90)
    fill(engine, org.id, n)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE events"))
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cluster = start_cluster()
    results: dict[str, list[float]] = {k: [] for k in ("convert", "plain", "partitioned")}
    sizes: dict[str, tuple[float, float]] = {}
    try:
        for r in range(args.repeats):
            plain = at_0008(cluster.create_database(f"plain_{r}"), args.events)
            url = cluster.create_database(f"part_{r}")
            parted = at_0008(url, args.events)
            sizes["plain"] = size_mb(plain)
            started = time.perf_counter()
            subprocess.run([KM, "db", "upgrade", "--db", url], check=True, capture_output=True)
            results["convert"].append(time.perf_counter() - started)
            sizes["partitioned"] = size_mb(parted)
            for name, engine in (("plain", plain), ("partitioned", parted)):
                started = time.perf_counter()
                removed = apply_retention(engine, now_ns=NOW)
                results[name].append(time.perf_counter() - started)
                expected = NOW - 90 * DAY_NS
                with engine.connect() as conn:
                    left = conn.execute(text("SELECT min(ts_ns) FROM events")).scalar()
                assert left is not None and left >= expected, (name, left, expected)
                print(f"repeat {r + 1} {name}: retention {results[name][-1]:.2f} s, removed {removed}")
            print(f"repeat {r + 1}: conversion {results['convert'][-1]:.2f} s")
            plain.dispose()
            parted.dispose()
    finally:
        remove_cluster(cluster)
    med = {k: statistics.median(v) for k, v in results.items()}
    n = args.events
    print(f"\n{n:,} events over 6 months; medians of {args.repeats} repeat(s)")
    print("| | plain table (DELETE) | partitioned (DROP + trim) | ratio |")
    print("|---|---|---|---|")
    print(f"| retention, 3 of 6 months | {med['plain']:.2f} s | {med['partitioned']:.2f} s | "
          f"{med['plain'] / med['partitioned']:.1f}× |")  # fmt: skip
    for name, (table, index) in sizes.items():
        print(f"| {name}: table / indexes | {table:.0f} MB / {index:.0f} MB "
              f"({table * 2**20 / n:.0f} / {index * 2**20 / n:.0f} bytes per event) | | |")  # fmt: skip
    print(f"| `km db upgrade` conversion | {med['convert']:.2f} s ({n / med['convert']:,.0f} events/s) | | |")


if __name__ == "__main__":
    main()
