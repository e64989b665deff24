"""Live events over SSE from real `km serve` / `km ui` processes, including two servers on one
PostgreSQL: an event ingested through one appears on a stream opened on the other."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from factory import bearer, session_batch
from pg import Cluster

KM = str(Path(sys.executable).parent / "km")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def km(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([KM, *args], capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@contextmanager
def serving(url: str) -> Iterator[str]:
    port = _port()
    proc = subprocess.Popen(
        [KM, "serve", "--db", url, "--port", str(port)], stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


class Stream:
    """Reads an SSE stream on a thread; ``next_event()`` returns the next `event: event` payload."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: queue.Queue[dict] = queue.Queue()  # type: ignore[type-arg]
        self.connected = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        self.thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self.thread.start()
        assert self.connected.wait(10), "the stream did not open"

    def _read(self, url: str, headers: dict[str, str]) -> None:
        # the test closes the client or stops the server when done
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            self._follow(url, headers)

    def _follow(self, url: str, headers: dict[str, str]) -> None:
        with self.client.stream("GET", url, headers=headers) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            kind = None
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "event":
                    self.events.put(json.loads(line[6:]))

    def next_event(self, timeout: float = 10) -> dict:  # type: ignore[type-arg]
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self.client.close()


def _org(url: str) -> tuple[str, str]:
    km("db", "upgrade", "--db", url)
    km("admin", "create-org", "acme", "--plan", "unlimited", "--db", url)
    ingest = km("admin", "create-key", "--org", "acme", "--scope", "ingest", "--db", url)
    read = km("admin", "create-key", "--org", "acme", "--scope", "read", "--db", url)
    return ingest, read


def test_live_on_sqlite_with_filters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    ingest, read = _org(url)
    with serving(url) as base:
        everything = Stream(base + "/api/v1/live", bearer(read))
        errors_only = Stream(base + "/api/v1/live?errors=true", bearer(read))
        session, events = session_batch(4, error_every=2)
        sent = time.monotonic()
        r = httpx.post(
            base + "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(ingest)
        )
        assert r.json()["accepted"] == len(events)
        got = [everything.next_event() for _ in events]
        elapsed = time.monotonic() - sent
        assert [e["id"] for e in got] == [e["id"] for e in events]
        assert [e["id"] for e in (errors_only.next_event(), errors_only.next_event())] == [
            e["id"] for e in events if e["is_error"]
        ]
        assert errors_only.events.empty()
        print(f"live delivery after {elapsed * 1000:.0f} ms")
        everything.close()
        errors_only.close()


def test_live_across_two_servers_on_postgresql(pg_cluster: Cluster) -> None:
    url = pg_cluster.create_database("km_live_two")
    ingest, read = _org(url)
    with serving(url) as first, serving(url) as second:
        watcher = Stream(second + "/api/v1/live", bearer(read))
        session, events = session_batch(1)
        sent = time.monotonic()
        r = httpx.post(
            first + "/api/v1/events/batch",
            json={"session": session, "events": events},
            headers=bearer(ingest),
        )
        assert r.json()["accepted"] == len(events)
        first_seen = watcher.next_event()
        elapsed = time.monotonic() - sent
        rest = [watcher.next_event() for _ in events[1:]]
        assert [e["id"] for e in [first_seen, *rest]] == [e["id"] for e in events]
        print(f"cross-process live delivery after {elapsed * 1000:.0f} ms")
        watcher.close()


def test_km_ui_streams_what_km_monitor_records(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KM_")}, "KM_HOME": str(home)}
    km("db", "upgrade", env=env)
    ui = subprocess.Popen([KM, "ui", "--port", "0", "--no-open"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert ui.stderr is not None
        line = ui.stderr.readline()
        assert line.startswith("km ui: http://127.0.0.1:"), line
        link = line.split(" ", 2)[2].strip()
        base, token = link.split("/#token=")
        for _ in range(100):
            try:
                httpx.get(base + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.get(base + "/api/v1/events").status_code == 401  # no token, no data
        watcher = Stream(base + "/api/v1/live", {"X-KM-Token": token})
        server = [
            sys.executable,
            "-c",
            "import sys\nfor line in sys.stdin: sys.stdout.write(line); sys.stdout.flush()",
        ]
        mon = subprocess.run(
            [KM, "monitor", "--", *server],
            input=b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"live_tool"}}\n',
            capture_output=True,
            env=env,
            timeout=60,
        )
        assert mon.returncode == 0, mon.stderr
        seen = [watcher.next_event(), watcher.next_event()]
        assert {e["tool"] for e in seen} == {"live_tool"}
        watcher.close()
    finally:
        ui.terminate()
        ui.wait(10)
