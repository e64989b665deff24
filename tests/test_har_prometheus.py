"""The facts the OpenTelemetry export carries, in ``km export --format har`` (order, direction,
one URL per resource, cancelled and unanswered requests) and in Prometheus (a zero error series
per tool from its first call)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from kilometers.cli.main import cli
from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Session
from kilometers.recorder import Recorder
from kilometers.store.writer import StoreSink

from km_helpers import ECHO_SERVER, PYTHON, km_env

MS = 10**6


def _msg(**fields: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", **fields}) + b"\n"


def test_har_sorted_directions_resources_cancelled_unanswered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    rec = Recorder(Capture(Session(command=["srv"], cwd="/", name="files")), [StoreSink(url)], batch_window=0)
    rec.start()
    t = 10**18
    read = "resources/read"
    rec.submit(C2S, _msg(id=1, method=read, params={"uri": "file:///a b"}), t)
    rec.submit(C2S, _msg(id=2, method=read, params={"uri": "file:///c"}), t + 1 * MS)
    rec.submit(S2C, _msg(id=2, result={"contents": []}), t + 2 * MS)  # answered out of order
    rec.submit(S2C, _msg(id=1, result={"contents": []}), t + 9 * MS)
    rec.submit(S2C, _msg(id=7, method="sampling/createMessage", params={"messages": []}), t + 10 * MS)
    rec.submit(C2S, _msg(id=7, result={"role": "assistant"}), t + 12 * MS)
    rec.submit(C2S, _msg(id=3, method="tools/call", params={"name": "slow"}), t + 20 * MS)
    rec.submit(C2S, _msg(method="notifications/cancelled", params={"requestId": 3}), t + 25 * MS)
    rec.submit(C2S, _msg(id=4, method="tools/call", params={"name": "slow"}), t + 30 * MS)
    rec.submit(C2S, _msg(id=5, method="tools/call", params="not an object"), t + 31 * MS)  # bad input
    rec.stop(0)
    result = CliRunner().invoke(cli, ["export", "--format", "har", "--db", url])
    assert result.exit_code == 0, result.stderr
    entries = orjson.loads(result.stdout_bytes)["log"]["entries"]
    urls = [e["request"]["url"] for e in entries]
    assert urls == [
        "mcp://files/resources/read?uri=file%3A%2F%2F%2Fa%20b",
        "mcp://files/resources/read?uri=file%3A%2F%2F%2Fc",
        "mcp://files/to-client/sampling/createMessage",
        "mcp://files/tools/call/slow",
        "mcp://files/tools/call/slow",
        "mcp://files/tools/call",
    ]
    starts = [e["startedDateTime"] for e in entries]
    assert starts == sorted(starts)
    assert [e["_direction"] for e in entries] == [C2S, C2S, S2C, C2S, C2S, C2S]
    assert entries[0]["time"] == 9.0 and entries[0]["response"]["status"] == 200
    assert entries[0]["request"]["queryString"] == [{"name": "uri", "value": "file:///a b"}]
    cancelled, unanswered = entries[3], entries[4]
    assert cancelled["response"]["status"] == 0 and cancelled["_error"] == "cancelled"
    assert cancelled["time"] == 5.0
    assert unanswered["response"]["status"] == 0 and unanswered["_error"] == "unanswered"


def test_prometheus_has_a_zero_error_series_per_tool(run_km: Any, km_home: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    km = run_km([PYTHON, ECHO_SERVER], km_args=["--metrics-port", str(port)], env=km_env(km_home))
    init = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    km.write(_msg(id=1, method="initialize", params=init))
    km.write(_msg(method="notifications/initialized"))
    km.write(_msg(id=2, method="tools/call", params={"name": "echo", "arguments": {"text": "x"}}))
    km.stdout.wait_for(lambda data: b'"id":2' in data)
    wanted = 'km_tool_calls_total{server="echo_server.py",tool="echo"} 1.0'

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                return str(r.read().decode())
        except OSError:  # the recorder process has not started serving yet
            return ""

    deadline = time.monotonic() + 60
    while wanted not in (text := scrape()) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling until the recorder has seen the call
    assert wanted in text, text
    assert 'km_tool_errors_total{server="echo_server.py",tool="echo"} 0.0' in text
    km.finish()
