"""Team-server benchmark: ingestion rate and ``/api/v1/stats`` latency, PostgreSQL and SQLite side by side.

    .venv/bin/python bench/bench_server.py            # full run: 1,000,000 events per database
    .venv/bin/python bench/bench_server.py --quick    # 100,000 events per database
    .venv/bin/python bench/bench_server.py --json out.json --only postgresql
    PYTHONPATH=src .venv/bin/python bench/bench_server.py --processes 2 --baseline ../main/src  # before/after

One run starts a throwaway PostgreSQL 15 cluster (``tests/pg.py``) and a temporary SQLite file,
migrates both with ``km db upgrade``, creates an organization and an admin key with ``km admin``,
and starts one real ``km serve`` process (uvicorn) on each, with ``--rate 0`` (the default per-key
limit, 50 requests/s, would cap one key at 25,000 events/s).

Ingestion: batches of 500 realistic events (``tools/call`` request/response pairs with ~1 KB
payloads, 3% errors, log-normal latencies, six MCP servers, 16 tools) in the wire shape of
``km events --json``, gzip-compressed like the uploader sends them (``--no-gzip`` for plain JSON).
Eight sessions upload at once, their batches interleaved. The batches of a round are generated and
compressed *before* the clock starts; then ``--clients`` threads POST them to
``/api/v1/events/batch``. Rounds alternate between the two servers (PostgreSQL first on even
rounds, SQLite first on odd ones) so that background load hits both alike, and the rounds
together fill the store: the median over rounds is the headline. Besides events/s, the CPU time of
km serve, of the PostgreSQL processes and of the clients is divided by the events stored: unlike
the rate, that figure hardly depends on what else runs on the machine. Event timestamps are
spread over the last 7 days, so the rollups look like a week of traffic.

Statistics: once every event is stored, ``GET /api/v1/stats`` for the last 24 h (``bucket=hour``)
and the last 7 days (``bucket=day``), sequentially (``--stats-requests``, at most
``--stats-budget`` seconds per window), p50/p95 of the wall time seen by the client. To show where
that time goes, ``rollups.stats()`` is also timed in-process (no HTTP), with the number of rollup
rows its plan reads from the day, hour and minute tables.

The clients, the server and the database share the machine's cores. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import uuid_utils
from sqlalchemy import Engine, func, select, text

from kilometers.model import format_ts
from kilometers.store import db as store_db
from kilometers.store import rollups

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KM = str(Path(sys.executable).with_name("km"))
BATCH = 500
DAY_NS = 24 * 3600 * 10**9

# (server name, [(tool, median latency ms)]): what a team's agents typically call
CATALOG: list[tuple[str, list[tuple[str, float]]]] = [
    (
        "filesystem",
        [("read_file", 2.0), ("write_file", 4.0), ("list_directory", 1.5), ("search_files", 40.0)],
    ),
    ("github", [("get_issue", 180.0), ("create_pull_request", 650.0), ("search_code", 420.0)]),
    ("postgres", [("query", 25.0), ("describe_table", 8.0)]),
    ("browser", [("navigate", 900.0), ("screenshot", 300.0), ("click", 120.0)]),
    ("slack", [("post_message", 210.0), ("list_channels", 150.0)]),
    ("memory", [("create_entities", 3.0), ("search_nodes", 6.0)]),
]
WORDS_TEXT = (
    "the a of to and in is it for on with as at by from this that file function return value error "
    "user request response data table column index query import class def self none true false list "
    "dict string int path line code test build config server client tool call result content type "
    "issue pull commit branch merge review page button click channel message thread database schema"
)
WORDS = WORDS_TEXT.split()


# -- realistic batches --------------------------------------------------------------------------------


class Workload:
    """Sessions of ``calls_per_session`` tools/call pairs, cut into batches of 500 events.

    Sessions start at random times in the last 7 days (ending before ``now``); calls are ~1.5 s
    apart; 3% of the answers are JSON-RPC errors. ``parallel`` sessions are uploaded at once, their
    batches interleaved, as when several developers' ``km`` upload at the same time (consecutive
    batches of one session would only queue behind each other on the session's row lock)."""

    def __init__(self, now_ns: int, seed: int = 7, calls_per_session: int = 1000, parallel: int = 8) -> None:
        self.rng = random.Random(seed)
        self.now_ns = now_ns
        self.calls_per_session = calls_per_session
        # a pool of texts made of words (they compress like real payloads, ~3:1, not like a repeated string)
        self.texts = [" ".join(self.rng.choices(WORDS, k=220)) for _ in range(3000)]
        self._sessions = [self._session() for _ in range(parallel)]

    def next_batches(self, n: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < n:
            i = len(out) % len(self._sessions)
            batch = next(self._sessions[i], None)
            if batch is None:
                self._sessions[i] = self._session()
                continue
            out.append(batch)
        return out

    def _text(self, size: int) -> str:
        return self.rng.choice(self.texts)[:size]

    def _session(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        span_ns = int(self.calls_per_session * 1.6 * 10**9)
        server, tools = rng.choice(CATALOG)
        session_id = str(uuid_utils.uuid7())
        start = self.now_ns - 7 * DAY_NS + rng.randrange(10**9, 7 * DAY_NS - span_ns - 60 * 10**9)
        session: dict[str, Any] = {
            "id": session_id,
            "name": server,
            "transport": "stdio",
            "started_at": format_ts(start),
            "command": ["npx", "-y", f"@modelcontextprotocol/server-{server}"],
            "cwd": "/home/dev/project",
            "pid": rng.randrange(1000, 60000),
            "client": {"name": "claude-code", "version": "2.1.0"},
            "server": {"name": server, "version": "1.4.2"},
            "protocol_version": "2025-11-25",
            "capabilities": {"tools": {"listChanged": True}},
            "host": f"dev-{rng.randrange(1, 40):02d}",
        }
        ts = start
        events: list[dict[str, Any]] = []
        for call in range(1, self.calls_per_session + 1):
            ts += int(rng.expovariate(1 / 1.5) * 10**9) + 10**6
            tool, median = rng.choice(tools)
            latency = round(median * math.exp(rng.gauss(0, 0.6)), 3)
            request_id = str(uuid_utils.uuid7())
            request = {
                "jsonrpc": "2.0",
                "id": call,
                "method": "tools/call",
                "params": {
                    "name": tool,
                    "arguments": {
                        "path": f"/home/dev/project/src/mod{call % 97}.py",
                        "text": self._text(rng.randrange(800, 1000)),
                    },
                },
            }
            events.append(
                self._event(session_id, ts, "client_to_server", "request", call, tool, request, request_id)
            )
            if rng.random() < 0.03:
                error = {"code": -32603, "message": f"{tool} failed: upstream timeout"}
                reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call, "error": error}
                kind = "error"
            else:
                error = None
                content = [{"type": "text", "text": self._text(rng.randrange(850, 1100))}]
                reply = {"jsonrpc": "2.0", "id": call, "result": {"content": content}}
                kind = "response"
            answer = self._event(
                session_id,
                ts + int(latency * 10**6),
                "server_to_client",
                kind,
                call,
                tool,
                reply,
                str(uuid_utils.uuid7()),
            )
            answer.update(
                latency_ms=latency, request_event_id=request_id, is_error=error is not None, error=error
            )
            events.append(answer)
            if len(events) == BATCH:
                last = call == self.calls_per_session
                if last:
                    session = {**session, "ended_at": format_ts(ts + 10**9), "exit_code": 0}
                yield {"session": session, "events": events}
                events = []

    @staticmethod
    def _event(
        session_id: str,
        ts: int,
        direction: str,
        kind: str,
        call: int,
        tool: str,
        payload: dict[str, Any],
        event_id: str,
    ) -> dict[str, Any]:
        return {
            "id": event_id,
            "session_id": session_id,
            "ts": format_ts(ts),
            "direction": direction,
            "kind": kind,
            "jsonrpc_id": call,
            "method": "tools/call",
            "tool": tool,
            "resource_uri": None,
            "prompt_name": None,
            "latency_ms": None,
            "size_bytes": len(orjson.dumps(payload)) + 1,
            "is_error": False,
            "error": None,
            "truncated": False,
            "request_event_id": None,
            "payload": payload,
        }


def encode(batches: list[dict[str, Any]], compress: bool) -> list[bytes]:
    bodies = [orjson.dumps(b) for b in batches]
    if not compress:
        return bodies
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:  # zlib releases the GIL
        return list(pool.map(lambda b: gzip.compress(b, compresslevel=5), bodies))


# -- servers --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _km(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([KM, *args], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"km {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout.strip()


@dataclass
class Target:
    name: str
    url: str
    cpu_pids: Callable[[], list[int]]
    """The database server's processes (empty for SQLite, which runs inside km serve)."""
    log: Path | None = None
    """km serve's stderr (a file, so that a chatty server never blocks on a full pipe)."""
    key: str = ""
    org_id: str = ""
    processes: int = 1
    """``km serve`` processes on the one database, each on its own port (clients spread over them)."""
    env: dict[str, str] | None = None
    """The environment of ``km`` (``--baseline``: a PYTHONPATH with another tree's code)."""
    serve_args: tuple[str, ...] = ()
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    engine: Engine | None = None

    @property
    def base(self) -> str:
        return self.bases[0]

    @property
    def bases(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def start(self) -> None:
        _km("db", "upgrade", "--db", self.url, env=self.env)
        created = _km("admin", "create-org", "bench", "--plan", "unlimited", "--db", self.url, env=self.env)
        self.org_id = created.split("(", 1)[1].split(")", 1)[0]
        printed = _km(
            "admin", "create-key", "--org", "bench", "--scope", "admin", "--db", self.url, env=self.env
        )
        self.key = printed.split()[-1]
        self.serve()

    def serve(self, append_log: bool = False) -> None:
        """Start the km serve processes on the (migrated) database and wait until they are ready."""
        assert self.log is not None
        self.ports = [_free_port() for _ in range(self.processes)]
        with self.log.open("ab" if append_log else "wb") as log:
            self.procs = [
                subprocess.Popen(
                    [KM, "serve", "--db", self.url, "--port", str(port), "--rate", "0", *self.serve_args],
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env=self.env,
                )
                for port in self.ports
            ]
        deadline = time.monotonic() + 60
        waiting = list(zip(self.procs, self.bases, strict=True))
        while waiting and time.monotonic() < deadline:
            proc, base = waiting[0]
            if proc.poll() is not None:
                raise RuntimeError(f"km serve ({self.name}) exited: {self.log_tail()}")
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    waiting.pop(0)
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        if waiting:
            raise RuntimeError(f"km serve ({self.name}) did not become ready")
        self.engine = store_db.make_engine(self.url)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _postgres_pids(datadir: Path) -> Callable[[], list[int]]:
    def pids() -> list[int]:
        try:
            postmaster = int((datadir / "postmaster.pid").read_text().split()[0])
            proc = psutil.Process(postmaster)
            return [postmaster, *(c.pid for c in proc.children(recursive=True))]
        except (OSError, ValueError, psutil.Error):
            return []

    return pids


# -- ingestion ------------------------------------------------------------------------------------------


@dataclass
class Round:
    events: int
    seconds: float
    server_cpu: float
    db_cpu: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def ingest_round(target: Target, bodies: list[bytes], compressed: bool, clients: int) -> Round:
    headers = {**target.headers, "Content-Type": "application/json"}
    if compressed:
        headers["Content-Encoding"] = "gzip"
    lock = threading.Lock()
    queue = list(reversed(bodies))
    accepted: list[int] = []
    failures: list[str] = []

    def worker(base: str) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                response = client.post("/api/v1/events/batch", content=body)
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:300]}")
                    return
                data = response.json()
                if data["errors"] or data["duplicates"]:
                    failures.append(f"unexpected answer {str(data)[:300]}")
                accepted.append(data["accepted"])

    me = psutil.Process()
    server_cpu0, db_cpu0 = _cpu_seconds(target.pids), _cpu_seconds(target.cpu_pids())
    client_cpu0 = sum(me.cpu_times()[:2])
    bases = target.bases
    threads = [threading.Thread(target=worker, args=(bases[i % len(bases)],)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{target.name}: ingestion failed: {failures[0]}\n{target.log_tail()}")
    return Round(
        events=sum(accepted),
        seconds=seconds,
        server_cpu=_cpu_seconds(target.pids) - server_cpu0,
        db_cpu=_cpu_seconds(target.cpu_pids()) - db_cpu0,
        client_cpu=sum(me.cpu_times()[:2]) - client_cpu0,
    )


# -- statistics -----------------------------------------------------------------------------------------


@dataclass
class StatsResult:
    window: str
    bucket: str
    requests: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    response_bytes: int
    rollup_rows_read: int
    in_process_p50_ms: float
    events_in_answer: int


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def measure_stats(
    target: Target, window: str, days: int, bucket: str, n: int, budget: float, now_ns: int
) -> StatsResult:
    """``n`` sequential requests after 3 warm-ups, or fewer (at least 10) if they take over ``budget`` s."""
    since_ns, until_ns = now_ns - days * DAY_NS, now_ns
    params = {"since": format_ts(since_ns), "until": format_ts(until_ns), "bucket": bucket}
    times: list[float] = []
    size = events = 0
    with httpx.Client(base_url=target.base, headers=target.headers, timeout=120) as client:
        deadline = time.perf_counter() + budget
        for i in range(n + 3):  # three warm-up requests
            if len(times) >= 10 and time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            response = client.get("/api/v1/stats", params=params)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= 3:
                times.append(elapsed * 1000)
            size, events = len(response.content), response.json()["totals"]["events"]
    # rollups.stats() itself, in-process (no HTTP, no JSON): SQL plus aggregation; and how many
    # rollup rows the window's plan reads from the day, hour and minute tables
    assert target.engine is not None
    first, end = since_ns // 60_000_000_000, (until_ns - 1) // 60_000_000_000 + 1
    width = rollups.BUCKETS[bucket]
    in_window = 0
    with target.engine.connect() as conn:
        for table, lo, hi in rollups.plan(first, end, [(t, w) for t, w in rollups.LEVELS if w <= width]):
            c = table.c
            in_window += int(
                conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(c.org_id == target.org_id, c.minute >= lo, c.minute < hi)
                ).scalar_one()
            )
    lib_times: list[float] = []
    for _ in range(5):
        start = time.perf_counter()
        rollups.stats(target.engine, target.org_id, since_ns, until_ns, bucket)
        lib_times.append((time.perf_counter() - start) * 1000)
    return StatsResult(
        window=window,
        bucket=bucket,
        requests=len(times),
        p50_ms=statistics.median(times),
        p95_ms=_pct(times, 95),
        max_ms=max(times),
        response_bytes=size,
        rollup_rows_read=in_window,
        in_process_p50_ms=statistics.median(lib_times),
        events_in_answer=events,
    )


# -- main -------------------------------------------------------------------------------------------------


@dataclass
class Report:
    machine: dict[str, Any]
    settings: dict[str, Any]
    ingest: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    stats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stored: dict[str, dict[str, int]] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)


INGEST_TARGET = 30_000  # events/s into PostgreSQL
STATS_TARGET_MS = 100.0  # p95, at 1,000,000 stored events


def _targets(report: Report, rounds: dict[str, list[Round]]) -> list[str]:
    lines = []
    if "postgresql" in rounds:
        rate = statistics.median(r.rate for r in rounds["postgresql"])
        verdict = "met" if rate >= INGEST_TARGET else "NOT MET"
        lines.append(f"PostgreSQL ingestion >= {INGEST_TARGET:,} events/s: {rate:,.0f} -> {verdict}")
    for name, results in report.stats.items():
        stored = report.stored[name]["events"]
        note = "" if stored >= 1_000_000 else f" (the target is for 1,000,000 events; {stored:,} stored)"
        for s in results:
            verdict = "met" if s["p95_ms"] <= STATS_TARGET_MS else "NOT MET"
            lines.append(
                f"{name} stats {s['window']}/{s['bucket']} p95 <= {STATS_TARGET_MS:.0f} ms: "
                f"{s['p95_ms']:.0f} ms -> {verdict}{note}"
            )
    return lines


def _summary(rounds: list[Round]) -> str:
    rates = [r.rate for r in rounds]
    secs = sum(r.seconds for r in rounds)
    events = sum(r.events for r in rounds)
    server, database, clients = (
        sum(getattr(r, k) for r in rounds) for k in ("server_cpu", "db_cpu", "client_cpu")
    )
    return (
        f"median {statistics.median(rates):>7,.0f} ev/s  (min {min(rates):,.0f}, max {max(rates):,.0f}; "
        f"first {rates[0]:,.0f}, last {rates[-1]:,.0f})\n"
        f"             CPU per event: km serve {server / events * 1e6:.0f} µs, "
        f"database {database / events * 1e6:.0f} µs, clients {clients / events * 1e6:.0f} µs; "
        f"cores busy: km serve {server / secs:.2f}, "
        f"database {database / secs:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="100,000 events per database instead of 1,000,000"
    )
    parser.add_argument("--events", type=int, help="events to store per database (multiple of 500)")
    parser.add_argument("--rounds", type=int, help="ingestion rounds (default 20, quick 10)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (default 4)")
    parser.add_argument("--stats-requests", type=int, default=50, help="per window (default 50)")
    parser.add_argument(
        "--stats-budget",
        type=float,
        default=60.0,
        help="seconds per window; at least 10 requests (default 60)",
    )
    parser.add_argument("--no-gzip", action="store_true", help="send plain JSON bodies")
    parser.add_argument("--only", choices=["postgresql", "sqlite"], help="benchmark one database only")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--processes", type=int, default=1, help="km serve processes per database, one port each (default 1)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="also run km serve with PYTHONPATH=SRC (e.g. another worktree's src) on a database of its "
        "own, its rounds interleaved with this tree's: a before/after in one run",
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra km serve argument, e.g. --serve-arg=--no-analysis (repeatable)",
    )
    args = parser.parse_args()
    total = args.events or (100_000 if args.quick else 1_000_000)
    n_rounds = args.rounds or (10 if args.quick else 20)
    batches_per_round = max(1, total // BATCH // n_rounds)
    compress = not args.no_gzip

    sys.path.insert(0, str(ROOT / "tests"))
    import pg  # the suite's throwaway cluster

    now_ns = time.time_ns()
    report = Report(
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        settings={
            "events": batches_per_round * BATCH * n_rounds,
            "rounds": n_rounds,
            "batch": BATCH,
            "clients": args.clients,
            "gzip": compress,
            "processes": args.processes,
            "serve_args": args.serve_arg,
            "baseline": str(args.baseline) if args.baseline else None,
        },
    )
    print(f"km team-server benchmark: {report.settings}, {report.machine}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="km-bench-server-"))
    cluster = None
    targets: list[Target] = []
    trees: list[tuple[str, dict[str, str] | None]] = [("", None)]
    if args.baseline:
        trees.append(("-baseline", {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}))
    try:
        if args.only != "sqlite":
            cluster = pg.start_cluster()
            for suffix, env in trees:
                url = cluster.create_database(f"kmbench{suffix.replace('-', '_')}")
                log = tmp / f"serve-pg{suffix}.log"
                pids = _postgres_pids(cluster.datadir)
                targets.append(Target(f"postgresql{suffix}", url, pids, log, env=env))
        if args.only != "postgresql":
            for suffix, env in trees:
                url, log = f"sqlite:///{tmp / f'team{suffix}.db'}", tmp / f"serve-sqlite{suffix}.log"
                targets.append(Target(f"sqlite{suffix}", url, lambda: [], log, env=env))
        for t in targets:
            t.processes, t.serve_args = args.processes, tuple(args.serve_arg)
            t.start()
            print(f"  {t.name}: km serve on port(s) {', '.join(map(str, t.ports))}", flush=True)

        workload = Workload(now_ns)
        rounds: dict[str, list[Round]] = {t.name: [] for t in targets}
        gen_seconds = 0.0
        for i in range(n_rounds):
            start = time.perf_counter()
            bodies = encode(workload.next_batches(batches_per_round), compress)
            gen_seconds += time.perf_counter() - start
            order = targets[i % len(targets) :] + targets[: i % len(targets)]  # each goes first in turn
            line = []
            for t in order:
                r = ingest_round(t, bodies, compress, args.clients)
                rounds[t.name].append(r)
                line.append(f"{t.name} {r.rate:>8,.0f} ev/s")
            stored = (i + 1) * batches_per_round * BATCH
            print(f"  round {i + 1:>2}/{n_rounds} ({stored:>9,} stored): {'   '.join(line)}", flush=True)
        print(f"  (generating and compressing the batches, outside the timed rounds: {gen_seconds:.1f} s)")
        avg_body = statistics.mean(len(b) for b in bodies)
        report.settings["avg_body_bytes"] = int(avg_body)

        print("\nIngestion through POST /api/v1/events/batch (500 events a batch):")
        for t in targets:
            print(f"  {t.name:<10} {_summary(rounds[t.name])}")
            report.ingest[t.name] = [{**asdict(r), "rate": r.rate} for r in rounds[t.name]]
        for name in [t.name for t in targets if f"{t.name}-baseline" in rounds]:
            this, base = rounds[name], rounds[f"{name}-baseline"]
            paired = statistics.median(a.rate / b.rate for a, b in zip(this, base, strict=True))
            cpu = sum(r.server_cpu for r in this) / sum(r.events for r in this)
            base_cpu = sum(r.server_cpu for r in base) / sum(r.events for r in base)
            print(
                f"  {name}: this tree / baseline, median of the rounds' ratios: {paired:.2f}x events/s; "
                f"km serve CPU per event {cpu * 1e6:.0f} / {base_cpu * 1e6:.0f} µs"
            )

        print(
            f"\nGET /api/v1/stats (up to {args.stats_requests} sequential requests or "
            f"{args.stats_budget:.0f} s per window, after 3 warm-ups):"
        )
        for t in targets:
            assert t.engine is not None
            with t.engine.connect() as conn:
                n_events = int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())
                n_rollups = int(conn.execute(text("SELECT count(*) FROM rollups")).scalar_one())
            report.stored[t.name] = {"events": n_events, "rollup_rows": n_rollups}
            print(f"  {t.name}: {n_events:,} events stored, {n_rollups:,} rollup rows")
            report.stats[t.name] = []
            for window, days, bucket in (("24h", 1, "hour"), ("7d", 7, "day")):
                s = measure_stats(t, window, days, bucket, args.stats_requests, args.stats_budget, now_ns)
                report.stats[t.name].append(asdict(s))
                print(
                    f"    {window:>3} bucket={bucket:<4} ({s.requests} requests): "
                    f"p50 {s.p50_ms:7.1f} ms  p95 {s.p95_ms:7.1f} ms  "
                    f"max {s.max_ms:7.1f} ms | reads {s.rollup_rows_read:,} rollup rows; "
                    f"rollups.stats() in-process {s.in_process_p50_ms:.1f} ms (p50) | "
                    f"{s.events_in_answer:,} events, {s.response_bytes / 1024:.0f} KB answer"
                )
        report.targets = _targets(report, rounds)
        print("\nTargets:")
        for verdict in report.targets:
            print(f"  {verdict}")
        report.machine["loadavg_at_end"] = os.getloadavg()
        print(f"\nload average at start {report.machine['loadavg_at_start']}, at end {os.getloadavg()}")
        if args.json:
            args.json.write_text(json.dumps(asdict(report), indent=2))
    finally:
        for t in targets:
            t.stop()
        if cluster is not None:
            pg.remove_cluster(cluster)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
