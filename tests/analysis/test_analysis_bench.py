"""Prints the analysis cost per ~1 KB message (no timed assertion: CI machines vary).

Budget: median <= 50 µs per 1 KB message. Full run: ``.venv/bin/python tests/analysis/bench_analysis.py``.
"""

from __future__ import annotations

from bench_analysis import bench, messages, per_message
from kilometers.analysis import Analyzer


def test_print_timing() -> None:
    result = bench(rounds=300)
    print()
    for name, size, us in per_message(rounds=300):
        print(f"  {name:40s} {size:6d} B {us:8.1f} µs")
    print("  " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    assert result["messages"] == len(messages())


def test_benchmark_messages_are_clean() -> None:
    analyzer = Analyzer()
    for direction, kind, method, tool, message in messages():
        risk = analyzer.analyze(direction, kind, method, tool, message)
        assert risk.level in ("none", "low"), (method, tool, risk)
