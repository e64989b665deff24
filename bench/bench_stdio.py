"""Side-by-side stdio benchmark: direct vs a plain relay vs ``km monitor`` (capture on), in one run.

    .venv/bin/python bench/bench_stdio.py            # full run (a few minutes)
    .venv/bin/python bench/bench_stdio.py --quick    # short run
    .venv/bin/python bench/bench_stdio.py --json out.json

Three ways for one client to reach the same server, measured in interleaved rounds:

- ``direct``: the client spawns the server and talks to its pipes;
- ``relay``:  through ``bench/plain_relay.py``, two threads copying bytes, no capture (a floor
  for "any Python process in between");
- ``km``:     through ``km monitor -- ...`` with its default capture into SQLite under a
  temporary ``KM_HOME``.

The client and server are minimal on purpose (``bench/raw_server.py``, blocking ``os.read`` /
``os.write``, 1 KB ``tools/call`` requests and answers), so the figures are the transport's and
km's, not the MCP SDK's; a separate section runs the real SDK client against the SDK echo
server (``tests/servers/echo_server.py``) for a realistic figure. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
KM = str(Path(sys.executable).with_name("km"))
RAW_SERVER = [PYTHON, str(HERE / "raw_server.py")]
RELAY = [PYTHON, str(HERE / "plain_relay.py")]
SDK_SERVER = [PYTHON, str(ROOT / "tests" / "servers" / "echo_server.py")]

REQUEST_HEAD = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'
REQUEST_TEXT = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 17)[:923]
REQUEST = REQUEST_HEAD + REQUEST_TEXT + b'"}}}\n'
"""A 1 KB (1024 bytes with a six-digit id) ``tools/call`` request, newline included."""
RESPONSE_ID_AT = len(b'{"jsonrpc":"2.0","id":')
BIG_HEAD = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"big","arguments":{"text":"'
HANDSHAKE_MESSAGES = 3  # initialize request and response, notifications/initialized
READ_SIZE = 1 << 16
LATENCY_BLOCK = 250
"""Back-to-back calls per block; each round cycles the modes block by block."""
SPACED_BLOCK = 50
SPACED_GAP_S = 0.001
"""Spaced calls: about 1 ms apart, so that every call finds km idle (like interactive traffic)."""
MODES = ("direct", "relay", "km")


@dataclass
class Settings:
    rounds: int = 7
    latency_calls: int = 2000
    spaced_calls: int = 600
    throughput_calls: int = 20000
    warmup_calls: int = 2000
    paced_rate: int = 10_000
    paced_seconds: float = 8.0
    big_mb: int = 64
    big_rounds: int = 3
    sdk_rounds: int = 5
    sdk_calls: int = 300


QUICK = Settings(
    rounds=3,
    latency_calls=500,
    spaced_calls=200,
    throughput_calls=5000,
    warmup_calls=1000,
    paced_seconds=3.0,
    big_rounds=1,
    sdk_rounds=3,
    sdk_calls=100,
)


# -- small helpers --------------------------------------------------------------------------------


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


KM_ENV: dict[str, str] = {}
"""Extra settings for every km measured (``--km-thread`` puts KM_RECORDER_PROCESS=0 here)."""
RECORDER_CHILD = "kilometers.recorder_process"
RECORDER_TID = 1 << 62
"""thread_cpu's key for the recorder process's CPU (sorts after every real thread id)."""


def recorder_child(proc: psutil.Process) -> psutil.Process | None:
    """km monitor's recorder process, when it records in one (the default)."""
    with contextlib.suppress(psutil.Error):
        for child in proc.children():
            with contextlib.suppress(psutil.Error):
                if RECORDER_CHILD in child.cmdline():
                    return child
    return None


def family(proc: psutil.Process) -> list[psutil.Process]:
    """The process and, for km, its recorder process: km's cost is both."""
    child = recorder_child(proc)
    return [proc] if child is None else [proc, child]


def cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in family(proc):
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += float(times.user + times.system)
    return total


def thread_cpu(proc: psutil.Process) -> dict[int, float]:
    threads = {t.id: t.user_time + t.system_time for t in proc.threads()}
    child = recorder_child(proc)
    if child is not None:
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            threads[RECORDER_TID] = times.user + times.system
    return threads


def _peak_rss_one(proc: psutil.Process) -> float:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float(proc.memory_info().rss) / 2**20


def peak_rss_mb(proc: psutil.Process) -> float:
    """Peak resident set (VmHWM on Linux; current RSS elsewhere), summed over km's processes."""
    return sum(_peak_rss_one(p) for p in family(proc))


def rss_mb(proc: psutil.Process) -> float:
    total = 0.0
    for p in family(proc):
        with contextlib.suppress(psutil.Error):
            total += float(p.memory_info().rss) / 2**20
    return total


def wait_idle(proc: psutil.Process, timeout: float = 180.0) -> float:
    """Wait until ``proc`` stops using CPU (e.g. km's recorder has stored its backlog).

    Returns the seconds waited. Used after every timed phase so that one mode's background
    work never runs during the next mode's measurement, and CPU accounting is complete.
    """
    start = time.perf_counter()
    last = cpu_seconds(proc)
    quiet = 0
    while time.perf_counter() - start < timeout:
        time.sleep(0.05)
        now = cpu_seconds(proc)
        quiet = quiet + 1 if now - last < 0.0005 else 0
        last = now
        if quiet >= 3:
            break
    return time.perf_counter() - start


def machine() -> dict[str, Any]:
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }


# -- one client connection ------------------------------------------------------------------------


class Endpoint:
    """The client side of one connection: a process spawned with pipes on its stdin/stdout.

    ``proc`` is the process the client spawned: the server itself (direct), the plain relay or
    km. CPU and memory figures are taken from that process only (for km: km's own threads).
    """

    def __init__(
        self,
        mode: str,
        server: list[str],
        km_home: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.mode = mode
        self.km_home = km_home
        if mode == "direct":
            argv = server
        elif mode == "relay":
            argv = [*RELAY, *server]
        else:
            argv = [KM, "monitor", "--", *server]
        # km's settings come from KM_* variables too: start from none, so that the shell's cannot
        # change what is measured (a KM_DB elsewhere, an uploader via KM_API_URL, a payload limit)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        if km_home is not None:
            env["KM_HOME"] = str(km_home)
        if mode == "km":
            env.update(KM_ENV)
        env.update(extra_env or {})
        self.spawned = time.perf_counter()
        self.popen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env)
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.wfd = self.popen.stdin.fileno()
        self.rfd = self.popen.stdout.fileno()
        self.proc = psutil.Process(self.popen.pid)
        self.next_id = 1
        self.calls = 0
        self.messages = 0
        """Messages that went through: everything written plus every answer read."""

    def take_ids(self, n: int) -> int:
        first = self.next_id
        self.next_id += n
        self.calls += n
        self.messages += 2 * n
        return first

    def read_line(self) -> bytes:
        data = os.read(self.rfd, READ_SIZE)
        while not data.endswith(b"\n"):
            more = os.read(self.rfd, READ_SIZE)
            if not more:
                raise RuntimeError(f"{self.mode}: the server closed its stdout")
            data += more
        return data

    def handshake(self) -> float:
        """initialize + notifications/initialized; returns seconds from spawn to the first answer."""
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "km-bench", "version": "1"},
            },
        }
        write_all(self.wfd, json.dumps(init).encode() + b"\n")
        self.read_line()
        startup = time.perf_counter() - self.spawned
        write_all(self.wfd, b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        self.messages += HANDSHAKE_MESSAGES
        return startup

    def close(self, timeout: float = 300.0) -> float:
        """Close the client's end; returns the seconds until the process exited."""
        start = time.perf_counter()
        assert self.popen.stdin is not None
        self.popen.stdin.close()
        self.popen.wait(timeout)
        assert self.popen.stdout is not None
        self.popen.stdout.close()
        return time.perf_counter() - start


# -- the measurements -----------------------------------------------------------------------------


def latency_round(ep: Endpoint, n: int) -> list[float]:
    """n sequential 1 KB calls: write one request, read one answer. Round trips in µs."""
    first = ep.take_ids(n)
    requests = [REQUEST % i for i in range(first, first + n)]
    write, read, clock = os.write, os.read, time.perf_counter_ns
    wfd, rfd = ep.wfd, ep.rfd
    samples: list[int] = []
    append = samples.append
    for request in requests:
        start = clock()
        write(wfd, request)  # 1 KB < PIPE_BUF: one atomic write
        data = read(rfd, READ_SIZE)
        while data[-1:] != b"\n":
            more = read(rfd, READ_SIZE)
            if not more:
                raise RuntimeError(f"{ep.mode}: the server closed its stdout")
            data += more
        append(clock() - start)
    return [s / 1000 for s in samples]


def throughput_round(ep: Endpoint, n: int) -> float:
    """n pipelined calls: a writer thread sends all requests (one write each) while this
    thread reads answers. Returns calls per second, first write to last answer."""
    first = ep.take_ids(n)
    requests = [REQUEST % i for i in range(first, first + n)]
    wfd, rfd = ep.wfd, ep.rfd

    def writer() -> None:
        write = os.write
        for request in requests:
            write(wfd, request)

    thread = threading.Thread(target=writer)
    read = os.read
    got = 0
    start = time.perf_counter()
    thread.start()
    while got < n:
        data = read(rfd, READ_SIZE)
        if not data:
            raise RuntimeError(f"{ep.mode}: the server closed its stdout")
        got += data.count(b"\n")
    elapsed = time.perf_counter() - start
    thread.join()
    return n / elapsed


@dataclass
class PhaseCost:
    cpu_s: float = 0.0
    calls: int = 0
    threads: dict[int, float] | None = None

    def per_call_us(self) -> float:
        return self.cpu_s / self.calls * 1e6 if self.calls else float("nan")


@contextlib.contextmanager
def accounted(ep: Endpoint, cost: PhaseCost, calls: int) -> Iterator[None]:
    """Adds the CPU ``ep.proc`` spends on a phase, background work included, to ``cost``."""
    before, threads_before = cpu_seconds(ep.proc), thread_cpu(ep.proc)
    yield
    wait_idle(ep.proc)
    cost.cpu_s += cpu_seconds(ep.proc) - before
    cost.calls += calls
    threads_after = thread_cpu(ep.proc)
    acc = cost.threads or {}
    for tid, t in threads_after.items():
        acc[tid] = acc.get(tid, 0.0) + t - threads_before.get(tid, 0.0)
    cost.threads = acc


KM_THREADS = ("main", "recorder", "c2s", "s2c")
"""km monitor's threads in creation order with the in-process recorder (KM_RECORDER_PROCESS=0)."""
KM_PROCESS_THREADS = ("main", "feeder", "c2s", "s2c", "recorder process")
"""With the recorder process (the default): km's threads, then the whole recorder process."""


def thread_split(cost: PhaseCost) -> dict[str, float]:
    """Per-thread CPU µs per call, named by creation order (thread ids are allocated in order)."""
    ordered = [t for _tid, t in sorted((cost.threads or {}).items())]
    names: Sequence[str] = [f"thread{i}" for i in range(len(ordered))]
    for known in (KM_THREADS, KM_PROCESS_THREADS):
        if len(ordered) == len(known) and (known is KM_THREADS) != (RECORDER_TID in (cost.threads or {})):
            names = known
    return {name: round(t / max(cost.calls, 1) * 1e6, 1) for name, t in zip(names, ordered, strict=True)}


def warm_up(ep: Endpoint, s: Settings) -> None:
    latency_round(ep, s.warmup_calls)
    throughput_round(ep, s.warmup_calls)
    wait_idle(ep.proc)


def _stored_so_far(home: Path) -> tuple[sqlite3.Connection, int] | None:
    """A read-only connection to km's store and the events it holds, or None while it does not
    exist or has no events table yet."""
    try:
        con = sqlite3.connect(f"file:{home / 'km.db'}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return None
    try:
        return con, con.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.OperationalError:
        con.close()
        return None


def stored_counts(km_home: Path) -> dict[str, Any]:
    """What km stored, read straight from its SQLite file."""
    con = sqlite3.connect(f"file:{km_home / 'km.db'}?mode=ro", uri=True)
    try:
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        rows = con.execute(
            "SELECT event_count, dropped_events, ended_ns IS NOT NULL FROM sessions"
        ).fetchall()
    finally:
        con.close()
    return {
        "events": events,
        "sessions": len(rows),
        "session_event_count": sum(r[0] for r in rows),
        "dropped_events": sum(r[1] for r in rows),
        "sessions_ended": all(r[2] for r in rows),
    }


def spaced_latency(ep: Endpoint, n: int, gap_s: float) -> list[float]:
    """n calls about gap_s apart (interactive traffic: km is idle when each call arrives)."""
    samples: list[float] = []
    for _ in range(n):
        samples.extend(latency_round(ep, 1))
        time.sleep(gap_s)
    return samples


class LatencyStats:
    """Per-round p50/p99 for each mode (rounds interleave the modes block by block)."""

    def __init__(self) -> None:
        self.rounds: dict[str, list[list[float]]] = {m: [] for m in MODES}

    def add_round(self, samples: dict[str, list[float]]) -> None:
        for mode, values in samples.items():
            self.rounds[mode].append(values)

    def per_round(self, mode: str, q: float) -> list[float]:
        return [pct(values, q) for values in self.rounds[mode]]

    def summary(self) -> dict[str, Any]:
        pooled = {m: [x for values in self.rounds[m] for x in values] for m in MODES}
        out: dict[str, Any] = {
            m: {
                "p50": median(self.per_round(m, 50)),
                "p99": median(self.per_round(m, 99)),
                "pooled_p99": pct(pooled[m], 99),
                "pooled_p999": pct(pooled[m], 99.9),
            }
            for m in MODES
        }
        out["added"] = {
            m: {
                q_name: median(
                    [a - b for a, b in zip(self.per_round(m, q), self.per_round("direct", q), strict=True)]
                )
                for q_name, q in (("p50", 50), ("p99", 99))
            }
            for m in ("relay", "km")
        }
        return out


def run_main_rounds(s: Settings, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Latency (back to back and spaced) and pipelined throughput; the three modes are
    interleaved in small blocks within every round so that bursts of noise hit them alike."""
    endpoints = {
        "direct": Endpoint("direct", RAW_SERVER),
        "relay": Endpoint("relay", RAW_SERVER),
        "km": Endpoint("km", RAW_SERVER, tmp / "home-main"),
    }
    startup = {mode: ep.handshake() for mode, ep in endpoints.items()}
    km = endpoints["km"]
    latency_round(km, 200)
    wait_idle(km.proc)
    km_rss_base = rss_mb(km.proc)
    for ep in endpoints.values():
        warm_up(ep, s)
    km_rss_warm = rss_mb(km.proc)

    back_to_back, spaced = LatencyStats(), LatencyStats()
    tput: dict[str, list[float]] = {m: [] for m in MODES}
    lat_cost = {m: PhaseCost() for m in MODES}
    tput_cost = {m: PhaseCost() for m in MODES}
    for r in range(s.rounds):
        order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
        samples: dict[str, list[float]] = {m: [] for m in MODES}
        for b in range(max(1, s.latency_calls // LATENCY_BLOCK)):
            for mode in order[b % 3 :] + order[: b % 3]:
                ep = endpoints[mode]
                with accounted(ep, lat_cost[mode], LATENCY_BLOCK):
                    samples[mode].extend(latency_round(ep, LATENCY_BLOCK))
        back_to_back.add_round(samples)
        samples = {m: [] for m in MODES}
        for b in range(max(1, s.spaced_calls // SPACED_BLOCK)):
            for mode in order[b % 3 :] + order[: b % 3]:
                samples[mode].extend(spaced_latency(endpoints[mode], SPACED_BLOCK, SPACED_GAP_S))
        spaced.add_round(samples)
        for ep in endpoints.values():
            wait_idle(ep.proc)
        for mode in order:
            ep = endpoints[mode]
            with accounted(ep, tput_cost[mode], s.throughput_calls):
                tput[mode].append(throughput_round(ep, s.throughput_calls))
        log(
            f"  round {r + 1}/{s.rounds}: p50 µs back to back "
            + " ".join(f"{m}={back_to_back.per_round(m, 50)[-1]:.0f}" for m in MODES)
            + ", spaced "
            + " ".join(f"{m}={spaced.per_round(m, 50)[-1]:.0f}" for m in MODES)
            + " | calls/s "
            + " ".join(f"{m}={tput[m][-1]:.0f}" for m in MODES)
        )
    km_rss_peak = peak_rss_mb(km.proc)
    km_rss_idle = rss_mb(km.proc)
    expected = km.messages
    drain = {mode: ep.close() for mode, ep in endpoints.items()}
    stored = stored_counts(tmp / "home-main")
    return {
        "startup_s": startup,
        "latency_us": back_to_back.summary(),
        "spaced_latency_us": spaced.summary(),
        "throughput": {m: median(tput[m]) for m in MODES},
        "throughput_ratio": {
            m: median([a / b for a, b in zip(tput[m], tput["direct"], strict=True)]) for m in ("relay", "km")
        },
        "throughput_rounds": tput,
        "cpu_per_call_us": {
            m: {"latency": lat_cost[m].per_call_us(), "throughput": tput_cost[m].per_call_us()} for m in MODES
        },
        "km_thread_cpu_us_per_call": {
            "sequential": thread_split(lat_cost["km"]),
            "pipelined": thread_split(tput_cost["km"]),
        },
        "km_rss_mb": {
            "base": km_rss_base,
            "after_warmup": km_rss_warm,
            "idle_after_runs": km_rss_idle,
            "peak": km_rss_peak,
        },
        "km_close_s": drain["km"],
        "km_stored": {**stored, "expected": expected},
    }


def paced_run(mode: str, s: Settings, tmp: Path) -> dict[str, Any]:
    """A steady s.paced_rate calls/s (each call is a request and its answer) for s.paced_seconds;
    for km, then checks that every message is in the store."""
    home = tmp / f"home-paced-{mode}" if mode == "km" else None
    ep = Endpoint(mode, RAW_SERVER, home)
    ep.handshake()
    warm_up(ep, s)
    rate = s.paced_rate
    n = int(rate * s.paced_seconds)
    first = ep.take_ids(n)
    sent_at = [0] * n
    wfd, rfd = ep.wfd, ep.rfd
    clock = time.perf_counter_ns
    done_sending = [0]
    sent = [0]

    def writer() -> None:
        write = os.write
        start = clock()
        i = 0
        while i < n:
            due = min(n, (clock() - start) * rate // 1_000_000_000 + 1)
            while i < due:
                sent_at[i] = clock()
                write(wfd, REQUEST % (first + i))
                i += 1
            sent[0] = i
            time.sleep(0.0002)
        done_sending[0] = clock() - start

    backlog: list[int] = []
    rss: list[float] = []
    received = [0]
    stop = threading.Event()

    def sampler() -> None:
        # the store may not exist yet (the agent makes and migrates it, in its own time): counted
        # from when it does, with what it held then as the base
        opened = _stored_so_far(home) if home else None
        while not stop.wait(0.5):
            rss.append(rss_mb(ep.proc))
            if opened is None and home is not None:
                opened = _stored_so_far(home)
            if opened is not None:
                con, base = opened
                stored = con.execute("SELECT count(*) FROM events").fetchone()[0] - base
                backlog.append(max(0, sent[0] + received[0] - stored))
        if opened is not None:
            opened[0].close()

    latencies: list[int] = []
    cpu_before = cpu_seconds(ep.proc)
    threads = [threading.Thread(target=writer), threading.Thread(target=sampler)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    read = os.read
    pending = b""
    while received[0] < n:
        data = read(rfd, READ_SIZE)
        now = clock()
        if not data:
            raise RuntimeError(f"{mode}: the server closed its stdout")
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        for line in lines:
            comma = line.index(b",", RESPONSE_ID_AT)
            latencies.append(now - sent_at[int(line[RESPONSE_ID_AT:comma]) - first])
        received[0] += len(lines)
    wall = time.perf_counter() - wall
    cpu_run = cpu_seconds(ep.proc) - cpu_before
    stop.set()
    for t in threads:
        t.join()
    idle_s = wait_idle(ep.proc)
    cpu_all = cpu_seconds(ep.proc) - cpu_before
    peak = peak_rss_mb(ep.proc)
    expected = ep.messages
    close_s = ep.close()
    result: dict[str, Any] = {
        "calls": n,
        "achieved_calls_per_s": n / (done_sending[0] / 1e9),
        "messages_per_s": 2 * n / wall,
        "latency_us": {
            "p50": pct([x / 1000 for x in latencies], 50),
            "p99": pct([x / 1000 for x in latencies], 99),
        },
        "cpu_percent_during_run": 100 * cpu_run / wall,
        "cpu_per_call_us": cpu_all / n * 1e6,
        "catch_up_s": idle_s,
        "close_s": close_s,
        "peak_rss_mb": peak,
        "max_rss_sampled_mb": max(rss, default=float("nan")),
    }
    if home is not None:
        result["max_store_backlog_messages"] = max(backlog, default=0)
        result["stored"] = {**stored_counts(home), "expected": expected}
    return result


def big_round(ep: Endpoint, request: bytes) -> float:
    """One large request, echoed back whole by the server. Seconds until the answer is read."""
    ep.take_ids(1)
    thread = threading.Thread(target=write_all, args=(ep.wfd, request))
    parts: list[bytes] = []
    start = time.perf_counter()
    thread.start()
    while True:
        data = os.read(ep.rfd, 1 << 20)
        if not data:
            raise RuntimeError(f"{ep.mode}: the server closed its stdout")
        parts.append(data)
        if data.endswith(b"\n"):
            break
    elapsed = time.perf_counter() - start
    thread.join()
    if sum(len(p) for p in parts) < len(request) - 100:
        raise RuntimeError(f"{ep.mode}: short answer to the large message")
    return elapsed


def run_big(s: Settings, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    size = s.big_mb * 2**20
    home = tmp / "home-big"
    endpoints = {
        "direct": Endpoint("direct", RAW_SERVER),
        "relay": Endpoint("relay", RAW_SERVER),
        "km": Endpoint("km", RAW_SERVER, home),
    }
    for ep in endpoints.values():
        ep.handshake()
        latency_round(ep, 200)
        wait_idle(ep.proc)
    km = endpoints["km"]
    rss_before = rss_mb(km.proc)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    store_s: list[float] = []
    for r in range(s.big_rounds):
        order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
        for mode in order:
            ep = endpoints[mode]
            request = BIG_HEAD % ep.next_id + b"x" * size + b'"}}}\n'
            times[mode].append(big_round(ep, request))
            del request
            waited = wait_idle(ep.proc)
            if mode == "km":
                store_s.append(waited)
        log(f"  round {r + 1}/{s.big_rounds}: s " + " ".join(f"{m}={times[m][-1]:.3f}" for m in MODES))
    peak = peak_rss_mb(km.proc)
    rss_after = rss_mb(km.proc)
    for ep in endpoints.values():
        ep.close()
    con = sqlite3.connect(f"file:{home / 'km.db'}?mode=ro", uri=True)
    big_stored = con.execute("SELECT count(*) FROM events WHERE size_bytes >= ?", (size,)).fetchone()[0]
    con.close()
    return {
        "size_mb": s.big_mb,
        "seconds": {m: median(times[m]) for m in MODES},
        "ratio_km": median(times["km"]) / median(times["direct"]),
        "km_store_s": median(store_s),
        "km_rss_mb": {"before": rss_before, "peak": peak, "after": rss_after},
        "km_stored_big_events": big_stored,
        "expected_big_events": 2 * s.big_rounds,
    }


async def _sdk_async(s: Settings, tmp: Path, text: str) -> dict[str, Any]:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = {
        "direct": StdioServerParameters(command=SDK_SERVER[0], args=SDK_SERVER[1:]),
        "km": StdioServerParameters(
            command=KM, args=["monitor", "--", *SDK_SERVER], env={"KM_HOME": str(tmp / "home-sdk")}
        ),
    }
    samples: dict[str, list[float]] = {"direct": [], "km": []}
    p50: dict[str, list[float]] = {"direct": [], "km": []}
    rates: dict[str, list[float]] = {"direct": [], "km": []}
    with open(os.devnull, "w") as devnull:
        async with contextlib.AsyncExitStack() as stack:
            sessions = {}
            for mode, param in params.items():
                read, write = await stack.enter_async_context(stdio_client(param, errlog=devnull))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                for _ in range(50):
                    await session.call_tool("echo", {"text": text})
                sessions[mode] = session
            for r in range(s.sdk_rounds):
                for mode in ("direct", "km") if r % 2 == 0 else ("km", "direct"):
                    round_samples = []
                    for _ in range(s.sdk_calls):
                        start = time.perf_counter_ns()
                        await sessions[mode].call_tool("echo", {"text": text})
                        round_samples.append((time.perf_counter_ns() - start) / 1000)
                    samples[mode].extend(round_samples)
                    p50[mode].append(pct(round_samples, 50))
                    rates[mode].append(await _sdk_concurrent(sessions[mode], s.sdk_calls, text))
    return {
        "latency_us": {m: {"p50": median(p50[m]), "p99": pct(samples[m], 99)} for m in samples},
        "added_p50_us": median([a - b for a, b in zip(p50["km"], p50["direct"], strict=True)]),
        "concurrency": SDK_CONCURRENCY,
        "calls_per_s": {m: median(rates[m]) for m in rates},
        "calls_per_s_ratio": median([a / b for a, b in zip(rates["km"], rates["direct"], strict=True)]),
    }


SDK_CONCURRENCY = 8


async def _sdk_concurrent(session: Any, calls: int, text: str) -> float:
    """calls/s with SDK_CONCURRENCY calls in flight at once."""
    import anyio

    async def worker(n: int) -> None:
        for _ in range(n):
            await session.call_tool("echo", {"text": text})

    start = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(SDK_CONCURRENCY):
            group.start_soon(worker, calls // SDK_CONCURRENCY)
    return (calls // SDK_CONCURRENCY * SDK_CONCURRENCY) / (time.perf_counter() - start)


def run_sdk(s: Settings, tmp: Path) -> dict[str, Any]:
    import anyio

    text = (REQUEST_TEXT * 2)[:1000].decode()
    result: dict[str, Any] = anyio.run(_sdk_async, s, tmp, text)
    return result


# -- report ---------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Prints the tables; returns the target rows (name, measured, target, status)."""
    m = results["main"]
    cpu = m["cpu_per_call_us"]
    print()
    print("1 KB tools/call, raw client <-> raw server (medians over rounds)")
    print(f"  {'':34}{'direct':>10}{'relay':>10}{'km':>10}{'km-direct':>11}{'km/direct':>11}")
    for section, title in (("latency_us", "back to back"), ("spaced_latency_us", "spaced ~1 ms")):
        lat = m[section]
        for key in ("p50", "p99"):
            d, r, k = lat["direct"][key], lat["relay"][key], lat["km"][key]
            label = f"{title}: round trip {key} (µs)"
            print(f"  {label:34}{d:10.1f}{r:10.1f}{k:10.1f}{lat['added']['km'][key]:11.1f}{k / d:11.2f}")
        d, r, k = (lat[x]["pooled_p999"] for x in MODES)
        label = f"{title}: p99.9 pooled (µs)"
        print(f"  {label:34}{d:10.1f}{r:10.1f}{k:10.1f}{k - d:11.1f}{k / d:11.2f}")
    t = m["throughput"]
    print(
        f"  {'pipelined calls/s':34}{t['direct']:10.0f}{t['relay']:10.0f}{t['km']:10.0f}"
        f"{'':11}{m['throughput_ratio']['km']:11.3f}"
    )
    print(
        f"  {'CPU per call, sequential (µs)':34}{cpu['direct']['latency']:10.1f}"
        f"{cpu['relay']['latency']:10.1f}{cpu['km']['latency']:10.1f}"
    )
    print(
        f"  {'CPU per call, pipelined (µs)':34}{cpu['direct']['throughput']:10.1f}"
        f"{cpu['relay']['throughput']:10.1f}{cpu['km']['throughput']:10.1f}"
    )
    st = m["startup_s"]
    print(
        f"  {'spawn -> initialize answer (ms)':34}{st['direct'] * 1e3:10.0f}{st['relay'] * 1e3:10.0f}", end=""
    )
    print(f"{st['km'] * 1e3:10.0f}")
    print("  (CPU: the spawned process only: the server for direct, the relay; km with its recorder process)")
    for section, title in (("latency_us", "back to back"), ("spaced_latency_us", "spaced")):
        relay = m[section]["added"]["relay"]
        print(f"  relay added p50/p99, {title}: {relay['p50']:.1f} / {relay['p99']:.1f} µs")
    print(f"  relay calls/s ratio {m['throughput_ratio']['relay']:.3f}")
    for phase, split in m["km_thread_cpu_us_per_call"].items():
        print(f"  km CPU µs per call by thread, {phase}: " + ", ".join(f"{k} {v}" for k, v in split.items()))
    rss = m["km_rss_mb"]
    print(
        f"  km RSS: {rss['base']:.1f} MB after 200 calls, {rss['after_warmup']:.1f} MB after warm-up, "
        f"{rss['idle_after_runs']:.1f} MB idle after "
        f"the rounds, peak {rss['peak']:.1f} MB (the peak includes the recorder's backlog during bursts)"
    )
    ks = m["km_stored"]
    print(
        f"  km stored {ks['events']} of {ks['expected']} messages, dropped_events={ks['dropped_events']}, "
        f"exit after stdin close {m['km_close_s']:.2f} s"
    )

    p = results["paced"]
    pk, pd = p["km"], p["direct"]
    print()
    print(f"Paced {results['settings']['paced_rate']} calls/s for {results['settings']['paced_seconds']} s")
    print(f"  {'':34}{'direct':>10}{'km':>10}")
    print(f"  {'achieved calls/s':34}{pd['achieved_calls_per_s']:10.0f}{pk['achieved_calls_per_s']:10.0f}")
    print(f"  {'messages/s through':34}{pd['messages_per_s']:10.0f}{pk['messages_per_s']:10.0f}")
    for key in ("p50", "p99"):
        label = f"round trip {key} under load (µs)"
        print(f"  {label:34}{pd['latency_us'][key]:10.1f}{pk['latency_us'][key]:10.1f}")
    print(
        f"  {'process CPU % during run':34}{pd['cpu_percent_during_run']:10.1f}"
        f"{pk['cpu_percent_during_run']:10.1f}"
    )
    print(f"  {'CPU per call (µs)':34}{pd['cpu_per_call_us']:10.1f}{pk['cpu_per_call_us']:10.1f}")
    print(f"  {'peak RSS (MB)':34}{pd['peak_rss_mb']:10.1f}{pk['peak_rss_mb']:10.1f}")
    sk = pk["stored"]
    print(
        f"  km stored {sk['events']} of {sk['expected']} messages, dropped_events={sk['dropped_events']}, "
        f"max store backlog {pk['max_store_backlog_messages']} messages, "
        f"caught up {pk['catch_up_s']:.2f} s after the last answer"
    )

    b = results["big"]
    print()
    print(f"One {b['size_mb']} MB tools/call request, echoed back whole ({b['size_mb']} MB each way)")
    sec = b["seconds"]
    print(
        f"  round trip (s): direct {sec['direct']:.3f}, relay {sec['relay']:.3f}, km {sec['km']:.3f} "
        f"(km/direct {b['ratio_km']:.2f}); km stored both in {b['km_store_s']:.2f} s more"
    )
    br = b["km_rss_mb"]
    print(
        f"  km RSS: {br['before']:.1f} MB before, peak {br['peak']:.1f} MB, {br['after']:.1f} MB after; "
        f"stored {b['km_stored_big_events']} of {b['expected_big_events']} large messages"
    )

    if "sdk" in results:
        sdk = results["sdk"]["latency_us"]
        print()
        print("MCP SDK client -> SDK echo server (tests/servers/echo_server.py), 1 KB echo calls")
        print(
            f"  p50 µs: direct {sdk['direct']['p50']:.0f}, km {sdk['km']['p50']:.0f} "
            f"(added {results['sdk']['added_p50_us']:.0f}); "
            f"p99 µs: direct {sdk['direct']['p99']:.0f}, km {sdk['km']['p99']:.0f}"
        )
        rate = results["sdk"]["calls_per_s"]
        print(
            f"  calls/s with {results['sdk']['concurrency']} in flight: direct {rate['direct']:.0f}, "
            f"km {rate['km']:.0f} (km/direct {results['sdk']['calls_per_s_ratio']:.2f})"
        )

    ok_store = ks["events"] == ks["expected"] and ks["dropped_events"] == 0
    ok_paced = sk["events"] == sk["expected"] and sk["dropped_events"] == 0
    per_call = max(cpu["km"]["latency"], cpu["km"]["throughput"])
    rows = []
    for section, title in (("latency_us", "back to back"), ("spaced_latency_us", "spaced")):
        add = m[section]["added"]["km"]
        rows.append((f"added p50, {title}", f"{add['p50']:.1f} µs", "≤ 50 µs", verdict(add["p50"] <= 50)))
        rows.append((f"added p99, {title}", f"{add['p99']:.1f} µs", "≤ 300 µs", verdict(add["p99"] <= 300)))
    rows += [
        (
            "pipelined calls/s vs direct",
            f"{m['throughput_ratio']['km']:.3f}",
            "≥ 0.97",
            verdict(m["throughput_ratio"]["km"] >= 0.97),
        ),
        (
            "km CPU per 1 KB call",
            f"{cpu['km']['latency']:.0f} seq / {cpu['km']['throughput']:.0f} pipelined µs",
            "≤ 150 µs",
            verdict(per_call <= 150),
        ),
        (
            f"dropped at {results['settings']['paced_rate']} calls/s",
            f"{sk['expected'] - sk['events']} missing, dropped_events={sk['dropped_events']}",
            "0",
            verdict(ok_paced),
        ),
        (
            "km RSS base / peak (with backlog)",
            f"{rss['base']:.1f} / {rss['peak']:.1f} MB",
            "≤ 60 MB + buffers",
            verdict(rss["base"] <= 60),
        ),
        ("every message stored (main run)", f"{ks['events']}/{ks['expected']}", "all", verdict(ok_store)),
    ]
    print()
    print("Targets")
    for name, measured, target, status in rows:
        print(f"  {name:34}{measured:>40}  {target:>10}  {status}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a short run (fewer rounds and calls)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds for latency and throughput")
    parser.add_argument("--paced-rate", type=int, help="calls/s for the paced run (default 10000)")
    parser.add_argument("--paced-seconds", type=float, help="length of the paced run (default 8, quick 3)")
    parser.add_argument("--no-sdk", action="store_true", help="skip the MCP SDK client/server section")
    parser.add_argument("--json", type=Path, help="also write all results to this JSON file")
    parser.add_argument(
        "--km-thread",
        action="store_true",
        help="measure km with its recorder thread in-process (KM_RECORDER_PROCESS=0), the earlier design",
    )
    args = parser.parse_args()
    if args.km_thread:
        KM_ENV["KM_RECORDER_PROCESS"] = "0"
    s = replace(QUICK if args.quick else Settings())
    if args.rounds:
        s.rounds = args.rounds
    if args.paced_rate:
        s.paced_rate = args.paced_rate
    if args.paced_seconds:
        s.paced_seconds = args.paced_seconds

    def log(line: str) -> None:
        print(line, flush=True)

    results: dict[str, Any] = {"machine": machine(), "settings": asdict(s)}
    info = results["machine"]
    log(
        f"km stdio benchmark: {info['cpus']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"load average {info['loadavg_start']}"
    )
    with tempfile.TemporaryDirectory(prefix="km-bench-") as tmp_name:
        tmp = Path(tmp_name)
        log(
            f"latency and throughput: {s.rounds} interleaved rounds of {s.latency_calls} sequential and "
            f"{s.throughput_calls} pipelined calls"
        )
        results["main"] = run_main_rounds(s, tmp, log)
        log(f"paced: {s.paced_rate} calls/s for {s.paced_seconds} s, direct then km")
        results["paced"] = {mode: paced_run(mode, s, tmp) for mode in ("direct", "km")}
        log(f"large message: {s.big_mb} MB, {s.big_rounds} round(s)")
        results["big"] = run_big(s, tmp, log)
        if not args.no_sdk:
            log(
                f"MCP SDK: {s.sdk_rounds} rounds of {s.sdk_calls} sequential calls, "
                f"then {s.sdk_calls} concurrent ones"
            )
            results["sdk"] = run_sdk(s, tmp)
    results["machine"]["loadavg_end"] = (
        [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    )
    rows = report(results)
    results["targets"] = [
        dict(zip(("name", "measured", "target", "status"), row, strict=True)) for row in rows
    ]
    print(f"\nload average at the end: {results['machine']['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
