"""``km doctor``: a healthy setup passes; each kind of problem is a ✗ line with its fix and exit 1."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from kilometers.cli.main import cli

from pg import Cluster, remove_cluster, start_cluster

KM = Path(sys.executable).with_name("km")


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body = json.dumps({"status": "ok", "version": "9.9.9"}).encode()
            self.send_response(200)
        else:
            body = b'{"error": "use POST"}'
            self.send_response(405)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith("KM_"):
            monkeypatch.delenv(key)
    for key in ("XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "APPDATA", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "home").mkdir()
    (tmp_path / "project").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KM_HOME", str(tmp_path / "km_home"))
    monkeypatch.setenv("PATH", f"{KM.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.chdir(tmp_path / "project")
    return tmp_path / "home"


def km(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def _cursor(home: Path, servers: dict[str, object]) -> Path:
    path = home / ".cursor" / "mcp.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": servers}, indent=2) + "\n")
    return path


def test_a_healthy_setup_passes(home: Path, http_server: str) -> None:
    _cursor(
        home,
        {
            "python": {"command": sys.executable, "args": ["-m", "server"]},
            "shell": {"command": "sh", "args": ["-c", "true"]},
            "remote": {"url": f"{http_server}/mcp", "headers": {"Authorization": "Bearer x"}},
        },
    )
    assert km("wrap")[0] == 0
    assert km("init", "--api-url", http_server, "--api-key", "km_live_test")[0] == 0
    assert km("db", "upgrade")[0] == 0
    code, out = km("doctor")
    assert code == 0, out
    assert f"✓ km 0.1.0, Python {sys.version_info.major}.{sys.version_info.minor}" in out
    assert f"✓ km on PATH: {KM}" in out
    assert "✓ config file" in out
    assert "schema current" in out and "✓ store writable" in out
    assert "all 3 servers through km" in out
    assert f"✓ python (Cursor): {sys.executable} found" in out
    assert "✓ shell (Cursor): sh found" in out
    assert f"✓ remote (Cursor): {http_server}/mcp answers (HTTP 405)" in out
    store = f"sqlite:///{os.environ['KM_HOME']}/km.db"
    assert f"✓ Cursor (user): 3 wrapped servers record into {store}, the store this shell reads" in out
    assert f"✓ team server {http_server} is up, km 9.9.9" in out
    assert "✗" not in out and out.rstrip().endswith("all checks passed")


def test_problems_are_failures_with_fixes(home: Path, tmp_path: Path) -> None:
    port = _closed_port()
    path = _cursor(
        home,
        {
            "missing": {"command": "no-such-mcp-server-xyz"},
            "gone": {"url": f"http://127.0.0.1:{port}/mcp"},
            "plain": {"command": "sh"},
        },
    )
    assert km("wrap", "--km", str(tmp_path / "old" / "km"))[0] == 0  # a km that is not there
    km_home = Path(os.environ["KM_HOME"])
    km_home.mkdir(exist_ok=True)
    (km_home / "config.toml").write_text('[sync]\napi_url = "ftp://nope"\n')
    desktop = home / ".config" / "Claude" / "claude_desktop_config.json"
    desktop.parent.mkdir(parents=True)
    desktop.write_text('{"mcpServers": {')

    code, out = km("doctor")
    assert code == 1, out
    lines = out.splitlines()

    def fix_after(text: str) -> str:
        index = next(i for i, line in enumerate(lines) if text in line)
        assert lines[index].lstrip().startswith("✗"), lines[index]
        return lines[index + 1].strip()

    assert fix_after("invalid value for api_url").startswith("fix: fix the file")
    assert fix_after("claude_desktop_config.json is not valid JSON").startswith("fix: fix the syntax")
    assert fix_after("command no-such-mcp-server-xyz not found on PATH").startswith("fix: install it")
    assert fix_after(f"http://127.0.0.1:{port}/mcp unreachable").startswith("fix: check the URL")
    assert fix_after("which is not there any more") == (
        f"fix: km unwrap --config '{path}' && km wrap --config '{path}'"
    )
    assert "problems found" in out

    code, out = km("doctor", "--offline")
    assert "not checked (--offline)" in out and "unreachable" not in out


def test_a_wrapped_server_recording_into_another_store_fails(home: Path, tmp_path: Path) -> None:
    """Run as a client runs them (PATH=/usr/bin:/bin and their env), these kms record elsewhere."""
    other = f"sqlite:///{tmp_path}/other.db"
    path = _cursor(
        home,
        {  # "old": wrapped before km wrap carried the store settings; "other": its env picks a store
            "old": {"command": str(KM), "args": ["monitor", "--name", "old", "--", "sh"]},
            "other": {"command": str(KM), "args": ["monitor", "--", "sh"], "env": {"KM_DB": other}},
            "flag": {"command": str(KM), "args": ["monitor", "--db", other, "--", "sh"]},
        },
    )
    store = f"sqlite:///{os.environ['KM_HOME']}/km.db"
    code, out = km("doctor", "--offline")
    assert code == 1, out
    lines = out.splitlines()
    fix = f"fix: run `km wrap --config '{path}'` again in this shell: it writes the store settings"
    for name in ("old", "other", "flag"):
        index = next(i for i, line in enumerate(lines) if f"{name} (Cursor) records into" in line)
        assert lines[index].lstrip().startswith("✗")
        assert lines[index].endswith(f", but this shell reads {store}")
        assert lines[index + 1].strip().startswith(fix)
        if name != "old":
            assert f"records into {other}," in lines[index]
    assert "wrapped server" not in out  # none records where the shell reads

    doc = json.loads(path.read_text())
    del doc["mcpServers"]["other"], doc["mcpServers"]["flag"]  # km wrap refuses to override them
    path.write_text(json.dumps(doc))
    code, out = km("wrap")
    assert code == 0 and "old: already runs through km; now records into the store this shell reads" in out
    code, out = km("doctor", "--offline")
    assert code == 0, out
    assert f"✓ Cursor (user): 1 wrapped server records into {store}, the store this shell reads" in out


def test_servers_not_through_km_are_a_warning(home: Path) -> None:
    _cursor(home, {"plain": {"command": "sh"}})
    code, out = km("doctor", "--offline")
    assert code == 0, out
    assert "! Cursor (user)" in out and "0 of 1 servers through km; not: plain" in out
    assert "fix: km wrap --config" in out


def test_km_missing_from_path_fails(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, out = km("doctor", "--offline")
    assert code == 1
    assert "✗ km is not on PATH" in out and f"fix: add {KM.parent} to PATH" in out


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()  # fails (no skip) when PostgreSQL cannot start, like the server tests
    yield cluster
    remove_cluster(cluster)


def test_a_postgresql_store(home: Path, pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_cluster.create_database("km_doctor")
    monkeypatch.setenv("KM_DB", url)
    code, out = km("doctor", "--offline")
    assert code == 0, out
    assert "✓ store postgresql://postgres@127.0.0.1" in out and "! the store has no schema yet" in out
    assert km("db", "upgrade")[0] == 0
    code, out = km("doctor", "--offline")
    assert code == 0 and "schema current" in out and "! the store" not in out
    monkeypatch.setenv("KM_DB", url.rsplit("/", 1)[0] + "/no_such_db")
    code, out = km("doctor", "--offline")
    assert code == 1 and "✗ cannot open the store postgresql://" in out
