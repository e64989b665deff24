"""`km serve` and `km admin` as real processes: schema checks, admin commands, database restarts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from factory import bearer, session_batch
from pg import Cluster

KM = str(Path(sys.executable).parent / "km")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def km(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    result = subprocess.run([KM, *args], capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    for _ in range(150):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("km serve did not start")


def test_serve_refuses_an_out_of_date_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = km("serve", "--db", url, "--port", str(_port()), check=False)
    assert result.returncode == 1 and "km db upgrade" in result.stderr
    km("db", "upgrade", "--db", url)
    result = km("admin", "create-org", "acme", "--db", url, check=False)
    assert result.returncode == 0


def test_admin_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'admin.db'}"
    km("db", "upgrade", "--db", url)
    km("admin", "create-org", "acme", "--plan", "team", "--db", url)
    dup = km("admin", "create-org", "acme", "--db", url, check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    key = km("admin", "create-key", "--org", "acme", "--scope", "read", "--db", url).stdout.strip()
    assert key.startswith("km_live_") and len(key) > 40
    listed = km("admin", "list-keys", "--db", url).stdout
    assert key[:12] in listed and key not in listed and "scope=read" in listed
    key_id = listed.split()[0]
    km("admin", "revoke-key", key_id, "--db", url)
    assert "revoked" in km("admin", "list-keys", "--db", url).stdout
    missing = km("admin", "create-key", "--org", "nobody", "--db", url, check=False)
    assert missing.returncode == 1 and "no organization named 'nobody'" in missing.stderr
    export = km("admin", "export-org", "acme", "--db", url).stdout.splitlines()
    tables = {line.split('"table":"')[1].split('"')[0] for line in export}
    assert {"organizations", "api_keys", "projects", "audit_log"} <= tables
    assert "key_hash" not in "".join(export)
    refused = km("admin", "delete-org", "acme", "--db", url, check=False)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert "deleted acme" in km("admin", "delete-org", "acme", "--yes", "--db", url).stdout
    assert km("admin", "list-orgs", "--db", url).stdout == ""


def test_server_recovers_when_postgresql_restarts(pg_cluster: Cluster) -> None:
    url = pg_cluster.create_database("km_restart")
    km("db", "upgrade", "--db", url)
    km("admin", "create-org", "acme", "--plan", "unlimited", "--db", url)
    key = km("admin", "create-key", "--org", "acme", "--scope", "admin", "--db", url).stdout.strip()
    port = _port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [KM, "serve", "--db", url, "--port", str(port)], stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_ready(base, proc)
        session, events = session_batch(3)
        body = {"session": session, "events": events}
        assert httpx.post(base + "/api/v1/events/batch", json=body, headers=bearer(key)).status_code == 200
        pg_cluster.stop("fast")
        try:
            assert httpx.get(base + "/ready", timeout=10).status_code == 503
            down = httpx.get(base + "/api/v1/sessions", headers=bearer(key), timeout=10)
            assert down.status_code == 503 and down.headers["Retry-After"]
        finally:
            pg_cluster.start()
        for _ in range(50):
            if httpx.get(base + "/ready", timeout=10).status_code == 200:
                break
            time.sleep(0.2)
        items = httpx.get(base + "/api/v1/events", headers=bearer(key), timeout=10).json()["items"]
        assert len(items) == len(events)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("scheme", ["sqlite"])
def test_serve_over_http(tmp_path: Path, scheme: str) -> None:
    url = f"sqlite:///{tmp_path / 'http.db'}"
    km("db", "upgrade", "--db", url)
    km("admin", "create-org", "acme", "--plan", "unlimited", "--db", url)
    key = km("admin", "create-key", "--org", "acme", "--scope", "admin", "--db", url).stdout.strip()
    port = _port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [KM, "serve", "--db", url, "--port", str(port)], stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_ready(base, proc)
        session, events = session_batch(3)
        r = httpx.post(
            base + "/api/v1/events/batch", json={"session": session, "events": events}, headers=bearer(key)
        )
        assert r.json()["accepted"] == len(events)
        assert httpx.get(base + "/ready").json() == {"status": "ready"}
    finally:
        proc.terminate()
        proc.wait(10)
