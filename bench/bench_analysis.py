"""Security analysis: its cost per 1 KB message, and km monitor with analysis and redaction off vs
on, side by side in one run (interleaved rounds, medians, ratios).

    .venv/bin/python bench/bench_analysis.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_stdio import RAW_SERVER, Endpoint, latency_round, pct, throughput_round
from kilometers.analysis import Analyzer

TEXT = (
    "The quarterly report lists revenue by region and product line, with notes on churn and "
    "pipeline. Contact the finance team for the spreadsheet. "
) * 6


def messages() -> list[tuple[str, str, str, str | None, str]]:
    """Realistic ~1 KB messages: a tool call, its result, a listing, a resource read."""
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "search_docs", "arguments": {"query": "revenue by region", "limit": 20,
                                                            "notes": TEXT[:700]}}}  # fmt: skip
    result = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": TEXT[:900]}]}}
    schema = {"type": "object", "properties": {"query": {"type": "string"}}}
    description = "Search the documentation by keyword and return matching pages."
    listed = [{"name": f"tool_{i}", "description": description, "inputSchema": schema} for i in range(5)]
    tools = {"jsonrpc": "2.0", "id": 2, "result": {"tools": listed}}
    read = {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {"contents": [{"uri": "file:///docs/q3.md", "text": TEXT[:850]}]},
    }
    return [
        ("client_to_server", "request", "tools/call", "search_docs", orjson.dumps(call).decode()),
        ("server_to_client", "response", "tools/call", "search_docs", orjson.dumps(result).decode()),
        ("server_to_client", "response", "tools/list", None, orjson.dumps(tools).decode()),
        ("server_to_client", "response", "resources/read", None, orjson.dumps(read).decode()),
    ]


def analysis_cost(rounds: int) -> tuple[float, float]:
    """Median and p90 µs per 1 KB of message for analysis + redaction on the recorder thread."""
    analyzer = Analyzer()
    samples: list[float] = []
    msgs = messages()
    for _ in range(rounds):
        for direction, kind, method, tool, payload in msgs:
            start = time.perf_counter_ns()
            analyzer.process_payload(direction, kind, method, tool, payload, redact=True)
            elapsed = (time.perf_counter_ns() - start) / 1000
            samples.append(elapsed * 1024 / len(payload))
    return statistics.median(samples), pct(samples, 90)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    calls = 2000 if args.quick else 5000
    median_us, p90_us = analysis_cost(200 if args.quick else 2000)
    print(
        f"analysis + redaction per 1 KB message: median {median_us:.1f} µs, p90 {p90_us:.1f} µs (target ≤ 50)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        eps = {
            "off": Endpoint("km", RAW_SERVER, Path(tmp) / "off", {"KM_ANALYSIS": "0"}),
            "on": Endpoint("km", RAW_SERVER, Path(tmp) / "on", {"KM_ANALYSIS": "1"}),
        }
        for ep in eps.values():
            latency_round(ep, 200)
        p50: dict[str, list[float]] = {"off": [], "on": []}
        tput: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(rounds):
            for name, ep in eps.items():
                p50[name].append(pct(latency_round(ep, 500), 50))
                tput[name].append(throughput_round(ep, calls))
        for ep in eps.values():
            ep.popen.stdin.close()  # type: ignore[union-attr]
            ep.popen.wait(60)
    off_t, on_t = statistics.median(tput["off"]), statistics.median(tput["on"])
    off_l, on_l = statistics.median(p50["off"]), statistics.median(p50["on"])
    print(f"km monitor, analysis off vs on ({rounds} interleaved rounds, medians):")
    print(f"  round trip p50 µs:   off {off_l:8.1f}   on {on_l:8.1f}")
    print(
        f"  pipelined calls/s:   off {off_t:8.0f}   on {on_t:8.0f}   "
        f"on/off {on_t / off_t:.2f} (target ≥ 0.80)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
