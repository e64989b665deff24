"""Timing of the analyzer on realistic ~1 KB MCP messages (run directly; prints µs per message).

    .venv/bin/python tests/analysis/bench_analysis.py

The budget is a median of at most 50 µs per 1 KB message (decoded message in, Risk out).
``test_bench.py`` runs a short version of this and prints the numbers (no timed assertions).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from kilometers.analysis import Analyzer

DATA = Path(__file__).resolve().parent / "data"

_CODE = '''import os
from pathlib import Path

def load_config(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines, skipping comments."""
    result: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        result[key.strip()] = value.strip()
    return result


class Cache:
    def __init__(self, size: int = 128) -> None:
        self.size = size
        self.items: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.items.get(key)

    def put(self, key: str, value: bytes) -> None:
        if len(self.items) >= self.size:
            self.items.pop(next(iter(self.items)))
        self.items[key] = value
'''

_PROSE = (
    "The quarterly report shows revenue growth of 12% driven by the new subscription tier. "
    "Customer churn decreased after the onboarding flow was simplified, and support tickets "
    "dropped by a third. Next steps: finalize the pricing experiment, migrate the analytics "
    "pipeline to the new warehouse, and schedule the design review for the mobile app. "
    "Open questions remain about the European launch timeline and the localization budget. "
    "The team agreed to revisit the roadmap on Monday after collecting feedback from sales. "
)

_LISTING = "\n".join(
    f"[{'DIR' if i % 5 == 0 else 'FILE'}] {name}"
    for i, name in enumerate(
        [
            "src",
            "README.md",
            "pyproject.toml",
            "setup.cfg",
            "LICENSE",
            "tests",
            "docs",
            "Makefile",
            "requirements.txt",
            "main.py",
            "utils.py",
            "config.yaml",
            ".gitignore",
            "CHANGELOG.md",
            "package.json",
            "tsconfig.json",
            "index.ts",
            "server.ts",
            "client.ts",
            "types.d.ts",
            "node_modules",
            "dist",
            "build.sh",
            "Dockerfile",
            "docker-compose.yml",
            "app.py",
            "models.py",
            "views.py",
            "urls.py",
            "settings.py",
            "wsgi.py",
            "manage.py",
            "db.sqlite3",
            "static",
            "templates",
            "migrations",
            "fixtures",
            "scripts",
            "notebooks",
            "data",
        ]
    )
)


def _result(i: int, text: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "result": {"content": [{"type": "text", "text": text}]}}


def messages() -> list[tuple[str, str, str | None, str | None, Any]]:
    """(direction, kind, method, tool, message) of realistic messages of about 1 KB."""
    out: list[tuple[str, str, str | None, str | None, Any]] = []
    c2s, s2c = "client_to_server", "server_to_client"
    out.append((s2c, "response", "tools/call", "read_text_file", _result(1, _CODE[:900])))
    out.append((s2c, "response", "tools/call", "list_directory", _result(2, _LISTING[:950])))
    out.append((s2c, "response", "tools/call", "fetch", _result(3, (_PROSE * 2)[:950])))
    rows = [
        {"id": 1000 + i, "name": f"user{i}", "status": "active", "created": f"2026-03-{i % 28 + 1:02d}"}
        for i in range(12)
    ]
    out.append((s2c, "response", "tools/call", "query", _result(4, orjson.dumps(rows).decode()[:950])))
    out.append(
        (
            c2s,
            "request",
            "tools/call",
            "write_file",
            {
                "jsonrpc": "2.0",
                "id": 5,
                "method": "tools/call",
                "params": {
                    "name": "write_file",
                    "arguments": {"path": "/home/alice/project/src/cache.py", "content": _CODE[300:1150]},
                },
            },
        )
    )
    out.append(
        (
            c2s,
            "request",
            "tools/call",
            "search",
            {
                "jsonrpc": "2.0",
                "id": 6,
                "method": "tools/call",
                "params": {
                    "name": "search",
                    "arguments": {
                        "query": "quarterly revenue growth " * 3,
                        "filters": {"year": 2026, "tags": ["finance", "report"]},
                        "notes": _PROSE[:800],
                    },
                },
            },
        )
    )
    out.append(
        (
            s2c,
            "response",
            "tools/call",
            "get_issue",
            _result(
                7,
                orjson.dumps(
                    {
                        "number": 42,
                        "title": "Crash when saving settings",
                        "state": "open",
                        "body": _PROSE[:600],
                        "labels": ["bug", "p1"],
                        "url": "https://github.com/acme/app/issues/42",
                    }
                ).decode(),
            ),
        )
    )
    out.append(
        (
            s2c,
            "notification",
            "notifications/message",
            None,
            {
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": {"level": "info", "logger": "server", "data": _PROSE[:900]},
            },
        )
    )
    return out


def bench(rounds: int = 2000) -> dict[str, float]:
    """Median and p90 µs per message, and median µs normalised to 1 KB of JSON."""
    analyzer = Analyzer()
    cases = messages()
    sizes = [len(orjson.dumps(m[4])) for m in cases]
    per_msg: list[float] = []
    per_kb: list[float] = []
    for _ in range(rounds):
        for (direction, kind, method, tool, message), size in zip(cases, sizes, strict=True):
            t0 = time.perf_counter_ns()
            analyzer.analyze(direction, kind, method, tool, message)
            dt = (time.perf_counter_ns() - t0) / 1000
            per_msg.append(dt)
            per_kb.append(dt * 1024 / size)
    per_msg.sort()
    return {
        "messages": len(cases),
        "mean_size_bytes": statistics.mean(sizes),
        "median_us": statistics.median(per_msg),
        "p90_us": per_msg[int(len(per_msg) * 0.9)],
        "median_us_per_kb": statistics.median(per_kb),
    }


def per_message(rounds: int = 2000) -> list[tuple[str, int, float]]:
    analyzer = Analyzer()
    out = []
    for direction, kind, method, tool, message in messages():
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            analyzer.analyze(direction, kind, method, tool, message)
            times.append((time.perf_counter_ns() - t0) / 1000)
        out.append((f"{method}:{tool or ''}:{kind}", len(orjson.dumps(message)), statistics.median(times)))
    return out


if __name__ == "__main__":
    for name, size, us in per_message():
        print(f"{name:40s} {size:6d} B {us:8.1f} µs")
    result = bench()
    print(", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
