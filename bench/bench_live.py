"""The dashboard's Live page at 1,000 events/s: does it keep up, and does it stay responsive?

    .venv/bin/python bench/bench_live.py              # 1,000 events/s for 15 s
    .venv/bin/python bench/bench_live.py --rate 2000 --seconds 10
    .venv/bin/python bench/bench_live.py --quick      # 5 s

One run starts a real ``km serve`` on a temporary SQLite store (``bench_server.Target``), signs a
user in through the login page in real headless Chromium (Debian's package, Playwright) and opens
Live. It then measures the same page side by side, twice: ``idle`` (no traffic) and ``feed``
(``--rate`` events/s POSTed to ``/api/v1/events/batch`` in batches every 100 ms, realistic
``tools/call`` events from ``bench_server.Workload``). In each phase the page itself records:

- event-loop lag: a 50 ms timer's lateness (p50, p99, max), the standard responsiveness probe;
- long tasks (over 50 ms, the browser's PerformanceObserver) and their total duration;
- input latency: a click on Pause and one on Resume every second, from the click to the next frame that
  shows the new state (p50, max);
- with traffic: how many events the page received and whether it kept up (received / sent).

Ratios feed/idle are printed. No timed assertion: machines vary (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dashboard import CHROMIUM, FLAGS
from bench_server import Target, Workload, _km

EMAIL, PASSWORD = "bench@example.com", "bench password"

PROBE = """() => {
  const s = { lags: [], longTasks: [], clicks: [] };
  window.__bench = s;
  let last = performance.now();
  s.timer = setInterval(() => {
    const now = performance.now();
    s.lags.push(Math.max(0, now - last - 50));
    last = now;
  }, 50);
  try {
    new PerformanceObserver((list) => { for (const e of list.getEntries()) s.longTasks.push(e.duration); })
      .observe({ type: "longtask", buffered: false });
  } catch (e) { s.noLongTasks = true; }
  s.click = () => new Promise((resolve) => {
    const btn = document.querySelector('[data-testid="pause-button"]');
    const before = btn.getAttribute("aria-pressed");
    const t0 = performance.now();
    btn.click();
    const check = () => {
      const b = document.querySelector('[data-testid="pause-button"]');
      if (b.getAttribute("aria-pressed") === before) requestAnimationFrame(check);
      else requestAnimationFrame(() => resolve(performance.now() - t0));
    };
    requestAnimationFrame(check);
  }).then((ms) => { s.clicks.push(ms); return ms; });
}"""

COLLECT = """() => {
  const s = window.__bench;
  const out = { lags: s.lags, longTasks: s.longTasks, clicks: s.clicks };
  s.lags = []; s.longTasks = []; s.clicks = [];
  return out;
}"""


def _received(page: Page) -> int:
    text = page.get_by_test_id("live-counts").inner_text()
    return int(text.split(" received", 1)[0].replace(",", "").strip())


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _phase(page: Page, seconds: float, feed: threading.Thread | None) -> dict[str, Any]:
    page.evaluate(COLLECT)  # start clean
    if feed is not None:
        feed.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        page.wait_for_timeout(1000)
        page.evaluate("() => window.__bench.click()")  # pause…
        page.evaluate("() => window.__bench.click()")  # …and resume: the list keeps rendering
    if feed is not None:
        feed.join()
    page.wait_for_timeout(300)
    raw = page.evaluate(COLLECT)
    return {
        "lag_p50_ms": _pct(raw["lags"], 50),
        "lag_p99_ms": _pct(raw["lags"], 99),
        "lag_max_ms": max(raw["lags"], default=0.0),
        "long_tasks": len(raw["longTasks"]),
        "long_task_ms": sum(raw["longTasks"]),
        "click_p50_ms": statistics.median(raw["clicks"]) if raw["clicks"] else 0.0,
        "click_max_ms": max(raw["clicks"], default=0.0),
        "clicks": len(raw["clicks"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=1000, help="events per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase (default 15)")
    parser.add_argument("--quick", action="store_true", help="5 s phases")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    per_tick = max(1, args.rate // 10)

    with tempfile.TemporaryDirectory(prefix="km-bench-live-") as tmp:
        target = Target("sqlite", f"sqlite:///{Path(tmp) / 'live.db'}", list, log=Path(tmp) / "serve.log")
        target.start()
        try:
            _km("admin", "create-user", EMAIL, "--org", "bench", "--role", "owner", "--password", PASSWORD,
                "--db", target.url)  # fmt: skip
            work = Workload(time.time_ns(), calls_per_session=100_000)
            events_needed = int(args.rate * seconds) + per_tick
            batches = work.next_batches(events_needed // 500 + 2)
            bodies = [
                {"session": b["session"], "events": b["events"][i : i + per_tick]}
                for b in batches
                for i in range(0, len(b["events"]), per_tick)
            ]
            sent = [0]

            def feed() -> None:
                with httpx.Client(base_url=target.base, headers=target.headers, timeout=30) as client:
                    start = time.monotonic()
                    for tick in range(int(seconds * 10)):
                        body = bodies[tick]
                        client.post("/api/v1/events/batch", json=body).raise_for_status()
                        sent[0] += len(body["events"])
                        time.sleep(max(0.0, start + (tick + 1) / 10 - time.monotonic()))

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(target.base + "/login")
                page.get_by_test_id("login-email").fill(EMAIL)
                page.get_by_test_id("login-password").fill(PASSWORD)
                page.get_by_test_id("login-submit").click()
                page.get_by_test_id("nav-live").click()
                page.get_by_test_id("live-status").filter(has_text="connected").wait_for()
                page.evaluate(PROBE)
                idle = _phase(page, seconds, None)
                before = _received(page)
                fed = _phase(page, seconds, threading.Thread(target=feed))
                deadline = time.monotonic() + 10
                while _received(page) - before < sent[0] and time.monotonic() < deadline:
                    page.wait_for_timeout(100)
                received = _received(page) - before
                browser.close()
        finally:
            target.stop()

    load = os.getloadavg()
    print(f"\nLive page, {args.rate:,} events/s for {seconds:.0f} s vs idle (real Chromium, SQLite km serve)")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores\n")
    print(f"{'':24s}{'idle':>10s}{'feed':>10s}{'ratio':>8s}")
    for key, label in (
        ("lag_p50_ms", "event-loop lag p50 ms"),
        ("lag_p99_ms", "event-loop lag p99 ms"),
        ("lag_max_ms", "event-loop lag max ms"),
        ("long_tasks", "long tasks (>50 ms)"),
        ("long_task_ms", "long tasks total ms"),
        ("click_p50_ms", "click to frame p50 ms"),
        ("click_max_ms", "click to frame max ms"),
    ):
        a, b = idle[key], fed[key]
        ratio = f"{b / a:7.2f}x" if a else "      -"
        print(f"{label:24s}{a:10.1f}{b:10.1f}{ratio}")
    print(f"\nsent {sent[0]:,} events, the page received {received:,} ({received / max(1, sent[0]):.1%})")


if __name__ == "__main__":
    main()
