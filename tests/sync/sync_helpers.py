"""Helpers for the forwarding tests: a real `km serve` process, real `km monitor` sessions, and
reading both sides back (the local store through `km events --json`, the server through its API)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from km_helpers import KM, PYTHON, km_env, km_events, km_sessions

HERE = Path(__file__).resolve().parent
RPC_SERVER = str(HERE / "rpc_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def km_run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``km ARGS`` to completion; ``env`` defaults to ours without any ``KM_*`` variable."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    return subprocess.run([KM, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def km_ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = km_run(*args, env=env)
    assert result.returncode == 0, f"km {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class TeamServer:
    """A real ``km serve`` on its own database (SQLite file or PostgreSQL URL), with one organization
    ``acme`` and an ingest key and a read key. Can be killed (SIGKILL) and restarted on the same port."""

    def __init__(
        self,
        workdir: Path,
        db_url: str | None = None,
        serve_args: Sequence[str] = (),
        template: TeamServer | None = None,
    ) -> None:
        """``template``: copy that (never started) SQLite server's database and keys instead of
        preparing a new one with `km db upgrade` and `km admin` (the same result, seconds sooner)."""
        self.workdir = workdir
        self.db_url = db_url or f"sqlite:///{workdir / 'server.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.serve_args = list(serve_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "serve.log"
        if template is not None and db_url is None:
            shutil.copyfile(template.workdir / "server.db", workdir / "server.db")
            self.ingest_key, self.read_key = template.ingest_key, template.read_key
            return
        km_ok("db", "upgrade", "--db", self.db_url)
        km_ok("admin", "create-org", "acme", "--plan", "unlimited", "--db", self.db_url)
        self.ingest_key = self.create_key("ingest")
        self.read_key = self.create_key("read")

    def admin(self, *args: str) -> str:
        return km_ok("admin", *args, "--db", self.db_url)

    def create_key(self, scope: str) -> str:
        key = self.admin("create-key", "--org", "acme", "--scope", scope).strip()
        assert key.startswith("km_live_"), key
        return key

    def key_id(self, key: str) -> str:
        for line in self.admin("list-keys", "--json").splitlines():
            record = json.loads(line)
            if key.startswith(record["prefix"]):
                return str(record["id"])
        raise AssertionError("key not listed")

    def start(self, *extra: str) -> TeamServer:
        assert self.proc is None or self.proc.poll() is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [KM, "serve", "--db", self.db_url, "--port", str(self.port), *self.serve_args, *extra],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"km serve exited: {self.log.read_text(errors='replace')}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            assert time.monotonic() < deadline, "km serve did not start in 30 s"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, requests in flight are cut."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    # -- reading the server back -----------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            self.url + path, params=params, headers={"Authorization": f"Bearer {self.read_key}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()

    def events(self, session_id: str) -> list[dict[str, Any]]:
        """Every event of a session as the API lists it (all pages)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"session_id": session_id, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = self.get("/api/v1/events", **params)
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return items

    def session(self, session_id: str) -> dict[str, Any] | None:
        response = httpx.get(
            f"{self.url}/api/v1/sessions/{session_id}",
            headers={"Authorization": f"Bearer {self.read_key}"},
            timeout=30,
        )
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return dict(response.json())

    def count(self, session_id: str) -> int:
        return len(self.events(session_id))


# -- the client side --------------------------------------------------------------------------------


def client_env(
    home: Path, server: TeamServer | None = None, key: str | None = None, **extra: str
) -> dict[str, str]:
    """Environment for km commands of one user: ``KM_HOME`` plus the team server to forward to."""
    values = dict(extra)
    if server is not None:
        values.setdefault("KM_API_URL", server.url)
        values.setdefault("KM_API_KEY", key or server.ingest_key)
    return km_env(home, **values)


def rpc_lines(calls: int, payload_bytes: int = 0, first_id: int = 1, initialize: bool = True) -> list[bytes]:
    """An MCP-like conversation: initialize, initialized, then ``calls`` tools/call requests."""
    lines = []
    if initialize:
        params = {"clientInfo": {"name": "sync-test", "version": "1"}, "capabilities": {}}
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        lines.append(json.dumps(init).encode() + b"\n")
        lines.append(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
    for i in range(first_id, first_id + calls):
        call = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"i": i, "text": "x" * payload_bytes}}}  # fmt: skip
        lines.append(json.dumps(call).encode() + b"\n")
    return lines


def expected_events(calls: int, initialize: bool = True) -> int:
    """Messages on the wire: each request and its response, plus the initialized notification."""
    return 2 * calls + (3 if initialize else 0)


def run_session(
    env: dict[str, str], calls: int, name: str, payload_bytes: int = 0, timeout: float = 120
) -> subprocess.CompletedProcess[bytes]:
    """One complete ``km monitor`` session over the raw rpc server, fed all at once, then EOF."""
    data = b"".join(rpc_lines(calls, payload_bytes))
    result = subprocess.run(
        [KM, "monitor", "--name", name, "--", PYTHON, RPC_SERVER],
        input=data,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["id"] for a in answers] == list(range(calls + 1)), "the client did not get every answer"
    return result


def local_sessions(home: Path) -> dict[str, dict[str, Any]]:
    """Sessions of the local store by name."""
    return {s["name"]: s for s in km_sessions(home)}


def local_event_ids(home: Path, session_id: str) -> list[str]:
    return [e["id"] for e in km_events(home, "--session", session_id)]


def local_cursor(home: Path, server: TeamServer) -> int:
    """The uploader's cursor for ``server`` in the local store (read directly, for polling)."""
    try:
        with contextlib.closing(sqlite3.connect(home / "km.db", timeout=10)) as conn:
            row = conn.execute(
                "SELECT value FROM sync_state WHERE target = ? AND key = 'cursor'", (server.url,)
            ).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def assert_exactly_once(home: Path, server: TeamServer, session_id: str, ended: bool = True) -> int:
    """Every local event of the session is on the server exactly once, with nothing extra, and the
    server's counters agree. Returns the number of events."""
    local = local_event_ids(home, session_id)
    remote = [e["id"] for e in server.events(session_id)]
    assert len(remote) == len(set(remote)), "the server lists an event twice"
    missing = set(local) - set(remote)
    extra = set(remote) - set(local)
    assert not missing and not extra, f"{len(missing)} missing, {len(extra)} unexpected on the server"
    assert len(remote) == len(local)
    session = server.session(session_id)
    assert session is not None
    assert session["event_count"] == len(local), "the server counted an event twice (or missed one)"
    if ended:
        assert session["ended_at"] is not None and session["exit_code"] == 0, session
    return len(local)
