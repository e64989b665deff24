"""What the team server's checks cost: ``parse_batch`` per event with nothing checked, with only the
secrets backstop (`km serve --no-analysis`) and with every detector family (the default).

    .venv/bin/python bench/bench_backstop.py [--batches N] [--rounds N]

The batches are bench_server's realistic ``tools/call`` events (~1 KB payloads, no secrets, the
common case). The three modes alternate in each round; medians over rounds, and the ratios. The
same cost lands on ``km import``. See docs/benchmarks.md and docs/security.md.
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
from kilometers.server.ingest import Checks, parse_batch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=20, help="batches of 500 events (default 20)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args()
    batches = Workload(time.time_ns()).next_batches(args.batches)
    modes = {
        "nothing": Checks(analysis=False, redact=False),
        "backstop": Checks(analysis=False, redact=True),
        "analysis": Checks(analysis=True, redact=True),
    }
    per_event: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode, checks in modes.items():
            start = time.perf_counter()
            for batch in batches:
                parse_batch(batch, checks=checks)
            per_event[mode].append((time.perf_counter() - start) / (len(batches) * BATCH) * 1e6)
    off, backstop, full = (statistics.median(per_event[m]) for m in modes)
    load = os.getloadavg()
    print(
        f"parse_batch per event ({args.batches * BATCH:,} events x {args.rounds} rounds, load {load[0]:.1f}):"
    )
    print(
        f"  nothing {off:6.1f} us   secrets backstop {backstop:6.1f} us   all detectors {full:6.1f} us   "
        f"analysis/backstop {full / backstop:.2f}x   analysis/nothing {full / off:.2f}x"
    )


if __name__ == "__main__":
    main()
