"""Helpers for the integration tests: running real `km` processes and reading the store back.

The fixtures that use them (``km_home``, ``run_km``) are in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SERVERS = TESTS / "servers"
PYTHON = sys.executable
KM = str(Path(sys.executable).with_name("km"))
NODE_BIN = ROOT / "node_modules" / ".bin"

ECHO_SERVER = str(SERVERS / "echo_server.py")
RAW_CAT = str(SERVERS / "raw_cat.py")
LIFECYCLE_SERVER = str(SERVERS / "lifecycle_server.py")
BIG_SERVER = str(SERVERS / "big_server.py")


# -- environment ------------------------------------------------------------------------------------


def km_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a km process: ours, with ``KM_HOME`` set and ``extra`` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env["KM_HOME"] = str(home)
    env.update(extra)
    return env


# -- reading the store through the CLI ------------------------------------------------------------


def km_json(home: Path, *args: str) -> list[dict[str, Any]]:
    """Run ``km ARGS --json`` and parse its output: one JSON object per line."""
    proc = subprocess.run(
        [KM, *args, "--json"], env=km_env(home), capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"km {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def km_events(home: Path, *args: str) -> list[dict[str, Any]]:
    """Every recorded event (oldest first), optionally filtered with ``km events`` options."""
    return km_json(home, "events", "--limit", "10000000", *args)


def km_sessions(home: Path) -> list[dict[str, Any]]:
    return km_json(home, "sessions", "--limit", "1000")


def only_session(home: Path) -> dict[str, Any]:
    sessions = km_sessions(home)
    assert len(sessions) == 1, sessions
    return sessions[0]


# -- running km monitor -----------------------------------------------------------------------------


class OutputReader:
    """Drains a pipe on a thread (so the writer never blocks on a full pipe) and keeps the bytes."""

    def __init__(self, stream: IO[bytes], keep: bool = True) -> None:
        self._fd = stream.fileno()
        self._stream = stream
        self._keep = keep
        self._chunks: list[bytes] = []
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.closed = False
        self._cond = threading.Condition()
        self._reading = threading.Event()
        self._reading.set()
        self._pause_at: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            want = 1 << 16
            if self._pause_at is not None:
                if self.size >= self._pause_at:
                    self._reading.clear()
                    self._pause_at = None
                else:
                    want = min(want, self._pause_at - self.size)
            self._reading.wait()
            try:
                data = os.read(self._fd, want)
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self.closed = True
                    self._cond.notify_all()
                    return
                if self._keep:
                    self._chunks.append(data)
                self.size += len(data)
                self.sha256.update(data)
                self._cond.notify_all()

    def pause_after(self, size: int) -> None:
        """Stop reading once exactly ``size`` bytes were read, like a client busy with something else."""
        self._pause_at = size

    @property
    def paused(self) -> bool:
        return not self._reading.is_set()

    def resume(self) -> None:
        self._reading.set()

    def _joined(self) -> bytes:
        joined = b"".join(self._chunks)
        self._chunks = [joined] if joined else []
        return joined

    @property
    def data(self) -> bytes:
        with self._cond:
            return self._joined()

    def wait_for(self, predicate: Callable[[bytes], bool], timeout: float = 30.0) -> bytes:
        """Block until ``predicate(all bytes so far)`` holds; fail the test after ``timeout``.

        The predicate is evaluated again whenever bytes arrive, and every few milliseconds."""
        deadline = time.monotonic() + timeout
        seen = -1
        while True:
            with self._cond:
                if self.size == seen and not self.closed:
                    self._cond.wait(max(0.0, min(deadline - time.monotonic(), 0.05)))
                seen, closed = self.size, self.closed
                joined = self._joined()
            if predicate(joined):
                return joined
            if closed:
                raise AssertionError(f"the stream closed before the expected output: {joined[-500:]!r}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for output: {joined[-500:]!r}")
            time.sleep(0.01)

    def wait_closed(self, timeout: float = 30.0) -> bytes:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the stream did not close in time"
        return self.data


def agents_under(base: Path) -> list[psutil.Process]:
    """Running agents (``python -m kilometers.agent``) whose KM_HOME lies under ``base``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if "kilometers.agent" in (proc.info["cmdline"] or []):
                home = proc.environ().get("KM_HOME", "")
                if home and Path(home).resolve().is_relative_to(base.resolve()):
                    found.append(proc)
    return found


def stop_agents(base: Path, timeout: float = 60.0) -> None:
    """Stop the agents of data directories under ``base`` (SIGTERM: they store what they hold)."""
    agents = agents_under(base)
    for proc in agents:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(agents, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def is_recorder(proc: psutil.Process) -> bool:
    """Whether ``proc`` is km monitor's recorder process (not the server)."""
    try:
        return "kilometers.recorder_process" in proc.cmdline()
    except psutil.Error:
        return False


def recorder_of(km_pid: int, timeout: float = 30.0) -> psutil.Process | None:
    """km's recorder process, once it runs (None if km records in-process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(psutil.NoSuchProcess):
            found = [c for c in psutil.Process(km_pid).children() if is_recorder(c)]
            if found:
                return found[0]
        time.sleep(0.02)
    return None


class KmProcess:
    """A running ``km monitor -- CMD``, its stdin a pipe we hold, its stdout and stderr drained."""

    def __init__(
        self,
        home: Path,
        command: Sequence[str],
        km_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        keep_stdout: bool = True,
    ) -> None:
        self.home = home
        self.argv = [KM, "monitor", *km_args, "--", *command]
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env if env is not None else km_env(home),
            cwd=cwd,
            bufsize=0,
            start_new_session=True,  # its own group: cleanup after a failed test cannot hit pytest
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout = OutputReader(self.proc.stdout, keep=keep_stdout)
        self.stderr = OutputReader(self.proc.stderr)
        self._stdin_closed = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def write(self, data: bytes) -> None:
        """Write all of ``data`` to km's stdin (no buffering: it is sent right away)."""
        assert self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]

    def close_stdin(self) -> None:
        if not self._stdin_closed:
            self._stdin_closed = True
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout)

    def descendants(self) -> list[psutil.Process]:
        try:
            return list(psutil.Process(self.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            return []

    def server_process(self, timeout: float = 30.0) -> psutil.Process:
        """km's direct child: the server."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(psutil.NoSuchProcess):
                children = [c for c in psutil.Process(self.pid).children() if not is_recorder(c)]
                if children:
                    return children[0]
            time.sleep(0.02)
        raise AssertionError("km did not start a server process")

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def finish(self, timeout: float = 60.0) -> tuple[int, bytes, bytes]:
        """Close stdin, wait for km to exit; return (exit code, stdout, stderr)."""
        self.close_stdin()
        code = self.wait(timeout)
        return code, self.stdout.wait_closed(), self.stderr.wait_closed()

    def cleanup(self) -> None:
        """Kill whatever is left (only after a failed test; passing tests leave nothing)."""
        procs = self.descendants()
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append(psutil.Process(self.pid))
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)
        self.close_stdin()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def wait_gone(pids: Sequence[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of ``pids`` is a live process (zombies of other parents count as gone).

    Returns the pids still alive after ``timeout`` (empty when all are gone)."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while True:
        still = []
        for pid in alive:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    still.append(pid)
            except psutil.NoSuchProcess:
                pass
        alive = still
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def read_json_line(reader: OutputReader, method: str | None, timeout: float = 30.0) -> dict[str, Any]:
    """Wait for the first JSON line on ``reader`` whose ``method`` is ``method``; return it.

    With ``method=None``, the first line without a method (a response)."""
    found: list[dict[str, Any]] = []
    scanned = 0  # each complete line is parsed once, however often new bytes arrive

    def has(data: bytes) -> bool:
        nonlocal scanned
        while True:
            end = data.find(b"\n", scanned)
            if end < 0:
                return False
            line, scanned = data[scanned:end], end + 1
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if isinstance(msg, dict) and msg.get("method") == method:
                    found.append(msg)
                    return True

    reader.wait_for(has, timeout)
    return found[0]


OIDC_PROVIDER_SCRIPT = TESTS / "server" / "oidc_provider.mjs"


@contextlib.contextmanager
def oidc_provider(
    client_id: str, client_secret: str, redirect_uri: str, accounts: dict[str, dict[str, Any]]
) -> Iterator[str]:
    """A real OpenID Provider (node-oidc-provider, tests/server/oidc_provider.mjs) with one
    client and these accounts (login name -> claims); yields its issuer URL once discovery answers."""
    import shutil

    import httpx

    node = shutil.which("node")
    assert node, "Node.js is needed for the OpenID Provider of these tests (make install)"
    assert (ROOT / "node_modules" / "oidc-provider").is_dir(), "run make install (npm install) first"
    env = {
        **os.environ,
        "NODE_ENV": "development",
        "OIDC_CLIENT_ID": client_id,
        "OIDC_CLIENT_SECRET": client_secret,
        "OIDC_REDIRECT_URI": redirect_uri,
        "OIDC_ACCOUNTS": json.dumps(accounts),
    }
    proc = subprocess.Popen(
        [node, str(OIDC_PROVIDER_SCRIPT)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        issuer = proc.stdout.readline().strip()
        assert issuer.startswith("http://127.0.0.1:"), f"the OpenID Provider did not start ({issuer!r})"
        discovery = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
        assert discovery.status_code == 200 and discovery.json()["issuer"] == issuer
        yield issuer
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# -- the browser tests: km serve and Debian's Chromium ---------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Chromium as root on a closed network: no sandbox, and no background connections to refuse."""


def wait_until(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "the condition",
    *,
    seen: Callable[[], str] | None = None,
    interval: float = 0.05,
) -> Any:
    """Wait for ``condition()`` to be true and return what it gave. After ``timeout`` seconds the
    test fails, saying ``what`` it waited for and, given ``seen``, what was seen instead."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            instead = f": {seen()}" if seen else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{instead}")
        time.sleep(interval)
    return value


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def km_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    """Run ``km ARGS`` to completion; asserts it succeeded and returns its stdout.

    ``km monitor`` gets a grace period of 60 s: the client's stdin (``stdin``) closes at once,
    and a server must end within the grace period after that or be terminated (exit status 143);
    on a loaded machine, an SDK server's start alone took longer than the default 5 s."""
    if args[:1] == ("monitor",) and "--grace-period" not in args:
        args = ("monitor", "--grace-period", "60", *args[1:])
    result = subprocess.run([KM, *args], capture_output=True, input=stdin, timeout=120, env=env)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip()


@contextlib.contextmanager
def km_serve(
    db: str | None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    args: Sequence[str] = (),
    wait: float = 30,
) -> Iterator[str]:
    """A real ``km serve`` on ``db`` (None: the store its settings name) with ``args`` (its stderr
    inherited); yields its base URL once /health answers, within ``wait`` seconds."""
    import httpx

    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    store = ["--db", db] if db is not None else []
    proc = subprocess.Popen([KM, "serve", *store, "--port", str(port), *args], env=env)
    try:
        deadline = time.monotonic() + wait
        while True:
            assert proc.poll() is None, f"km serve exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"km serve did not answer /health within {wait:g} s"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (its own browser downloads cannot work here)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: make setup installs it"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


# -- a team server with recorded traffic, for the browser tests -------------------------------------

OWNER_EMAIL, OWNER_PASSWORD = "owner@example.com", "correct horse battery"
TOOL_SERVER = TESTS / "browser" / "tool_server.py"


@dataclasses.dataclass
class Team:
    """A real ``km serve`` with the organization ``acme``, its owner and an ingest key."""

    base: str
    db: str
    ingest_key: str
    home: Path

    def monitor_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
        env.update(
            KM_HOME=str(self.home), KM_API_URL=self.base, KM_API_KEY=self.ingest_key, KM_UPLOAD_INTERVAL="0.1"
        )
        return env

    def record(self, lines: list[bytes], name: str = "echo") -> None:
        """One real km monitor session through the line-echo tool server, uploaded to the team server."""
        km_cli("monitor", "--name", name, "--", sys.executable, str(TOOL_SERVER), env=self.monitor_env(),
               stdin=b"".join(lines))  # fmt: skip
        km_cli("sync", env=self.monitor_env())


@contextlib.contextmanager
def team_server(tmp: Path) -> Iterator[Team]:
    db = f"sqlite:///{tmp / 'team.db'}"
    km_cli("db", "upgrade", "--db", db)
    km_cli("admin", "create-org", "acme", "--plan", "unlimited", "--db", db)
    km_cli("admin", "create-user", OWNER_EMAIL, "--org", "acme", "--role", "owner",
           "--password", OWNER_PASSWORD, "--db", db)  # fmt: skip
    key = km_cli("admin", "create-key", "--org", "acme", "--scope", "ingest", "--db", db)
    with km_serve(db) as base:
        team = Team(base, db, key, tmp / "home")
        team.home.mkdir()
        yield team


@contextlib.contextmanager
def signed_in_page(browser: Any, team: Team) -> Iterator[tuple[Any, list[str]]]:
    """A fresh browser context signed in as the owner; yields the page and the problems it
    reported (dialogs, page errors), which a test should find empty."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(team.base + "/login")
    page.get_by_test_id("login-email").fill(OWNER_EMAIL)
    page.get_by_test_id("login-password").fill(OWNER_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("org-name").first).to_have_text("acme")
    try:
        yield page, problems
    finally:
        context.close()
