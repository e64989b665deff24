"""km beside the other stdio MCP monitors (issue 11), side by side in one run.

    make bench-peers                                   # sets up .bench-venv, then runs this
    .venv/bin/python bench/bench_peers.py [--quick] [--rounds 5] [--calls 2000] [--json out.json]

The official MCP SDK client calls the SDK echo server (``tests/servers/echo_server.py``) with a
1 KB ``tools/call``, sequentially, through each path in turn (the order rotates every round):

- ``direct``: the client spawns the server;
- ``relay``: ``bench/plain_relay.py``, two threads copying bytes (the floor);
- ``mcp-snoop``: mcp-snoop 0.1.0 (parses, logs a line per message);
- ``greenlight``: greenlight-mcp 0.7.0 ``run --capture-payloads`` (redacted payloads to a log);
- ``km``: ``km monitor`` with its agent (the default: analysis, redaction, SQLite);
- ``km-no-agent``: ``km monitor`` with ``KM_AGENT=0`` (a recorder process per session);
- ``km-tcp``: ``km monitor`` with its agent over loopback TCP with a token
  (``KM_AGENT_TRANSPORT=tcp``, the default on Windows);
- ``km-block``: ``km monitor --policy`` with a blocking policy (``deny_tools``; no call is
  refused): the gate decides in km's process, the agent records.

The peers come from ``.bench-venv`` (``make bench-peers`` installs them there, never into the
test environment). Per path and round: the added p50/p99 per call against ``direct`` in the same
round, calls/s against ``direct``, CPU per call of every process the path runs (wrapper, its
children, and for ``km`` the agent's CPU over the same span: the whole agent, it serves only this
session) and peak RSS of the wrapper (and of the agent, or km's recorder process). Medians of the
rounds. ``--concurrent``: 8 wrapped servers at once through km, agent on and off: the RSS of all
of km's processes with the 8 sessions open, and every message stored exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
KM = str(Path(sys.executable).with_name("km"))
PEERS = ROOT / ".bench-venv" / "bin"
SERVER = [PYTHON, str(ROOT / "tests" / "servers" / "echo_server.py")]
TEXT = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 17)[:920]
WARMUP = 100


def paths(tmp: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name: (argv, extra environment)."""
    home = {"KM_HOME": str(tmp / "km")}
    policy = tmp / "block.toml"
    policy.write_text('mode = "block"\ndeny_tools = ["delete_*"]\n')
    return {
        "direct": (SERVER, {}),
        "relay": ([PYTHON, str(HERE / "plain_relay.py"), *SERVER], {}),
        "mcp-snoop": ([str(PEERS / "mcp-snoop"), "--no-color", "--", *SERVER], {}),
        "greenlight": (
            [
                str(PEERS / "greenlight-mcp"),
                "run",
                "--capture-payloads",
                "--log-dir",
                str(tmp / "gl"),
                "--",
                *SERVER,
            ],
            {},
        ),
        "km": ([KM, "monitor", "--", *SERVER], home),
        "km-no-agent": (
            [KM, "monitor", "--", *SERVER],
            {**home, "KM_AGENT": "0", "KM_HOME": str(tmp / "km0")},
        ),
        # the loopback transport (Windows' default), its own agent and data directory
        "km-tcp": (
            [KM, "monitor", "--", *SERVER],
            {"KM_HOME": str(tmp / "kmt"), "KM_AGENT_TRANSPORT": "tcp"},
        ),
        # (a policy has an agent of its own: its own data directory keeps agent_of() simple)
        "km-block": ([KM, "monitor", "--policy", str(policy), "--", *SERVER], {"KM_HOME": str(tmp / "kmb")}),
    }


# -- processes -------------------------------------------------------------------------------------


def is_server(proc: psutil.Process) -> bool:
    """The echo server itself (``python echo_server.py``), not a wrapper given it as arguments."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return False
    return len(cmd) >= 2 and cmd[1].endswith("echo_server.py")


def agent_of(home: str) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "kilometers.agent" in (proc.info["cmdline"] or []) and proc.environ().get("KM_HOME") == home:
                return proc
        except psutil.Error:
            continue
    return None


def cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


@dataclass
class Peak:
    """Peak RSS (MiB) of some processes, sampled every 50 ms on a thread."""

    procs: dict[str, list[psutil.Process]]
    peaks: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Peak:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for name, procs in self.procs.items():
                rss = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):
                        rss += p.memory_info().rss
                self.peaks[name] = max(self.peaks.get(name, 0.0), rss / 2**20)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# -- one session ---------------------------------------------------------------------------------


async def session(argv: list[str], env: dict[str, str], calls: int) -> dict[str, Any]:
    before = {p.pid for p in psutil.Process().children()}
    params = StdioServerParameters(command=argv[0], args=argv[1:], env={**os.environ, **env})
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        [wrapper] = [p for p in psutil.Process().children() if p.pid not in before]
        for _ in range(WARMUP):
            await client.call_tool("echo", {"text": TEXT})
        await anyio.sleep(0.3)  # the recorders catch up with the warm-up
        ours = (
            []
            if is_server(wrapper)
            else [wrapper, *(c for c in wrapper.children(recursive=True) if not is_server(c))]
        )
        agent = agent_of(env["KM_HOME"]) if "KM_HOME" in env and env.get("KM_AGENT") != "0" else None
        counted = [*ours, *([agent] if agent else [])]
        rss = {"wrapper": [wrapper] if ours else []}
        if agent is not None:
            rss["agent"] = [agent]
        elif len(ours) > 1:
            rss["wrapper's children"] = ours[1:]
        cpu0, agent0 = cpu(counted), cpu([agent] if agent else [])
        latencies = []
        with Peak(rss) as peak:
            start = time.perf_counter()
            for _ in range(calls):
                t0 = time.perf_counter()
                await client.call_tool("echo", {"text": TEXT})
                latencies.append(time.perf_counter() - t0)
            elapsed = time.perf_counter() - start
            await anyio.sleep(0.3)  # and with the timed calls (their work counts)
        cpu1, agent1 = cpu(counted), cpu([agent] if agent else [])
    latencies.sort()
    return {
        "p50_us": latencies[len(latencies) // 2] * 1e6,
        "p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
        "calls_per_s": calls / elapsed,
        "cpu_us_per_call": (cpu1 - cpu0) / calls * 1e6,
        "agent_cpu_us_per_call": (agent1 - agent0) / calls * 1e6,
        "rss_mib": {k: round(v, 1) for k, v in peak.peaks.items()},
    }


def stop_agents(tmp: Path) -> None:
    import subprocess

    for home in (tmp / "km", tmp / "kmb", tmp / "kmt"):
        subprocess.run([KM, "agent", "stop"], env={**os.environ, "KM_HOME": str(home)}, capture_output=True)


def run_rounds(rounds: int, calls: int, tmp: Path, log: Any) -> dict[str, list[dict[str, Any]]]:
    table = paths(tmp)
    names = list(table)
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            argv, env = table[name]
            results[name].append(anyio.run(session, argv, env, calls))
            log(f"  round {r + 1} {name}: {results[name][-1]}")
    stop_agents(tmp)
    return results


def summary(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    direct = results["direct"]
    out: dict[str, dict[str, Any]] = {}
    for name, rows in results.items():
        paired = list(zip(rows, direct, strict=True))
        rss_keys = sorted({k for row in rows for k in row["rss_mib"]})
        out[name] = {
            "added_p50_us": round(statistics.median(a["p50_us"] - d["p50_us"] for a, d in paired)),
            "added_p99_us": round(statistics.median(a["p99_us"] - d["p99_us"] for a, d in paired)),
            "calls_per_s_vs_direct": round(
                statistics.median(a["calls_per_s"] / d["calls_per_s"] for a, d in paired), 3
            ),
            "cpu_us_per_call": round(statistics.median(a["cpu_us_per_call"] for a in rows)),
            # (of which the agent's: the rest is the wrapper's own process and its children)
            "agent_cpu_us_per_call": round(statistics.median(a["agent_cpu_us_per_call"] for a in rows)),
            **{f"peak_rss_mib_{k}": round(max(a["rss_mib"].get(k, 0) for a in rows), 1) for k in rss_keys},
        }
    return out


# -- 8 at once -----------------------------------------------------------------------------------


def _km_processes(home: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            ours = any("km" in c or "kilometers" in c for c in cmd[:3])
            if ours and proc.environ().get("KM_HOME") == home and not is_server(proc):
                found.append(proc)
        except psutil.Error:
            continue
    return found


async def _concurrent(env: dict[str, str], sessions: int, calls: int, measure: Any) -> None:
    ready, measured = anyio.Event(), anyio.Event()
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        params = StdioServerParameters(
            command=KM, args=["monitor", "--name", f"s{i}", "--", *SERVER], env=env
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            for _ in range(calls):
                await client.call_tool("echo", {"text": TEXT})
            done += 1
            if done == sessions:
                ready.set()
            await ready.wait()
            if i == 0:
                await anyio.sleep(0.5)
                measure()
                measured.set()
            await measured.wait()  # every session open while measured

    async with anyio.create_task_group() as tg:
        for i in range(sessions):
            tg.start_soon(one, i)


def concurrent(tmp: Path, sessions: int, calls: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, extra in (("km", {}), ("km-no-agent", {"KM_AGENT": "0"})):
        home = str(tmp / f"conc-{name}")
        env = {**os.environ, "KM_HOME": home, **extra}
        seen: dict[str, float] = {}

        def measure(home: str = home, seen: dict[str, float] = seen) -> None:
            procs = _km_processes(home)
            seen["processes"] = len(procs)
            seen["total_rss_mib"] = round(sum(p.memory_info().rss for p in procs) / 2**20, 1)

        anyio.run(_concurrent, env, sessions, calls, measure)
        with sqlite3.connect(Path(home) / "km.db") as db:
            rows = db.execute(
                "SELECT session_id, count(*), count(DISTINCT direction || ':' || coalesce(jsonrpc_id, '')) "
                "FROM events GROUP BY session_id"
            ).fetchall()
        import subprocess

        subprocess.run([KM, "agent", "stop"], env=env, capture_output=True)
        out[name] = {
            **seen,
            "sessions_stored": len(rows),
            "events_per_session": sorted({r[1] for r in rows}),
            "every_message_once": all(r[1] == r[2] for r in rows),
        }
    return out


# -- 10,000 calls/s across 8 sessions -------------------------------------------------------------

RAW_SERVER = [PYTHON, str(HERE / "raw_server.py")]
CALL = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}\n'


def paced(tmp: Path, sessions: int, rate: int, seconds: float) -> dict[str, Any]:
    """``rate`` calls/s in all, spread over ``sessions`` km monitors (raw client and server, so
    that the clients keep the pace), then: is every message in the store, exactly once?"""
    import subprocess

    home = tmp / "paced"
    env = {**os.environ, "KM_HOME": str(home)}
    per = rate // sessions
    n = int(per * seconds)
    procs = [
        subprocess.Popen(
            [KM, "monitor", "--name", f"p{i}", "--", *RAW_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            bufsize=0,
        )
        for i in range(sessions)
    ]

    def drive(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
        assert proc.stdin is not None and proc.stdout is not None
        got = [0]

        def reader() -> None:
            assert proc.stdout is not None
            while got[0] < n:
                data = proc.stdout.read(1 << 16)
                if not data:
                    return
                got[0] += data.count(b"\n")

        thread = threading.Thread(target=reader)
        thread.start()
        start = time.perf_counter()
        for i in range(n):
            due = start + i / per
            if (lag := due - time.perf_counter()) > 0:
                time.sleep(lag)
            proc.stdin.write(CALL % i)
        sending = time.perf_counter() - start
        thread.join(seconds * 10)
        proc.stdin.close()
        proc.wait(120)
        return got[0], sending

    results: list[tuple[int, float]] = [(0, 0.0)] * sessions
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, drive(procs[i]))) for i in range(sessions)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = max(sending for _, sending in results)
    with sqlite3.connect(home / "km.db") as db:
        rows = db.execute(
            "SELECT count(*), count(DISTINCT session_id || direction || coalesce(jsonrpc_id, '')), "
            "coalesce(sum(method = 'tools/call'), 0) FROM events"
        ).fetchone()
        dropped = db.execute("SELECT coalesce(sum(dropped_events), 0) FROM sessions").fetchone()[0]
    subprocess.run([KM, "agent", "stop"], env=env, capture_output=True)
    return {
        "calls_sent": n * sessions,
        "answered": sum(got for got, _ in results),
        "achieved_calls_per_s": round(n * sessions / wall),
        "events_stored": rows[0],
        "distinct_events": rows[1],
        "expected_events": 2 * n * sessions,
        "dropped_events": dropped,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 300 calls")
    parser.add_argument("--concurrent", type=int, default=8, help="sessions at once (0: skip)")
    parser.add_argument(
        "--rate", type=int, default=10_000, help="paced calls/s across the sessions (0: skip)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 3, 300
    if not (PEERS / "mcp-snoop").exists() or not (PEERS / "greenlight-mcp").exists():
        sys.exit("run `make bench-peers` first: it installs mcp-snoop and greenlight-mcp into .bench-venv")
    print(
        f"stdio peers: {args.rounds} rounds x {args.calls} sequential 1 KB tools/call, "
        "SDK client -> SDK echo server"
    )
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        results = run_rounds(args.rounds, args.calls, Path(tmp), lambda line: print(line, flush=True))
        table = summary(results)
        conc = concurrent(Path(tmp), args.concurrent, 200) if args.concurrent else {}
        pace = paced(Path(tmp), args.concurrent or 8, args.rate, 5.0) if args.rate else {}
    columns = sorted({k for row in table.values() for k in row})
    print()
    print("| path | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    if conc:
        print(f"\n{args.concurrent} sessions at once, 200 calls each:")
        for name, row in conc.items():
            print(f"  {name}: {row}")
    if pace:
        print(f"\n{args.rate} calls/s across {args.concurrent or 8} sessions for 5 s: {pace}")
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        data = {"rounds": results, "summary": table, "concurrent": conc, "paced": pace}
        args.json.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
