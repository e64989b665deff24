"""Helpers for the HTTP tests: real server processes, ``km proxy`` processes, the SDK's HTTP clients.

Everything listens on 127.0.0.1 on ports picked by the OS. Fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from km_helpers import KM, NODE_BIN, PYTHON, ROOT, OutputReader, km_env

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers"
UPSTREAM = str(SERVERS / "upstream.py")
EVERYTHING = str(NODE_BIN / "mcp-server-everything")
INSPECTOR = str(NODE_BIN / "mcp-inspector")
SECRET_TOKEN = "km-test-bearer-7f3a9c1e5d"
COOKIE_SECRET = "cookie-secret-42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout}s")


class Proc:
    """A background process in its own process group, its output drained on threads."""

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout = OutputReader(self.proc.stdout)
        self.stderr = OutputReader(self.proc.stderr)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process (not its group), wait for it; kill the group if it does not exit."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.wait(10)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def start_everything(mode: str) -> tuple[Proc, str]:
    """``mcp-server-everything streamableHttp|sse`` on a free port (it reads PORT); returns its URL."""
    port = free_port()
    env = dict(os.environ, PORT=str(port))
    proc = Proc(["node", EVERYTHING, mode], env=env)
    wait_port(port, proc.proc)
    path = "/mcp" if mode == "streamableHttp" else "/sse"
    return proc, f"http://127.0.0.1:{port}{path}"


def start_upstream(*args: str) -> tuple[Proc, int]:
    """``tests/http/servers/upstream.py`` (the SDK's server under uvicorn) on a free port."""
    port = free_port()
    proc = Proc([PYTHON, UPSTREAM, "--port", str(port), *args], env=dict(os.environ))
    wait_port(port, proc.proc)
    return proc, port


class KmProxy(Proc):
    """``km proxy --upstream URL --listen 127.0.0.1:0 ...``; :attr:`origin` is km's own address."""

    def __init__(self, home: Path, upstream: str, *args: str, env: dict[str, str] | None = None) -> None:
        super().__init__(
            [KM, "proxy", "--upstream", upstream, "--listen", "127.0.0.1:0", *args],
            env=env if env is not None else km_env(home),
        )
        self.home = home
        found: list[str] = []

        def listening(data: bytes) -> bool:
            match = re.search(rb"listening on (https?://[^,\s]+)", data)
            if match:
                found.append(match.group(1).decode())
            return bool(match)

        try:
            self.stderr.wait_for(listening, timeout=60)
        except AssertionError:
            self.kill()
            raise
        self.origin = found[0]
        self.upstream_origin = re.match(r"https?://[^/]+", upstream).group(0)  # type: ignore[union-attr]

    def url(self, upstream_url: str) -> str:
        """``upstream_url`` with km's origin instead of the upstream's."""
        return self.origin + upstream_url[len(self.upstream_origin) :]


StartProxy = Callable[..., KmProxy]
"""The ``km_proxy`` fixture: ``km_proxy(upstream_url, *km_args)``."""


def db_bytes(home: Path) -> bytes:
    """Every byte of the SQLite store (main file, WAL and shared memory), to grep for secrets."""
    data = b""
    for path in sorted(home.rglob("*.db*")):
        data += path.read_bytes()
    return data


def inspector(*args: str, timeout: float = 120.0) -> Any:
    """Run the MCP Inspector's CLI mode; return its JSON output."""
    proc = subprocess.run(
        [INSPECTOR, "--cli", *args],
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ),
        check=False,
    )
    assert proc.returncode == 0, f"inspector failed: {proc.stderr.decode(errors='replace')[-2000:]}"
    return json.loads(proc.stdout)


def prepare_store(home: Path) -> None:
    """Create and migrate the store now, so that short-lived km processes only open it."""
    proc = subprocess.run(
        [KM, "db", "upgrade"], env=km_env(home), capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def python_env(home: Path) -> dict[str, str]:
    return km_env(home)


# -- MCP SDK clients ---------------------------------------------------------------------------------


def sdk_target(
    target: str | Any, sse: bool = False, headers: dict[str, str] | None = None, verify: Any = True
) -> Any:
    """What ``mcp.Client`` connects to: a URL via Streamable HTTP or legacy SSE, or stdio parameters."""
    if not isinstance(target, str):
        return target
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    if isinstance(verify, str):
        import ssl

        verify = ssl.create_default_context(cafile=verify)
    if sse:
        if verify is True:
            return sse_client(target, headers=headers)

        def factory(**kwargs: Any) -> Any:
            return create_mcp_http_client(verify=verify, **kwargs)

        return sse_client(target, headers=headers, httpx_client_factory=factory)
    if headers is None and verify is True:
        return streamable_http_client(target)
    client = create_mcp_http_client(headers=headers)
    if verify is not True:
        import httpx2

        client = httpx2.AsyncClient(headers=headers, verify=verify, timeout=httpx2.Timeout(30, read=300))
    return streamable_http_client(target, http_client=client)


async def everything_scenario(target: Any, sse: bool = False) -> dict[str, Any]:
    """What a client does with server-everything: listing, calls, a long call with progress over
    SSE, a sampling request and an elicitation request from the server. Returns every result."""
    import mcp_types as types
    from mcp import Client

    progress: list[tuple[float, float | None, float]] = []
    started = time.monotonic()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, time.monotonic() - started))

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        text = params.messages[0].content.text  # type: ignore[union-attr]
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"sampled: {text}"), model="km-test"
        )

    async def elicitation(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    out: dict[str, Any] = {}
    async with Client(
        sdk_target(target, sse), mode="legacy", sampling_callback=sampling, elicitation_callback=elicitation
    ) as client:
        out["server"] = client.server_info.model_dump() if client.server_info else None
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        out["echo"] = (await client.call_tool("echo", {"message": "hello km"})).model_dump()
        out["sum"] = (await client.call_tool("get-sum", {"a": 2, "b": 40})).model_dump()
        out["image"] = (await client.call_tool("get-tiny-image", {})).model_dump()
        resources = (await client.list_resources()).resources
        out["resources"] = [r.uri for r in resources]
        out["read"] = (await client.read_resource(resources[0].uri)).model_dump()
        out["prompts"] = sorted(p.name for p in (await client.list_prompts()).prompts)
        out["prompt"] = (await client.get_prompt("simple-prompt")).model_dump()
        started = time.monotonic()
        long = await client.call_tool(
            "trigger-long-running-operation", {"duration": 1.5, "steps": 3}, progress_callback=on_progress
        )
        out["long_elapsed"] = time.monotonic() - started
        out["long"] = long.model_dump()
        out["sampling"] = (
            await client.call_tool("trigger-sampling-request", {"prompt": "km?", "maxTokens": 5})
        ).model_dump()
        out["elicitation"] = (await client.call_tool("trigger-elicitation-request", {})).model_dump()
    out["progress"] = progress
    return out


def comparable(result: dict[str, Any]) -> dict[str, Any]:
    """A scenario's results without the timings."""
    return {
        k: ([(v, t) for v, t, _ in value] if k == "progress" else value)
        for k, value in result.items()
        if k != "long_elapsed"
    }


async def upstream_scenario(
    target: Any,
    mode: str = "auto",
    headers: dict[str, str] | None = None,
    verify: Any = True,
    sse: bool = False,
) -> dict[str, Any]:
    """What a client does with tests/http/servers/upstream.py (the SDK server)."""
    from mcp import Client

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    out: dict[str, Any] = {}
    async with Client(sdk_target(target, sse, headers, verify), mode=mode) as client:
        out["protocol"] = client.protocol_version
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        out["echo"] = (await client.call_tool("echo", {"text": "hello km"})).model_dump()
        out["add"] = (await client.call_tool("add", {"a": 2, "b": 40})).model_dump()
        out["regional"] = (
            await client.call_tool("regional", {"region": "eu-west", "text": "hi"})
        ).model_dump()
        out["slow"] = (
            await client.call_tool("slow", {"steps": 3}, progress_callback=on_progress)
        ).model_dump()
        out["resource"] = (await client.read_resource("test://static")).model_dump()
        out["prompt"] = (await client.get_prompt("greeting", {"name": "km"})).model_dump()
    out["progress"] = progress
    return out


def requests_answered(events: list[dict[str, Any]]) -> None:
    """Every request (either direction) has exactly one correlated answer with a latency.

    A request of the server that arrived after the client's last message is excused: the client
    had finished and gone (a CLI exits once it has its answer), so nobody was there to answer it."""
    requests = {e["id"]: e for e in events if e["kind"] == "request"}
    answers = [e for e in events if e["kind"] in ("response", "error")]
    by_request = {a["request_event_id"]: a for a in answers if a["request_event_id"]}
    client_last: dict[str, str] = {}
    for e in events:
        if e["direction"] == "client_to_server":
            client_last[e["session_id"]] = max(client_last.get(e["session_id"], ""), e["ts"])
    missing = [
        r["method"]
        for rid, r in requests.items()
        if rid not in by_request
        and not (r["direction"] == "server_to_client" and r["ts"] > client_last.get(r["session_id"], ""))
    ]
    assert not missing, f"requests without a recorded answer: {missing}"
    for rid, answer in by_request.items():
        assert answer["latency_ms"] is not None and answer["latency_ms"] >= 0
        assert answer["method"] == requests[rid]["method"]
        assert answer["direction"] != requests[rid]["direction"]
    assert not [e for e in events if e["kind"] == "invalid"], "invalid events recorded"
