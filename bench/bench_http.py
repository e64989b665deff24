"""Side-by-side benchmark of ``km proxy`` (remote MCP servers over HTTP): direct vs through km, one run.

    .venv/bin/python bench/bench_http.py            # full run (a few minutes)
    .venv/bin/python bench/bench_http.py --quick    # short run
    .venv/bin/python bench/bench_http.py --json out.json

Three ways for one client to reach the same server, measured in interleaved rounds:

- ``direct``: the client talks to the server's port;
- ``km``:     the client talks to ``km proxy --upstream <server>`` (capture on, every message stored
  in SQLite under a temporary ``KM_HOME``), which hands its sessions to the user's agent (the
  default); km's CPU is the proxy's plus the agent's;
- ``km-own``: the same with ``KM_AGENT=0``: km proxy records in its own process, as before.

Sections:

1. A minimal client (blocking sockets, HTTP/1.1 keep-alive) and a minimal Streamable HTTP server
   (``bench/http_raw_server.py``, JSON answers): 1 KB ``tools/call`` round trips, back to back and
   spaced ~1 ms apart (interactive traffic), p50/p99; then requests/s with several connections
   sending back to back, and km's CPU per request. These are the transport's and km's figures.
2. The real MCP SDK client (``streamable_http_client``) against
   ``@modelcontextprotocol/server-everything streamableHttp`` (answers as SSE streams): the
   ``echo`` tool one call at a time (latency) and with 8 calls in flight (calls/s).

Afterwards the store is read back to check that every message was recorded. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
KM = str(Path(sys.executable).with_name("km"))
RAW_SERVER = [PYTHON, str(HERE / "http_raw_server.py")]
EVERYTHING = str(ROOT / "node_modules" / ".bin" / "mcp-server-everything")
MODES = ("direct", "km", "km-own")
KM_MODES = ("km", "km-own")
TEXT = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 17)[:923]
CALL = (
    b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'
    + TEXT
    + b'"}}}'
)
INIT = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
)
SPACED_GAP_S = 0.001


@dataclass
class Settings:
    rounds: int = 7
    latency_calls: int = 400
    spaced_calls: int = 150
    warmup_calls: int = 500
    throughput_seconds: float = 4.0
    connections: int = 8
    sdk_rounds: int = 5
    sdk_calls: int = 150
    sdk_in_flight: int = 8


QUICK = Settings(
    rounds=3,
    latency_calls=200,
    spaced_calls=60,
    warmup_calls=200,
    throughput_seconds=2.0,
    sdk_rounds=2,
    sdk_calls=60,
)


# -- helpers ----------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def wait_idle(proc: psutil.Process, timeout: float = 120.0) -> None:
    """Wait until ``proc`` stops using CPU (km has stored its backlog), so modes do not overlap."""
    start = time.perf_counter()
    last = cpu_seconds(proc)
    quiet = 0
    while time.perf_counter() - start < timeout:
        time.sleep(0.05)
        now = cpu_seconds(proc)
        quiet = quiet + 1 if now - last < 0.0005 else 0
        last = now
        if quiet >= 3:
            return


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
        "os": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


class Background:
    """A server or km process, its output drained to a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log.open("wb")
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
        self.ps = psutil.Process(self.popen.pid)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.log.close()


class Km:
    """A ``km proxy`` (``mode`` km: with the agent; km-own: KM_AGENT=0) under its own KM_HOME."""

    def __init__(self, mode: str, upstream: str, tmp: Path, name: str) -> None:
        self.home = tmp / f"{name}_{mode}"
        self.home.mkdir()
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        env["KM_HOME"] = str(self.home)
        if mode == "km-own":
            env["KM_AGENT"] = "0"
        argv = [KM, "proxy", "--upstream", upstream, "--listen", f"127.0.0.1:{self.port}"]
        self.proc = Background(argv, env, tmp / f"{name}_{mode}.log")
        wait_port(self.port)
        self.procs = [self.proc.ps, *agents_of(self.home)]
        """km proxy and, with the agent, the agent (started before km listens)."""

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.procs)

    def wait_idle(self) -> None:
        for p in self.procs:
            wait_idle(p)

    def rss_mb(self) -> float:
        return float(sum(p.memory_info().rss for p in self.procs)) / 2**20

    def stop(self) -> None:
        self.proc.stop()
        for p in self.procs[1:]:
            with contextlib.suppress(psutil.Error):
                p.terminate()
                p.wait(60)


def agents_of(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            ours = proc.environ().get("KM_HOME") == str(home)
            if "kilometers.agent" in (proc.info["cmdline"] or []) and ours:
                found.append(proc)
    return found


# -- a minimal HTTP/1.1 keep-alive client ---------------------------------------------------------------


class RawConnection:
    """One keep-alive connection; ``call`` sends a POST and reads the whole answer (length or chunked)."""

    def __init__(self, port: int, path: bytes, session: bytes | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = (
            b"POST " + path + b" HTTP/1.1\r\nhost: 127.0.0.1:" + str(port).encode()
            + b"\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n"
            + (b"mcp-session-id: " + session + b"\r\nmcp-protocol-version: 2025-06-18\r\n"
               if session else b"")
        )  # fmt: skip
        self.buf = b""

    def call(self, body: bytes) -> tuple[int, bytes, bytes]:
        self.sock.sendall(self.head + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        return self.read()

    def _fill(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("connection closed")
        self.buf += data

    def read(self) -> tuple[int, bytes, bytes]:
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buf = self.buf[:end], self.buf[end + 4 :]
        status = int(head[9:12])
        match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if match:
            length = int(match.group(1))
            while len(self.buf) < length:
                self._fill()
            body, self.buf = self.buf[:length], self.buf[length:]
            return status, head, body
        if re.search(rb"(?i)\r\ntransfer-encoding:\s*chunked", head):
            parts = []
            while True:
                while (eol := self.buf.find(b"\r\n")) < 0:
                    self._fill()
                size = int(self.buf[:eol].split(b";")[0], 16)
                while len(self.buf) < eol + 2 + size + 2:
                    self._fill()
                parts.append(self.buf[eol + 2 : eol + 2 + size])
                self.buf = self.buf[eol + 2 + size + 2 :]
                if size == 0:
                    return status, head, b"".join(parts)
        return status, head, b""

    def close(self) -> None:
        self.sock.close()


IDS = itertools.count(1)


def session_of(port: int, path: bytes) -> bytes:
    conn = RawConnection(port, path)
    status, head, _ = conn.call(INIT)
    conn.close()
    match = re.search(rb"(?i)\r\nmcp-session-id:\s*([^\r]+)", head)
    assert status == 200 and match, head
    return match.group(1)


def latency_block(port: int, path: bytes, session: bytes, calls: int, gap: float = 0.0) -> list[float]:
    conn = RawConnection(port, path, session)
    for _ in range(5):
        conn.call(CALL % next(IDS))
    samples = []
    for _ in range(calls):
        body = CALL % next(IDS)
        start = time.perf_counter()
        status, _, answer = conn.call(body)
        samples.append((time.perf_counter() - start) * 1e6)
        assert status == 200 and answer.endswith(b"}}"), (status, answer[-200:])
        if gap:
            time.sleep(gap)
    conn.close()
    return samples


def throughput(port: int, path: bytes, session: bytes, seconds: float, connections: int) -> tuple[float, int]:
    done = [0] * connections
    stop = threading.Event()

    def worker(index: int) -> None:
        conn = RawConnection(port, path, session)
        while not stop.is_set():
            status, _, _ = conn.call(CALL % next(IDS))
            assert status == 200
            done[index] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return sum(done) / elapsed, sum(done)


# -- section 1: raw client, raw server --------------------------------------------------------------------


def run_raw(s: Settings, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    server_port = free_port()
    server = Background([*RAW_SERVER, str(server_port)], dict(os.environ), tmp / "raw_server.log")
    wait_port(server_port)
    upstream = f"http://127.0.0.1:{server_port}/mcp"
    kms = {mode: Km(mode, upstream, tmp, "raw") for mode in KM_MODES}
    ports = {"direct": server_port, **{mode: km.port for mode, km in kms.items()}}
    path = b"/mcp"

    def settle() -> None:
        for km in kms.values():
            km.wait_idle()

    try:
        sessions = {mode: session_of(port, path) for mode, port in ports.items()}
        for mode, port in ports.items():  # warm-up (imports, store, caches)
            latency_block(port, path, sessions[mode], s.warmup_calls)
        settle()
        keys = ("b2b_p50", "b2b_p99", "sp_p50", "sp_p99")
        per_round: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in keys}
        added: dict[str, dict[str, list[float]]] = {k: {m: [] for m in KM_MODES} for k in keys}
        for r in range(s.rounds):
            got: dict[str, dict[str, list[float]]] = {"b2b": {}, "sp": {}}
            for mode in MODES[r % 3 :] + MODES[: r % 3]:
                port = ports[mode]
                got["b2b"][mode] = latency_block(port, path, sessions[mode], s.latency_calls)
                got["sp"][mode] = latency_block(port, path, sessions[mode], s.spaced_calls, SPACED_GAP_S)
                settle()
            for kind in ("b2b", "sp"):
                for q in (50, 99):
                    key = f"{kind}_p{q}"
                    for mode in MODES:
                        per_round[key][mode].append(pct(got[kind][mode], q))
                    for mode in KM_MODES:
                        added[key][mode].append(pct(got[kind][mode], q) - pct(got[kind]["direct"], q))
            log(
                f"round {r + 1}/{s.rounds}: back to back p50/p99 "
                + ", ".join(
                    f"{m} {per_round['b2b_p50'][m][-1]:.0f}/{per_round['b2b_p99'][m][-1]:.0f} µs"
                    for m in MODES
                )
            )
        sse_path = b"/sse-mcp"
        sse: dict[str, list[float]] = {m: [] for m in MODES}
        sse_added: dict[str, list[float]] = {m: [] for m in KM_MODES}
        for _ in range(s.rounds):
            got_sse = {
                mode: latency_block(port, sse_path, sessions[mode], s.latency_calls)
                for mode, port in ports.items()
            }
            settle()
            for mode in MODES:
                sse[mode].append(pct(got_sse[mode], 50))
            for mode in KM_MODES:
                sse_added[mode].append(pct(got_sse[mode], 50) - pct(got_sse["direct"], 50))
        log("SSE answers, back to back p50: " + ", ".join(f"{m} {median(sse[m]):.0f} µs" for m in MODES))
        rates: dict[str, list[float]] = {m: [] for m in MODES}
        cpu_per_request: dict[str, list[float]] = {m: [] for m in KM_MODES}
        for _ in range(max(2, s.rounds // 2)):
            for mode, port in ports.items():
                km = kms.get(mode)
                before = km.cpu() if km else 0.0
                rate, count = throughput(port, path, sessions[mode], s.throughput_seconds, s.connections)
                if km:
                    km.wait_idle()  # storing the backlog is part of the cost
                    cpu_per_request[mode].append((km.cpu() - before) / count * 1e6)
                rates[mode].append(rate)
            log("throughput (req/s): " + ", ".join(f"{m} {rates[m][-1]:.0f}" for m in MODES))
        rss_mb = {mode: km.rss_mb() for mode, km in kms.items()}
    finally:
        for km in kms.values():
            km.stop()
        server.stop()
    summary = {key: {m: median(v) for m, v in modes.items()} for key, modes in per_round.items()}
    return {
        "latency_us": summary,
        "added_us": {key: {m: median(v) for m, v in modes.items()} for key, modes in added.items()},
        "sse_p50_us": {m: median(v) for m, v in sse.items()},
        "sse_added_p50_us": {m: median(v) for m, v in sse_added.items()},
        "requests_per_s": {m: median(v) for m, v in rates.items()},
        "km_cpu_us_per_request": {m: median(v) for m, v in cpu_per_request.items()},
        "km_rss_mb": rss_mb,
        "stored": {mode: stored_counts(km.home) for mode, km in kms.items()},
    }


def stored_counts(home: Path) -> dict[str, Any]:
    db = sqlite3.connect(home / "km.db")
    try:
        events = db.execute("select count(*) from events").fetchone()[0]
        requests = {row[0] for row in db.execute("select id from events where kind = 'request'")}
        answered = {
            row[0]
            for row in db.execute("select request_event_id from events where request_event_id is not null")
        }
        unanswered = len(requests - answered)
        sessions = db.execute("select count(*), coalesce(sum(dropped_events), 0) from sessions").fetchone()
    finally:
        db.close()
    return {
        "events": events,
        "unanswered_requests": unanswered,
        "sessions": sessions[0],
        "dropped": sessions[1],
    }


# -- section 2: the MCP SDK client, server-everything ---------------------------------------------------


async def sdk_blocks(urls: dict[str, str], s: Settings, log: Callable[[str], None]) -> dict[str, Any]:
    """Every client stays connected; modes rotate block by block, so that load changes on the
    shared machine hit them alike."""
    from contextlib import AsyncExitStack

    from mcp import Client

    text = TEXT.decode()
    samples: dict[str, list[float]] = {m: [] for m in MODES}
    added: dict[str, list[float]] = {m: [] for m in KM_MODES}
    rates: dict[str, list[float]] = {m: [] for m in MODES}
    async with AsyncExitStack() as stack:
        clients = {m: await stack.enter_async_context(Client(urls[m], mode="legacy")) for m in MODES}
        for client in clients.values():
            for _ in range(20):
                await client.call_tool("echo", {"message": "warm"})
        blocks = s.sdk_rounds * 4
        per_block = max(10, s.sdk_calls // 4)
        for b in range(blocks):
            order = MODES[b % 3 :] + MODES[: b % 3]
            block: dict[str, list[float]] = {}
            for mode in order:
                block[mode] = []
                for _ in range(per_block):
                    start = time.perf_counter()
                    await clients[mode].call_tool("echo", {"message": text})
                    block[mode].append((time.perf_counter() - start) * 1e6)
                samples[mode].extend(block[mode])
            for mode in KM_MODES:
                added[mode].append(pct(block[mode], 50) - pct(block["direct"], 50))
        for r in range(s.sdk_rounds):
            for mode in MODES[r % 3 :] + MODES[: r % 3]:
                client = clients[mode]
                queue = list(range(s.sdk_calls))

                async def worker(client: Any = client, queue: list[int] = queue) -> None:
                    while queue:
                        queue.pop()
                        await client.call_tool("echo", {"message": text})

                start = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(s.sdk_in_flight)))
                rates[mode].append(s.sdk_calls / (time.perf_counter() - start))
            log(
                f"SDK calls/s, {s.sdk_in_flight} in flight: "
                + ", ".join(f"{m} {rates[m][-1]:.0f}" for m in MODES)
            )
    return {
        "p50_us": {m: pct(v, 50) for m, v in samples.items()},
        "p99_us": {m: pct(v, 99) for m, v in samples.items()},
        "added_p50_us": {m: median(v) for m, v in added.items()},
        "added_p99_us": {m: pct(samples[m], 99) - pct(samples["direct"], 99) for m in KM_MODES},
        "calls_per_s": {m: median(v) for m, v in rates.items()},
    }


def run_sdk(s: Settings, tmp: Path, log: Callable[[str], None]) -> dict[str, Any]:
    port = free_port()
    server = Background(
        ["node", EVERYTHING, "streamableHttp"], dict(os.environ, PORT=str(port)), tmp / "se.log"
    )
    wait_port(port)
    upstream = f"http://127.0.0.1:{port}/mcp"
    kms = {mode: Km(mode, upstream, tmp, "sdk") for mode in KM_MODES}
    try:
        urls = {"direct": upstream, **{m: f"http://127.0.0.1:{km.port}/mcp" for m, km in kms.items()}}
        result = asyncio.run(sdk_blocks(urls, s, log))
        log("SDK latency p50: " + ", ".join(f"{m} {result['p50_us'][m]:.0f} µs" for m in MODES))
    finally:
        for km in kms.values():
            km.stop()
        server.stop()
    result["stored"] = {mode: stored_counts(km.home) for mode, km in kms.items()}
    return result


# -- report -------------------------------------------------------------------------------------------


def report(results: dict[str, Any]) -> None:
    raw, sdk = results["raw"], results["sdk"]
    lat, add = raw["latency_us"], raw["added_us"]
    head = f"{'':36} {'direct':>9} {'km':>9} {'km-own':>9} {'km +':>9} {'km-own +':>9}"

    def row(label: str, values: dict[str, float], extra: dict[str, float] | None) -> None:
        cells = "".join(f" {values[m]:9.0f}" for m in MODES)
        more = "".join(f" {extra[m]:9.0f}" for m in KM_MODES) if extra else ""
        print(f"{label:36}{cells}{more}")

    print("\n1 KB tools/call, raw client <-> raw Streamable HTTP server (JSON answers), medians of rounds")
    print("(km: km proxy with the agent; km-own: KM_AGENT=0; '+': added to direct, paired per round)")
    print(head)
    for key, label in (
        ("b2b_p50", "back to back, p50 (µs)"),
        ("b2b_p99", "back to back, p99 (µs)"),
        ("sp_p50", "spaced ~1 ms, p50 (µs)"),
        ("sp_p99", "spaced ~1 ms, p99 (µs)"),
    ):
        row(label, lat[key], add[key])
    row("SSE answers, back to back, p50 (µs)", raw["sse_p50_us"], raw["sse_added_p50_us"])
    rps = raw["requests_per_s"]
    row(f"requests/s, {results['settings']['connections']} connections", rps, None)
    for mode in KM_MODES:
        print(
            f"{mode}: {rps[mode] / rps['direct']:.2f}x direct's requests/s; CPU per request "
            f"{raw['km_cpu_us_per_request'][mode]:.0f} µs (km proxy + agent); "
            f"RSS {raw['km_rss_mb'][mode]:.1f} MB; "
            f"stored {raw['stored'][mode]}"
        )
    print("\nMCP SDK client -> server-everything streamableHttp (SSE answers), echo tool")
    print(head)
    row("p50 (µs)", sdk["p50_us"], sdk["added_p50_us"])
    row("p99 (µs)", sdk["p99_us"], sdk["added_p99_us"])
    row(f"calls/s, {results['settings']['sdk_in_flight']} in flight", sdk["calls_per_s"], None)
    for mode in KM_MODES:
        print(f"{mode}: stored {sdk['stored'][mode]}")
    print("\nTargets (km proxy with the agent, the default)")
    stored = raw["stored"]["km"]
    checks = [
        ("added p50 <= 1 ms (raw, back to back)", add["b2b_p50"]["km"] <= 1000,
         f"{add['b2b_p50']['km']:.0f} µs"),
        ("added p50 <= 1 ms (raw, spaced)", add["sp_p50"]["km"] <= 1000, f"{add['sp_p50']['km']:.0f} µs"),
        ("added p50 <= 1 ms (SDK client)", sdk["added_p50_us"]["km"] <= 1000,
         f"{sdk['added_p50_us']['km']:.0f} µs"),
        (">= 1,000 requests/s through km", rps["km"] >= 1000, f"{rps['km']:.0f} req/s"),
        ("every message stored, 0 dropped", stored["dropped"] == 0 and stored["unanswered_requests"] == 0,
         f"{stored['events']} events, {stored['unanswered_requests']} unanswered"),
    ]  # fmt: skip
    for label, ok, value in checks:
        print(f"  {'met    ' if ok else 'NOT MET'}  {label}: {value}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and calls (about a minute)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--no-sdk", action="store_true", help="skip the MCP SDK section")
    args = parser.parse_args()
    s = replace(QUICK) if args.quick else Settings()
    info = machine()
    print(f"{info['cpu']} x{info['cpus']}, Python {info['python']}, load average {info['loadavg_start']}")

    def log(line: str) -> None:
        print(line, flush=True)

    results: dict[str, Any] = {"settings": asdict(s), "machine": info}
    with tempfile.TemporaryDirectory(prefix="km-bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        results["raw"] = run_raw(s, tmp, log)
        if args.no_sdk:
            results["sdk"] = None
        else:
            results["sdk"] = run_sdk(s, tmp, log)
    info["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if results["sdk"] is not None:
        report(results)
    else:
        print(json.dumps(results["raw"], indent=2))
    print(f"\nload average at the end: {info['loadavg_end']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
