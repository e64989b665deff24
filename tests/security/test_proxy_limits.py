"""Red-team items 6 and 13: ``km proxy`` resource limits.

6. A gzip answer of ~300 KB that inflates to 300 MB: the client gets the upstream's bytes
   unchanged, km inflates at most MAX_BODY_BYTES for its records (memory stays bounded) and
   stores a marker with the truncated flag and a finding, not 300 MB. The team server refuses
   such a request body with 413, inflating no more than its body limit.
13. Sessions opened and abandoned leave a bounded number of threads and file handles (a cap on
   live sessions; idle sessions close their store connections), and a client that sends its
   headers a byte at a time is disconnected after ``--header-timeout``.
"""

from __future__ import annotations

import gzip
import hashlib
import socket
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from http_helpers import PYTHON, Proc, StartProxy, db_bytes, free_port, wait_port

from kilometers.jsonlimits import MAX_BODY_BYTES, TOO_LARGE_RULE

from km_helpers import KmProcess, km_env, km_events, read_json_line, wait_until

HERE = Path(__file__).resolve().parent

CALL = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bomb","arguments":{}}}'
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
MB = 1 << 20


@pytest.fixture(scope="module")
def bomb_upstream() -> Iterator[str]:
    """tests/security/servers/gzip_bomb.py: ``/json`` and ``/sse`` answer 300 KB of gzip = 300 MB."""
    port = free_port()
    proc = Proc([PYTHON, str(HERE / "servers" / "gzip_bomb.py"), "--port", str(port)])
    wait_port(port, proc.proc, timeout=120)
    yield f"http://127.0.0.1:{port}"
    proc.stop()


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


@pytest.mark.parametrize("path", ["/json", "/sse"])
def test_gzip_bomb_answer_is_forwarded_unchanged_and_recorded_bounded(
    km_proxy: StartProxy, bomb_upstream: str, km_home: Path, path: str
) -> None:
    km = km_proxy(bomb_upstream + "/mcp")
    pid = km.proc.pid
    before = peak_rss(pid)
    digest = hashlib.sha256()
    with (
        httpx.Client(timeout=120) as client,
        client.stream("POST", km.origin + path, content=CALL, headers=HEADERS) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        for chunk in response.iter_raw():
            digest.update(chunk)
        expected = response.headers["x-body-sha256"]
    assert digest.hexdigest() == expected  # the upstream's bytes, unchanged
    # km decodes at most MAX_BODY_BYTES (10 MB) of the answer: its peak memory grows by that,
    # a few copies of it (joined body, parser, recorder) and allocator slack, far from 300 MB
    assert peak_rss(pid) - before < 100 * MB, (before, peak_rss(pid))
    km.stop()

    answers = [e for e in km_events(km_home) if e["direction"] == "server_to_client"]
    assert len(answers) == 1, answers
    event = answers[0]
    assert event["truncated"] is True
    assert event["payload"]["km_omitted"] == f"payload over {MAX_BODY_BYTES} bytes"
    assert event["size_bytes"] > MAX_BODY_BYTES
    assert [f["rule"] for f in event["risk"]["findings"]] == [TOO_LARGE_RULE]
    assert len(db_bytes(km_home)) < 5 * MB  # the store grew by a marker, not by 300 MB


def test_team_server_refuses_gzip_bomb_body_without_inflating_it(api: Any) -> None:
    _, key, _ = api.org_with_keys("acme")
    body = gzip.compress(b'{"session": "' + b"A" * (300 * MB) + b'"}', compresslevel=1)
    assert len(body) < 2 * MB
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Encoding": "gzip",
        "Content-Type": "application/json",
    }
    tracemalloc.start()
    try:
        response = api.client.post("/api/v1/events/batch", content=body, headers=headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert peak < len(body) * 4 + 3 * MAX_BODY_BYTES  # at most the limit was inflated, not 300 MB


def _initialize(client: httpx.Client, url: str) -> str:
    init = (
        b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        b'"capabilities":{},"clientInfo":{"name":"abandoner","version":"1"}}}'
    )
    response = client.post(url, content=init, headers=HEADERS)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


SESSION_THREADS = 2
"""An open km proxy session's threads: with the agent, its link and the link's acknowledgement
reader (in-process, KM_AGENT=0: its recorder thread)."""
SESSION_FDS = 3
"""An open km proxy session's descriptors: with the agent, its connection and the shared count
of what it handed over (a memfd, and the mmap's own copy)."""


@pytest.mark.parametrize("agent", ["1", "0"])
def test_abandoned_sessions_leave_bounded_threads_and_files(
    km_proxy: StartProxy, everything_http: str, km_home: Path, agent: str
) -> None:
    km = km_proxy(everything_http, env=km_env(km_home, KM_AGENT=agent))
    proc = psutil.Process(km.proc.pid)
    url = km.url(everything_http)
    with httpx.Client(timeout=60) as client:
        _initialize(client, url)
        threads, fds = proc.num_threads(), proc.num_fds()
        for _ in range(200):  # opened, never ended (no DELETE): each stays until the idle timeout
            _initialize(client, url)
        # the default --max-sessions is 100: the sessions idle longest were closed to make room
        # the sessions ended to make room finish writing on threads of their own, then go
        wait_until(lambda: proc.num_threads() <= threads + SESSION_THREADS * 100 + 10, timeout=60)
        wait_until(lambda: proc.num_fds() <= fds + SESSION_FDS * 100 + 10, timeout=60)
    assert b"--max-sessions" in km.stderr.data  # said once, on stderr
    km.stop()


def test_idle_sessions_release_their_store_files(
    km_proxy: StartProxy, everything_http: str, km_home: Path
) -> None:
    """In-process (KM_AGENT=0): the sessions share the host's store engine instead of holding a
    store connection each, and idle ones keep none open. With the agent, km proxy never opens
    the store at all (tests/http/test_proxy_agent.py)."""
    km = km_proxy(everything_http, env=km_env(km_home, KM_AGENT="0"))
    proc = psutil.Process(km.proc.pid)
    url = km.url(everything_http)
    with httpx.Client(timeout=60) as client:
        _initialize(client, url)
        wait_until(lambda: proc.num_fds() <= 12, timeout=60)  # once the first session goes idle too
        fds = proc.num_fds()
        for _ in range(20):
            _initialize(client, url)
    # abandoned but not ended (the idle timeout is 600 s), none keeps a store file open
    wait_until(lambda: proc.num_fds() <= fds + 2, timeout=60)
    assert proc.num_threads() >= 21  # the sessions themselves are still open
    km.stop()


def test_slow_headers_are_cut_off(km_proxy: StartProxy, everything_http: str) -> None:
    km = km_proxy(everything_http, "--header-timeout", "1")
    host, port = km.origin.removeprefix("http://").split(":")
    request = iter(b"POST /mcp HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000)
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(0.05)

        def closed() -> bool:
            """Send one more byte of the never-ending header; True once km has hung up."""
            try:
                if sock.recv(1) == b"":
                    return True
            except TimeoutError:
                pass
            try:
                sock.sendall(bytes([next(request)]))
            except OSError:
                return True
            return False

        wait_until(closed, timeout=60, interval=0.1)
    # a client that sends its request at once is served
    with httpx.Client(timeout=60) as client:
        assert _initialize(client, km.url(everything_http))


def test_bridge_refuses_gzip_bomb_answer_without_inflating_it(bomb_upstream: str, km_home: Path) -> None:
    """``km monitor --url``: km is the HTTP client and must inflate the answer to relay it; past
    MAX_BODY_BYTES it stops and answers the stdio client with a JSON-RPC error instead."""
    km = KmProcess(km_home, [], ["--url", bomb_upstream + "/json"])
    try:
        before = peak_rss(km.pid)
        km.write(CALL + b"\n")
        answer = read_json_line(km.stdout, None, timeout=120)
        assert answer["id"] == 1 and f"over {MAX_BODY_BYTES} bytes" in answer["error"]["message"]
        assert peak_rss(km.pid) - before < 100 * MB, (before, peak_rss(km.pid))
        km.close_stdin()
        assert km.wait() == 0
    finally:
        km.cleanup()
