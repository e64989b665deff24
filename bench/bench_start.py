"""Start-up side by side (issue 11, item 4): how soon ``km monitor`` forwards, what an idle
session costs, how big the relay is, and ``km --help``; the agent on and off, in one run.

    .venv/bin/python bench/bench_start.py [--runs 20] [--json out.json]

- first byte: from spawning ``km monitor -- cat`` (or ``cat`` itself) to reading back the line
  written at once to its stdin; the agent already running (the usual case) and not (the first
  session of a user: the relay forwards while the agent starts);
- idle session: user+system CPU of ``km monitor -- /bin/true`` and everything it waits for
  (the agent, a separate process, is not included: it was running already);
- relay RSS: peak RSS of the ``km monitor`` process (``ru_maxrss`` of the child);
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


def cpu_and_rss(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU ms, peak RSS MiB) of one run of ``argv`` and what it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, stdin=subprocess.DEVNULL, env=env, check=True, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return cpu, after.ru_maxrss / 1024  # (the largest child so far: runs go from small to large)


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

        first_byte(monitor + ["cat"], env)  # the agent runs from here on
        for _ in range(args.runs):  # interleaved, so that the machine's mood hits each alike
            add("first byte: cat direct (ms)", first_byte(["cat"], env))
            add("first byte: km monitor, agent running (ms)", first_byte(monitor + ["cat"], env))
            add("first byte: km monitor, agent off (ms)", first_byte(monitor + ["cat"], env_off))
            add(
                "idle session CPU: km monitor, agent running (ms)",
                cpu_and_rss(monitor + ["/bin/true"], env)[0],
            )
            add(
                "idle session CPU: km monitor, agent off (ms)",
                cpu_and_rss(monitor + ["/bin/true"], env_off)[0],
            )
            add("km --help (ms)", wall([KM, "--help"], env))
            add("python -c pass (ms)", wall([sys.executable, "-c", "pass"], env))
        for _ in range(max(3, args.runs // 4)):
            stop_agent(env)
            add(
                "first byte: km monitor, first session (agent starts) (ms)",
                first_byte(monitor + ["cat"], env),
            )
        stop_agent(env)
        # peak RSS, smallest first (ru_maxrss of children only grows)
        rss = {
            "relay RSS, agent running (MiB)": (
                first_byte(monitor + ["cat"], env),
                cpu_and_rss(monitor + ["/bin/true"], env)[1],
            )[1],
            "km monitor RSS, agent off (MiB)": cpu_and_rss(monitor + ["/bin/true"], env_off)[1],
        }
        stop_agent(env)
    result: dict[str, Any] = {k: round(statistics.median(v), 1) for k, v in samples.items()}
    result.update({k: round(v, 1) for k, v in rss.items()})
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value:>8}")
    direct = result["first byte: cat direct (ms)"]
    print(
        f"{'first byte added by km (agent running), ms':<{width}}  {result['first byte: km monitor, agent running (ms)'] - direct:>8.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
