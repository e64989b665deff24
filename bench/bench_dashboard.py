"""Dashboard first load with 1,000,000 events stored: Overview and Search in real headless Chromium.

    .venv/bin/python bench/bench_dashboard.py                    # 1,000,000 events, PostgreSQL and SQLite
    .venv/bin/python bench/bench_dashboard.py --quick            # 100,000 events
    .venv/bin/python bench/bench_dashboard.py --db sqlite --rounds 3 --json out.json
    .venv/bin/python bench/bench_dashboard.py --keep /tmp/km-dash   # keep the filled databases, reuse them
    .venv/bin/python bench/bench_dashboard.py --explain          # also the query plans of Search

Target (from the issue): with 1M events stored, the first load of Overview and Search takes at most 1 s.

Filling: the realistic ``tools/call`` traffic of ``bench/bench_server.py`` (its ``Workload``: sessions of
1,000 request/response pairs over the last 7 days, six MCP servers, 16 tools, 3% errors), plus a few
calls carrying an AWS key, a password or an e-mail address, analysed by km's own ``Analyzer`` as ``km
monitor`` does, so that the events have findings. The batches go through the real ingest path: gzip
``POST /api/v1/events/batch`` to a real ``km serve`` (uvicorn) on a throwaway PostgreSQL 15 cluster
(``tests/pg.py``) and on a SQLite file.

Measuring: a dashboard user (``km admin create-user``) signs in once through the login page; every load
then happens in a *fresh browser context* (no HTTP cache, no preloaded app, only the session cookie) in
Debian's Chromium driven by Playwright, headless, the flags of ``tests/browser``. "Loaded" is the time
from navigation start (``performance.timeOrigin`` of the page) to the moment the page's data is in the
DOM, seen by a ``MutationObserver`` installed before the page's own scripts run:

- Overview: the five cards have values, both charts have their uPlot canvas, both top tables have rows
  (or their empty note), and the protocol radar has its summary (since 2026-12-06: it read every event
  of 30 days, 9.8 s at 10M events on SQLite, and this condition did not wait for it);
- Search: result rows (``search-result``) and the ``search-count`` line are there (or the empty note);
- Session: the inspector's first rows (``inspector-row``) and its count; "whole": also every page of the
  session read (the ``inspector-loading`` note gone).

The pages: Overview with the default range (1 hour) and with 7 days; Search with no filter (the newest
events), filtered by tool, and a free-text query; the session inspector on the newest session, loaded
when its first rows are shown, and again when the whole session has been read. Each page is loaded
``--rounds`` times per database, pages and databases interleaved. Besides the load time, the
browser's Resource Timing entries give the duration of every API request the page made, and the same
API requests are then timed alone with httpx
(server-side time, without the browser), with a worst case for the free-text search (a needle that
matches nothing: the whole table is scanned).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from sqlalchemy import text

from bench_server import (
    BATCH,
    Target,
    Workload,
    _free_port,
    _km,
    _pct,
    _postgres_pids,
    encode,
    ingest_round,
)
from kilometers.analysis import Analyzer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = [  # as tests/browser
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EMAIL, PASSWORD = "bench@example.com", "correct horse battery staple"
BUDGET_MS = 1000.0
FINDING_RATE = 0.004  # share of requests that carry a secret or personal data
RISKY_TEXTS = [
    "deploy with AKIAIOSFODNN7EXAMPL{n} as the access key",
    "connect using password=Sup3rS3cret{n}!",
    "send the report to jane.doe{n}@acme-corp.com",
]
FREE_TEXT = "upstream timeout"  # in the error answers (~1.5% of the events)
NO_MATCH = "zq-no-such-text-xj"

# -- what "loaded" means, per page (runs in the page, before its scripts) ------------------------------

CONDITIONS = {
    "overview": """() => {
        const page = document.querySelector('[data-testid=page-overview]');
        if (!page) return false;
        for (const id of ['card-events-per-min', 'card-error-rate', 'card-p95', 'card-active-sessions',
                          'card-findings']) {
            const v = page.querySelector(`[data-testid=${id}-value]`);
            if (!v || !v.textContent.trim()) return false;
        }
        for (const id of ['chart-traffic', 'chart-latency']) {
            if (!page.querySelector(`[data-testid=${id}] canvas`)) return false;
        }
        if (!page.querySelector('[data-testid=radar-summary]')) return false;  // the protocol radar
        const tables = page.querySelectorAll('.two-col > .card');
        if (tables.length < 2) return false;
        for (const card of tables) {
            if (!card.querySelector('tbody tr, [data-testid=empty]')) return false;
        }
        return true;
    }""",
    "search": """() => {
        const page = document.querySelector('[data-testid=page-search]');
        if (!page) return false;
        const rows = page.querySelector('[data-testid=search-result]');
        if (rows && page.querySelector('[data-testid=search-count]')) return true;
        return !!page.querySelector('[data-testid=empty]');
    }""",
    "session": """() => {
        const page = document.querySelector('[data-testid=page-session]');
        return !!page && !!page.querySelector('[data-testid=inspector-row]')
            && !!page.querySelector('[data-testid=inspector-count]');
    }""",
    "session-all": """() => {
        const page = document.querySelector('[data-testid=page-session]');
        return !!page && !!page.querySelector('[data-testid=inspector-row]')
            && !page.querySelector('[data-testid=inspector-loading]');
    }""",
}

WATCH = """(() => {
    const loaded = %s;
    const check = () => {
        if (window.__kmLoaded !== undefined) return;
        let ok = false;
        try { ok = loaded(); } catch (e) { ok = false; }
        if (!ok) return;
        window.__kmLoaded = performance.now();
        requestAnimationFrame(() => { window.__kmPainted = performance.now(); });
        observer.disconnect();
    };
    const observer = new MutationObserver(check);
    observer.observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
})();"""


@dataclass
class PageSpec:
    name: str
    kind: str  # overview | search | session | session-all
    path: str
    api: list[tuple[str, dict[str, str]]]  # the data requests the page makes (for the httpx timings)


def page_specs(now_ms: int, session_id: str | None = None) -> list[PageSpec]:
    def stats_params(ms: int, bucket: str) -> dict[str, str]:
        iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t / 1000)) + ".000Z"  # noqa: E731
        return {"since": iso(now_ms - ms), "until": iso(now_ms), "bucket": bucket}

    stats, events = "/api/v1/stats", "/api/v1/events"
    oldest = {"session_id": session_id or "", "order": "oldest", "limit": "200"}  # the first page
    session_api = [(f"/api/v1/sessions/{session_id}", {}), (events, oldest)]
    return [
        PageSpec("overview (default, 1 h)", "overview", "/overview",
                 [(stats, stats_params(3_600_000, "minute")), ("/api/v1/radar", {})]),
        PageSpec("overview 7 days", "overview", "/overview?range=7d",
                 [(stats, stats_params(7 * 86_400_000, "hour"))]),
        PageSpec("search (no filter)", "search", "/search", [(events, {"limit": "100"})]),
        PageSpec("search tool=search_code", "search", "/search?tool=search_code",
                 [(events, {"tool": "search_code", "limit": "100"})]),
        PageSpec(f"search q={FREE_TEXT!r}", "search", "/search?" + urlencode({"q": FREE_TEXT}),
                 [(events, {"q": FREE_TEXT, "limit": "100"})]),
        *([] if session_id is None else [
            # the inspector: the session's first rows, then the whole session read page by page
            PageSpec("session (first rows)", "session", f"/sessions/{session_id}", session_api),
            PageSpec("session (whole, all pages)", "session-all", f"/sessions/{session_id}", session_api),
        ]),
    ]  # fmt: skip


# -- filling the store ---------------------------------------------------------------------------------


def add_findings(batches: list[dict[str, Any]], rng: random.Random, analyzer: Analyzer) -> int:
    """Put a secret or an e-mail address into a few requests and attach km's analysis, as km monitor does."""
    n = 0
    for batch in batches:
        for e in batch["events"]:
            if e["kind"] != "request" or rng.random() >= FINDING_RATE:
                continue
            args = e["payload"]["params"]["arguments"]
            args["note"] = rng.choice(RISKY_TEXTS).format(n=rng.randrange(10))
            e["size_bytes"] = len(orjson.dumps(e["payload"])) + 1
            risk = analyzer.analyze(e["direction"], e["kind"], e["method"], e["tool"], e["payload"])
            if risk:
                e["risk"] = risk.to_dict()
                n += 1
    return n


def fill(targets: list[Target], total: int, now_ns: int, clients: int) -> dict[str, Any]:
    workload = Workload(now_ns)
    rng = random.Random(11)
    analyzer = Analyzer()
    chunk = 100  # batches (50,000 events) generated at a time
    batches_total = total // BATCH
    done = findings = 0
    rates: dict[str, list[float]] = {t.name: [] for t in targets}
    start = time.perf_counter()
    while done < batches_total:
        n = min(chunk, batches_total - done)
        batches = workload.next_batches(n)
        findings += add_findings(batches, rng, analyzer)
        bodies = encode(batches, True)
        for t in targets:
            r = ingest_round(t, bodies, True, clients)
            rates[t.name].append(r.rate)
        done += n
        line = "   ".join(f"{name} {rs[-1]:>7,.0f} ev/s" for name, rs in rates.items())
        print(f"  filled {done * BATCH:>9,} events: {line}", flush=True)
    return {
        "events": done * BATCH,
        "events_with_findings": findings,
        "seconds": time.perf_counter() - start,
        "median_rate": {k: statistics.median(v) for k, v in rates.items()},
    }


COPIED_EVENT_COLUMNS = (
    "direction, kind, jsonrpc_id, method, tool, resource_uri, prompt_name, latency_ms, size_bytes, is_error, "
    "error_code, error_message, truncated, payload, risk_score, risk_level, findings, round, call_latency_ms"
)
COPIED_SESSION_COLUMNS = (
    "name, transport, command, cwd, pid, host, started_ns, ended_ns, exit_code, client, server, "
    "protocol_version, capabilities, client_capabilities, log_level, event_count, error_count, dropped_events"
)
DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
ROLLUP_COUNTS = "events = events * :k, requests = requests * :k, errors = errors * :k, bytes = bytes * :k, "


def amplify(target: Target, factor: int) -> float:
    """Store ``factor`` times the filled traffic: ``factor - 1`` copies of every session and event.

    A copy keeps everything of the original but its ids (the first two characters become "x" and
    the copy's number, so requests, answers and calls still pair within a copy) and its time (``k`` µs later),
    and the rollups are multiplied by ``factor``: the same servers, tools, errors and latencies, ten
    times as dense, as a team ten times the size would record. Filling 10M events through the API
    would take hours here; the statements below take minutes, and what is measured (queries over
    the stored rows) does not depend on how they got there."""
    assert target.engine is not None
    if not 1 <= factor <= len(DIGITS):
        raise SystemExit(f"--amplify must be between 1 and {len(DIGITS)}")
    pg = target.engine.dialect.name == "postgresql"

    def tag(column: str, k: int) -> str:
        # ids are UUIDs whose first two characters (the clock's high bits) are the same for all:
        # "x" and the copy's number in their place can match neither an original nor another copy
        return f"CASE WHEN {column} IS NULL THEN NULL ELSE 'x{DIGITS[k]}' || substr({column}, 3) END"

    start = time.perf_counter()
    with target.engine.connect() as conn:
        last = int(conn.execute(text("SELECT max(seq) FROM events")).scalar_one())
    for k in range(1, factor):
        with target.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO sessions (org_id, id, {COPIED_SESSION_COLUMNS}) "
                    f"SELECT org_id, {tag('id', k)}, {COPIED_SESSION_COLUMNS} FROM sessions "
                    f"WHERE id IN (SELECT session_id FROM events WHERE seq <= {last})"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO events (org_id, id, session_id, ts_ns, request_event_id, call_id, "
                    f"{COPIED_EVENT_COLUMNS}) SELECT org_id, {tag('id', k)}, {tag('session_id', k)}, "
                    f"ts_ns + {k * 1000}, {tag('request_event_id', k)}, {tag('call_id', k)}, "
                    f"{COPIED_EVENT_COLUMNS} FROM events WHERE seq <= {last}"
                )
            )
        print(
            f"  {target.name}: copy {k}/{factor - 1} stored ({time.perf_counter() - start:,.0f} s)",
            flush=True,
        )
    with target.engine.begin() as conn:
        for table in ("rollups", "rollups_hour", "rollups_day", "rollups_org_hour"):
            conn.execute(
                text(f"UPDATE {table} SET {ROLLUP_COUNTS}latency_sum = latency_sum * :k"), {"k": factor}
            )
        conn.execute(text("UPDATE org_usage SET events = events * :k"), {"k": factor})
    with target.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if pg else "ANALYZE"))
    return time.perf_counter() - start


# -- servers ---------------------------------------------------------------------------------------------


def launch(target: Target) -> None:
    """km serve on an existing, filled database (``--keep``): what Target.start does after the setup."""
    _km("db", "upgrade", "--db", target.url)
    target.serve(append_log=True)


def start_pg(keep: Path | None) -> Any:
    sys.path.insert(0, str(ROOT / "tests"))
    import pg  # the suite's throwaway cluster

    if keep is None:
        cluster = pg.start_cluster()
        cluster.create_database("kmbench")
        return cluster
    datadir = keep / "pg" / "data"
    if not (datadir / "PG_VERSION").exists():
        cluster = pg.start_cluster()
        cluster.stop()
        datadir.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(cluster.datadir), datadir)
        shutil.rmtree(cluster.datadir.parent, ignore_errors=True)
        if os.geteuid() == 0:
            for d in (keep, datadir.parent):
                os.chmod(d, 0o755)
            shutil.chown(datadir.parent, "postgres")
            shutil.chown(datadir, "postgres")
    (datadir / "postmaster.pid").unlink(missing_ok=True)
    cluster = pg.Cluster(datadir, _free_port())
    cluster.start()
    for _ in range(100):
        if cluster.run("pg_isready", "-h", "127.0.0.1", "-p", str(cluster.port), check=False).returncode == 0:
            break
        time.sleep(0.1)
    if not (keep / "pg" / "created").exists():
        cluster.create_database("kmbench")
        (keep / "pg" / "created").touch()
    return cluster


def sign_in(base: str) -> str:
    response = httpx.post(f"{base}/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30)
    response.raise_for_status()
    return str(response.cookies["km_session"])


# -- measuring ---------------------------------------------------------------------------------------------


@dataclass
class Load:
    loaded_ms: float  # navigation start -> data in the DOM
    painted_ms: float  # the next animation frame after that
    wall_ms: float  # page.goto() -> condition seen by Playwright (includes its polling)
    document_ms: float  # responseEnd of the HTML document
    rows: int
    requests: list[dict[str, Any]]  # Resource Timing of /api and /auth requests, and of the JS/CSS


@dataclass
class PageResult:
    database: str
    page: str
    path: str
    loads: list[Load] = field(default_factory=list)
    api: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        loaded = [x.loaded_ms for x in self.loads]
        out: dict[str, Any] = {
            "database": self.database,
            "page": self.page,
            "path": self.path,
            "loads": len(loaded),
            "median_ms": statistics.median(loaded),
            "p95_ms": _pct(loaded, 95),
            "min_ms": min(loaded),
            "max_ms": max(loaded),
            "ratio_to_budget": statistics.median(loaded) / BUDGET_MS,
            "painted_median_ms": statistics.median(x.painted_ms for x in self.loads),
            "wall_median_ms": statistics.median(x.wall_ms for x in self.loads),
            "document_median_ms": statistics.median(x.document_ms for x in self.loads),
            "rows": self.loads[-1].rows,
            "api_httpx": self.api,
        }
        names = {r["name"] for x in self.loads for r in x.requests}
        browser: dict[str, dict[str, float]] = {}
        for name in sorted(names):
            entries = [r for x in self.loads for r in x.requests if r["name"] == name]
            browser[name] = {
                "start_median_ms": statistics.median(r["start"] for r in entries),
                "duration_median_ms": statistics.median(r["duration"] for r in entries),
                "ttfb_median_ms": statistics.median(r["ttfb"] for r in entries),
                "end_median_ms": statistics.median(r["end"] for r in entries),
            }
        out["browser_requests"] = browser
        return out


RESOURCES_JS = """() => performance.getEntriesByType('resource').map(r => ({
    name: r.name, start: r.startTime, ttfb: r.responseStart - r.startTime, duration: r.duration,
    end: r.responseEnd, size: r.transferSize,
}))"""


def _short(url: str, base: str) -> str:
    path = url.removeprefix(base)
    if path.startswith("/assets/"):
        return "/assets/*." + path.rsplit(".", 1)[-1]
    return path.split("?", 1)[0]


def load_once(browser: Any, state: dict[str, Any], base: str, spec: PageSpec) -> Load:
    context = browser.new_context(storage_state=state, viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.add_init_script(WATCH % CONDITIONS[spec.kind])
        start = time.perf_counter()
        page.goto(base + spec.path, wait_until="commit")
        page.wait_for_function("() => window.__kmLoaded !== undefined", timeout=300_000, polling=5)
        wall = (time.perf_counter() - start) * 1000
        page.wait_for_function("() => window.__kmPainted !== undefined", timeout=10_000)
        if errors:
            raise RuntimeError(f"{spec.path}: page error {errors[0]}")
        if page.get_by_test_id("error-banner").count():
            raise RuntimeError(f"{spec.path}: {page.get_by_test_id('error-banner').inner_text()}")
        if "/login" in page.url:
            raise RuntimeError(f"{spec.path}: not signed in")
        loaded, painted, doc = page.evaluate(
            "() => [window.__kmLoaded, window.__kmPainted,"
            " performance.getEntriesByType('navigation')[0].responseEnd]"
        )
        rows = page.locator(
            "[data-testid=search-result], [data-testid=top-tools-row], [data-testid=inspector-row]"
        ).count()
        requests = [
            {**r, "name": _short(r["name"], base)}
            for r in page.evaluate(RESOURCES_JS)
            if r["name"].startswith(base)
        ]
        return Load(float(loaded), float(painted), wall, float(doc), rows, requests)
    finally:
        context.close()


def time_api(base: str, cookie: str, spec: PageSpec, n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=base, cookies={"km_session": cookie}, timeout=300) as client:
        for path, params in spec.api:
            times = []
            size = 0
            for _ in range(n):
                start = time.perf_counter()
                response = client.get(path, params=params)
                times.append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
                size = len(response.content)
            label = path + ("?" + urlencode(params) if params else "")
            out[label] = {"median_ms": statistics.median(times), "p95_ms": _pct(times, 95), "bytes": size}
    return out


# -- query plans (--explain) -----------------------------------------------------------------------------


def explain(target: Target) -> None:
    """The plans of the queries behind Search (queries.page_events) and Overview's extra counts."""
    from sqlalchemy import and_, select

    from kilometers.store import queries
    from kilometers.store.schema import events

    assert target.engine is not None
    c = events.c
    pg_ = target.engine.dialect.name == "postgresql"
    cases = {
        "no filter": queries.EventFilter(org_id=target.org_id),
        "tool=search_code": queries.EventFilter(org_id=target.org_id, tool="search_code"),
        f"q={FREE_TEXT}": queries.EventFilter(org_id=target.org_id, text=FREE_TEXT),
        f"q={NO_MATCH} (no match)": queries.EventFilter(org_id=target.org_id, text=NO_MATCH),
    }
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg_ else "EXPLAIN QUERY PLAN "
    with target.engine.connect() as conn:
        for label, flt in cases.items():
            # the same statement as queries.page_events(engine, flt, 100)
            query = (
                select(events).where(and_(*flt.clauses())).order_by(c.ts_ns.desc(), c.id.desc()).limit(101)
            )
            sql = str(query.compile(target.engine, compile_kwargs={"literal_binds": True}))
            rows = conn.execute(text(prefix + sql)).fetchall()
            print(f"\n  [{target.name}] Search, {label}:")
            for row in rows:
                print("    " + (str(row[0]) if pg_ else " | ".join(str(x) for x in row)))


# -- main ----------------------------------------------------------------------------------------------------


def _fmt(ms: float) -> str:
    return f"{ms:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, help="events to store (multiple of 500; default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="100,000 events and 3 rounds")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rounds", type=int, help="loads per page and database (default 7, quick 3)")
    parser.add_argument("--api-requests", type=int, default=7, help="httpx requests per API call (default 7)")
    parser.add_argument("--clients", type=int, default=4, help="upload threads while filling (default 4)")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep the filled databases in this directory and reuse them next time (event times are "
        "relative to the first run: reuse them the same day)",
    )
    parser.add_argument(
        "--amplify",
        type=int,
        default=1,
        help="after filling, store this many times the events by copying them in SQL (10 with the "
        "default 1,000,000: the 10M of issue 17); see amplify()",
    )
    parser.add_argument("--explain", action="store_true", help="print the query plans of the Search queries")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    total = args.events or (100_000 if args.quick else 1_000_000)
    total -= total % BATCH
    rounds = args.rounds or (3 if args.quick else 7)
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is needed (make setup installs it)")

    loadavg = [os.getloadavg()]
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {"events": total, "rounds": rounds, "db": args.db, "budget_ms": BUDGET_MS},
    }
    print(f"km dashboard first-load benchmark: {report['settings']}, load average {loadavg[0]}", flush=True)
    keep = args.keep.resolve() if args.keep else None
    tmp = keep or Path(tempfile.mkdtemp(prefix="km-bench-dash-"))
    tmp.mkdir(parents=True, exist_ok=True)
    state_file = tmp / "state.json"
    saved = json.loads(state_file.read_text()) if keep and state_file.exists() else {}
    cluster = None
    targets: list[Target] = []
    try:
        if args.db in ("postgres", "both"):
            cluster = start_pg(keep)
            url = f"postgresql://postgres@127.0.0.1:{cluster.port}/kmbench"
            targets.append(Target("postgresql", url, _postgres_pids(cluster.datadir), tmp / "serve-pg.log"))
        if args.db in ("sqlite", "both"):
            targets.append(
                Target("sqlite", f"sqlite:///{tmp / 'team.db'}", lambda: [], tmp / "serve-sqlite.log")
            )

        stored_total = total * args.amplify
        fresh = [t for t in targets if saved.get(t.name, {}).get("events") != stored_total]
        for t in targets:
            if t in fresh:
                t.start()
                _km("admin", "create-user", EMAIL, "--org", "bench", "--role", "owner",
                    "--password", PASSWORD, "--db", t.url)  # fmt: skip
            else:
                t.org_id, t.key = saved[t.name]["org_id"], saved[t.name]["key"]
                launch(t)
            print(f"  {t.name}: km serve on port {t.ports[0]}", flush=True)
        now_ns = int(saved.get("now_ns", time.time_ns())) if not fresh else time.time_ns()
        if fresh:
            print(f"filling {', '.join(t.name for t in fresh)} with {total:,} events through the ingest API:")
            report["fill"] = fill(fresh, total, now_ns, args.clients)
            print(
                f"  done in {report['fill']['seconds']:.0f} s, "
                f"{report['fill']['events_with_findings']} with findings"
            )
            if args.amplify > 1:
                print(
                    f"amplifying to {stored_total:,} events ({args.amplify - 1} copies in SQL):", flush=True
                )
                report["amplify_seconds"] = {t.name: amplify(t, args.amplify) for t in fresh}
            if keep:
                saved = {
                    **saved,
                    "now_ns": now_ns,
                    **{t.name: {"events": stored_total, "org_id": t.org_id, "key": t.key} for t in targets},
                }
                state_file.write_text(json.dumps(saved))
        for t in targets:
            assert t.engine is not None
            with t.engine.connect() as conn:
                n = int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())
                if t.engine.dialect.name == "postgresql":
                    conn.execute(text("ANALYZE"))
                    conn.commit()
            report.setdefault("stored", {})[t.name] = n
            print(f"  {t.name}: {n:,} events stored")

        from playwright.sync_api import sync_playwright

        now_ms = time.time_ns() // 1_000_000
        # the newest session (the same in every database: they were filled with the same batches)
        with httpx.Client(base_url=targets[0].base, cookies={"km_session": sign_in(targets[0].base)}) as c:
            newest = c.get("/api/v1/sessions", params={"limit": "1"}).json()["items"]
        specs = page_specs(now_ms, newest[0]["id"] if newest else None)
        results = {(t.name, s.name): PageResult(t.name, s.name, s.path) for t in targets for s in specs}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            states: dict[str, tuple[dict[str, Any], str]] = {}
            for t in targets:  # sign in once, through the login page, and keep the cookie
                context = browser.new_context()
                page = context.new_page()
                page.goto(t.base + "/login")
                page.get_by_test_id("login-email").fill(EMAIL)
                page.get_by_test_id("login-password").fill(PASSWORD)
                page.get_by_test_id("login-submit").click()
                page.get_by_test_id("org-name").first.wait_for()
                state = context.storage_state()
                cookie = next(c["value"] for c in state["cookies"] if c["name"] == "km_session")
                states[t.name] = (dict(state), cookie)
                context.close()
            print(
                f"\nfirst loads in fresh browser contexts ({rounds} rounds, pages and databases interleaved):"
            )
            for i in range(rounds):
                order = targets if i % 2 == 0 else list(reversed(targets))
                line = []
                for t in order:
                    for s in specs if i % 2 == 0 else list(reversed(specs)):
                        load = load_once(browser, states[t.name][0], t.base, s)
                        results[(t.name, s.name)].loads.append(load)
                        line.append(f"{load.loaded_ms:,.0f}")
                    line.append("|")
                loadavg.append(os.getloadavg())
                print(
                    f"  round {i + 1}/{rounds}: {' '.join(line)} ms  (load average {loadavg[-1][0]:.1f})",
                    flush=True,
                )
            browser.close()

        print(f"\nthe same API requests alone, httpx, {args.api_requests} sequential each:")
        extra = PageSpec(
            f"search q={NO_MATCH!r} (matches nothing)",
            "search",
            "",
            [("/api/v1/events", {"q": NO_MATCH, "limit": "100"})],
        )
        for t in targets:
            for s in [*specs, extra]:
                timings = time_api(t.base, states[t.name][1], s, args.api_requests if s is not extra else 3)
                if s is extra:
                    report.setdefault("worst_case", {})[t.name] = timings
                else:
                    results[(t.name, s.name)].api = timings
                for label, v in timings.items():
                    print(
                        f"  {t.name:<10} {label[:90]:<90} "
                        f"p50 {v['median_ms']:>8,.1f} ms  p95 {v['p95_ms']:>8,.1f} ms"
                    )
        loadavg.append(os.getloadavg())

        if args.explain:
            for t in targets:
                explain(t)

        summaries = [r.summary() for r in results.values()]
        report["pages"] = summaries
        report["loadavg"] = loadavg
        print(
            f"\nFirst load, navigation start -> data in the DOM, {rounds} loads each "
            f"(budget {BUDGET_MS:.0f} ms):"
        )
        print(
            f"  {'database':<10} {'page':<30} {'median':>8} {'p95':>8} {'min':>8} {'/1 s':>6}  verdict | "
            "where the time goes (browser, medians: start+duration)"
        )
        for s in summaries:
            verdict = "met" if s["median_ms"] <= BUDGET_MS else "NOT MET"
            br = s["browser_requests"]
            parts = [f"doc {_fmt(s['document_median_ms'])}"]
            for name, v in br.items():
                if name.startswith(("/api/", "/auth/", "/assets/*.js")):
                    parts.append(f"{name} {_fmt(v['start_median_ms'])}+{_fmt(v['duration_median_ms'])}")
            print(
                f"  {s['database']:<10} {s['page']:<30} {_fmt(s['median_ms']):>8} {_fmt(s['p95_ms']):>8} "
                f"{_fmt(s['min_ms']):>8} {s['ratio_to_budget']:>6.2f}  {verdict:<7} | {', '.join(parts)}"
            )
        report["targets"] = [
            f"{s['database']} {s['page']}: median {s['median_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms -> "
            + ("met" if s["median_ms"] <= BUDGET_MS else "NOT MET")
            for s in summaries
        ]
        print(
            f"\nload average: start {loadavg[0]}, during the rounds "
            f"{[round(x[0], 1) for x in loadavg[1:-1]]}, end {loadavg[-1]}"
        )
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=lambda o: asdict(o)))
    finally:
        for t in targets:
            t.stop()
        if cluster is not None:
            if keep:
                cluster.stop()
            else:
                import pg

                pg.remove_cluster(cluster)
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
