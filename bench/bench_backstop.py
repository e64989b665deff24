"""What the team server's secrets backstop costs: ``parse_batch`` per event, redaction off vs on.

    .venv/bin/python bench/bench_backstop.py [--batches N] [--rounds N]

The batches are bench_server's realistic ``tools/call`` events (~1 KB payloads, no secrets, the
common case). Off and on alternate in each round; medians over rounds, and the ratio. The same
cost lands on ``km import``. See docs/benchmarks.md and docs/security.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import BATCH, Workload
from kilometers.server.ingest import parse_batch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=20, help="batches of 500 events (default 20)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args()
    batches = Workload(time.time_ns()).next_batches(args.batches)
    per_event: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for redact in (False, True):
            start = time.perf_counter()
            for batch in batches:
                parse_batch(batch, redact)
            per_event[redact].append((time.perf_counter() - start) / (len(batches) * BATCH) * 1e6)
    off, on = statistics.median(per_event[False]), statistics.median(per_event[True])
    load = os.getloadavg()
    print(
        f"parse_batch per event ({args.batches * BATCH:,} events x {args.rounds} rounds, load {load[0]:.1f}):"
    )
    print(
        f"  redaction off {off:6.1f} us   on {on:6.1f} us   "
        f"backstop {on - off:5.1f} us/event   ratio {on / off:.2f}x"
    )


if __name__ == "__main__":
    main()
