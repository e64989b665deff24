"""Start-up side by side (issue 11, item 4): how soon ``km monitor`` forwards, what an idle
session costs, how big the relay is, and ``km --help``; the agent on and off, in one run.

    .venv/bin/python bench/bench_start.py [--runs 20] [--json out.json]

- first byte: from spawning ``km monitor -- cat`` (or ``cat`` itself) to reading back the line
  written at once to its stdin; the agent already running (the usual case) and not (the first
  session of a user: the relay forwards while the agent starts);
- idle session: user+system CPU of ``km monitor -- /bin/true`` and everything it waits for
  (the agent, a separate process, is not included: it was running already);
- RSS: of the ``km monitor`` process with its session open after 200 lines (agent on and
  off), and of the agent after those sessions;
- ``km --help``: wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

KM = str(Path(sys.executable).with_name("km"))
LINE = b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n'


def first_byte(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(LINE)
    proc.stdin.flush()
    got = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.stdin.close()
    proc.wait(60)
    assert got == LINE, got
    return elapsed * 1000


def cpu_ms(argv: list[str], env: dict[str, str]) -> float:
    """CPU (user + system, ms) of one run of ``argv`` and what it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, stdin=subprocess.DEVNULL, env=env, check=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000


def open_session_rss(argv: list[str], env: dict[str, str], calls: int = 200) -> float:
    """RSS (MiB) of ``km monitor`` itself (not its server, not its recorder) after ``calls``
    lines went through it, its session still open."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    for _ in range(calls):
        proc.stdin.write(LINE)
        proc.stdin.flush()
        proc.stdout.readline()
    time.sleep(0.5)  # a batch window or two: whatever the relay holds, it holds now
    rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    proc.stdin.close()
    proc.wait(60)
    return rss


def agent_rss(env: dict[str, str]) -> float:
    out = subprocess.run([KM, "agent", "status", "--json"], env=env, capture_output=True, timeout=60).stdout
    agents = json.loads(out or b"[]")  # (one per set of host settings: here, one)
    return sum(psutil.Process(a["pid"]).memory_info().rss for a in agents) / 2**20 if agents else float("nan")


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True, timeout=60)
    return (time.perf_counter() - start) * 1000


def stop_agent(env: dict[str, str]) -> None:
    subprocess.run([KM, "agent", "stop"], env=env, capture_output=True, timeout=120, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "KM_HOME": tmp}
        env_off = {**env, "KM_AGENT": "0"}
        monitor = [KM, "monitor", "--"]
        samples: dict[str, list[float]] = {}

        def add(key: str, value: float) -> None:
            samples.setdefault(key, []).append(value)

        first_byte([*monitor, "cat"], env)  # the agent runs from here on
        for _ in range(args.runs):  # interleaved, so that the machine's mood hits each alike
            add("first byte: cat direct (ms)", first_byte(["cat"], env))
            add("first byte: km monitor, agent running (ms)", first_byte([*monitor, "cat"], env))
            add("first byte: km monitor, agent off (ms)", first_byte([*monitor, "cat"], env_off))
            add(
                "idle session CPU: km monitor, agent running (ms)",
                cpu_ms([*monitor, "/bin/true"], env),
            )
            add(
                "idle session CPU: km monitor, agent off (ms)",
                cpu_ms([*monitor, "/bin/true"], env_off),
            )
            add("km --help (ms)", wall([KM, "--help"], env))
            add("python -c pass (ms)", wall([sys.executable, "-c", "pass"], env))
        for _ in range(max(3, args.runs // 4)):
            stop_agent(env)
            add(
                "first byte: km monitor, first session (agent starts) (ms)",
                first_byte([*monitor, "cat"], env),
            )
        rss = {
            "relay RSS, agent running (MiB)": open_session_rss([*monitor, "cat"], env),
            "km monitor RSS, agent off (MiB)": open_session_rss([*monitor, "cat"], env_off),
            "agent RSS after those sessions (MiB)": agent_rss(env),
        }
        stop_agent(env)
    result: dict[str, Any] = {k: round(statistics.median(v), 1) for k, v in samples.items()}
    result.update({k: round(v, 1) for k, v in rss.items()})
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value:>8}")
    direct = result["first byte: cat direct (ms)"]
    added = result["first byte: km monitor, agent running (ms)"] - direct
    print(f"{'first byte added by km (agent running), ms':<{width}}  {added:>8.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
