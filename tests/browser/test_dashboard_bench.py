"""bench/bench_dashboard.py with tiny numbers, so that the script cannot rot (no timed assertion).

The real run (1,000,000 events, PostgreSQL and SQLite) is in docs/benchmarks.md, "Dashboard first load".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dashboard_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    args = ["--events", "2000", "--rounds", "1", "--db", "sqlite", "--api-requests", "1", "--json", str(out)]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_dashboard.py"), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["stored"] == {"sqlite": 2000}
    pages = {p["page"]: p for p in report["pages"]}
    assert len(pages) == 7 and any(p.startswith("overview") for p in pages)
    for name, page in pages.items():
        assert page["database"] == "sqlite"
        assert page["loads"] == 1 and page["median_ms"] > 0, name
        assert page["api_httpx"], name  # the page's API requests were timed alone too
        assert any(r.startswith("/api/v1/") for r in page["browser_requests"]), name
    assert pages["session (first rows)"]["rows"] > 0  # the inspector drew the session's first rows
    assert pages["search (no filter)"]["rows"] > 0  # result rows were rendered (2,000 events: one
    # session of one server, so the tool filter may rightly find nothing)
    assert "First load" in result.stdout
