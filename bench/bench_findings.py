"""The findings read API's queries on a large store, PostgreSQL and SQLite side by side.

    .venv/bin/python bench/bench_findings.py                    # 1,000,000 events per database
    .venv/bin/python bench/bench_findings.py --events 200000    # quicker
    .venv/bin/python bench/bench_findings.py --only sqlite

One run fills a temporary SQLite file and a throwaway PostgreSQL 15 cluster (``tests/pg.py``)
with the same events: ``tools/call`` pairs of 200 sessions on 6 servers over 7 days, of which
``--risky`` (5 %) carry 1-3 findings (secrets, PII, dangerous commands, poisoning), written
through the store's own codec. Then, in-process (SQL and decoding, no HTTP), each query is timed
``--repeat`` times after one warm-up and its median reported, next to the events query the
dashboard already makes for the same view (``page_events`` with ``min_level``) as the yardstick:

- the first page (100) of every finding, newest first; by severity; a rule family; a server;
  a time window of one day; a session; the 50th page reached through cursors;
- the summary grouped by rule and by server, whole store and one day.

See docs/benchmarks.md ("Findings API").
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from kilometers.model import Event, Session
from kilometers.store import db as store_db
from kilometers.store import findings, queries
from kilometers.store.codec import event_row, session_row
from kilometers.store.schema import events, sessions

ROOT = Path(__file__).resolve().parent.parent
DAY_NS = 24 * 3600 * 10**9
ORG = "bench-org"
SERVERS = ["filesystem", "github", "postgres", "browser", "shell", "slack"]
FINDINGS = [
    ("secret.aws_access_key", "high", "/params/arguments/env/AWS_KEY"),
    ("secret.github_token", "critical", "/params/arguments/token"),
    ("pii.email", "low", "/result/content/0/text"),
    ("pii.phone", "low", "/result/content/0/text"),
    ("danger.destructive_command", "critical", "/params/arguments/command"),
    ("danger.shell_exec", "medium", "/params/arguments/command"),
    ("poisoning.hidden_instructions", "critical", "/result/tools/0/description"),
    ("analysis.partial", "info", ""),
]
WEIGHT = {"info": 0, "low": 10, "medium": 40, "high": 70, "critical": 90}


def fill(engine: Engine, n_events: int, risky: float, seed: int = 7) -> tuple[str, int]:
    """``n_events`` events of 200 sessions; returns a session id and the newest time."""
    rng = random.Random(seed)
    now = time.time_ns()
    start = now - 7 * DAY_NS
    n_sessions = 200
    sess = [
        Session(command=["srv"], cwd="/", name=SERVERS[i % len(SERVERS)], started_ns=start + i * 10**9)
        for i in range(n_sessions)
    ]
    with engine.begin() as conn:
        conn.execute(sessions.insert(), [session_row(s, ORG) for s in sess])
    step = 7 * DAY_NS // n_events
    batch: list[dict[str, Any]] = []
    payload = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{}}}'
    for i in range(n_events):
        s = sess[rng.randrange(n_sessions)]
        risk = None
        if rng.random() < risky:
            chosen = rng.sample(FINDINGS, rng.randint(1, 3))
            top = max(chosen, key=lambda f: WEIGHT[f[1]])[1]
            risk = {
                "score": WEIGHT[top],
                "level": "none" if top == "info" else top,
                "findings": [
                    {"rule": r, "severity": v, "path": p, "message": f"{r} found"} for r, v, p in chosen
                ],
            }
        e = Event(session_id=s.id, ts_ns=start + i * step, direction="client_to_server",
                  kind="request", size_bytes=len(payload), payload=payload, method="tools/call",
                  tool="run", risk=risk)  # fmt: skip
        batch.append(event_row(e, ORG))
        if len(batch) == 5000:
            with engine.begin() as conn:
                conn.execute(events.insert(), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(events.insert(), batch)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
    return sess[0].id, start + n_events * step


def timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def cases(engine: Engine, session_id: str, newest: int) -> dict[str, Callable[[], Any]]:
    f = findings.FindingFilter(org_id=ORG)
    day = findings.FindingFilter(org_id=ORG, since_ns=newest - 2 * DAY_NS, until_ns=newest - DAY_NS)

    def page_50() -> None:
        cursor = None
        for _ in range(50):
            _, cursor = findings.page_findings(engine, f, 100, cursor)

    shell = queries.server_sessions(engine, "shell", ORG)
    return {
        "events, min_level=low (yardstick)": lambda: queries.page_events(
            engine, queries.EventFilter(org_id=ORG, min_level="low"), 100
        ),
        "findings, newest first": lambda: findings.page_findings(engine, f, 100),
        "findings, by severity": lambda: findings.page_findings(engine, f, 100, sort="severity"),
        "findings, rule=secret.*": lambda: findings.page_findings(
            engine, findings.FindingFilter(org_id=ORG, rule="secret.*"), 100
        ),
        "findings, min_severity=critical": lambda: findings.page_findings(
            engine, findings.FindingFilter(org_id=ORG, min_severity="critical"), 100
        ),
        "findings, server=shell": lambda: findings.page_findings(
            engine, findings.FindingFilter(org_id=ORG, session_ids=shell), 100
        ),
        "findings, one day": lambda: findings.page_findings(engine, day, 100),
        "findings, one session": lambda: findings.page_findings(
            engine, findings.FindingFilter(org_id=ORG, session_id=session_id), 100
        ),
        "findings, 50 pages through cursors (total)": page_50,
        "summary by rule, whole store": lambda: findings.summarize_findings(engine, f, "rule"),
        "summary by server, whole store": lambda: findings.summarize_findings(engine, f, "server"),
        "summary by rule, one day": lambda: findings.summarize_findings(engine, day, "rule"),
        "summary by rule, one session": lambda: findings.summarize_findings(
            engine, findings.FindingFilter(org_id=ORG, session_id=session_id), "rule"
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--risky", type=float, default=0.05, help="share of events with findings")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--only", choices=["sqlite", "postgresql"])
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import pg

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        targets = []
        cluster = None
        if args.only != "postgresql":
            targets.append(("sqlite", f"sqlite:///{tmp}/bench.db"))
        if args.only != "sqlite":
            cluster = pg.start_cluster()
            targets.append(("postgresql", cluster.create_database("bench_findings")))
        try:
            for name, url in targets:
                engine = store_db.open_store(url)
                t = time.perf_counter()
                session_id, newest = fill(engine, args.events, args.risky)
                print(f"{name}: {args.events:,} events stored in {time.perf_counter() - t:.0f} s", flush=True)
                for label, fn in cases(engine, session_id, newest).items():
                    results.setdefault(label, {})[name] = timed(fn, args.repeat)
                    print(f"  {label}: {results[label][name]:.1f} ms", flush=True)
                engine.dispose()
        finally:
            if cluster is not None:
                pg.remove_cluster(cluster)
    names = [n for n, _ in targets]
    print(f"\n{args.events:,} events, {args.risky:.0%} with findings, median of {args.repeat}; "
          f"Python {platform.python_version()}")  # fmt: skip
    print(
        "| query | "
        + " | ".join(f"{n} ms" for n in names)
        + " | "
        + " | ".join(f"{n} ÷ yardstick" for n in names)
        + " |"
    )
    print("|---|" + "---:|" * (2 * len(names)))
    base = results["events, min_level=low (yardstick)"]
    for label, row in results.items():
        cells = [f"{row[n]:.1f}" for n in names] + [f"{row[n] / base[n]:.1f}×" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
