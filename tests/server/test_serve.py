"""`km serve` and `km admin` as real processes: schema checks, admin commands, database restarts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from kilometers.store.db import HEAD

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


@contextlib.contextmanager
def _serving(url: str | None, *extra: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``km serve`` (on ``--db url`` when given) answering /health: yields its base URL."""
    port = _port()
    db_args = ["--db", url] if url else []
    env = env or {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    proc = subprocess.Popen(
        [KM, "serve", *db_args, "--port", str(port), *extra], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, proc)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _serves_at_head(url: str, *extra: str) -> None:
    """km serve starts on ``url``, is ready (schema current) and stores a batch."""
    with _serving(url, *extra) as base:
        assert httpx.get(base + "/ready").json() == {"status": "ready"}
    km("admin", "create-org", "acme", "--plan", "unlimited", "--db", url)
    key = km("admin", "create-key", "--org", "acme", "--db", url).stdout.strip()
    with _serving(url) as base:
        session, events = session_batch(2)
        body = {"session": session, "events": events}
        r = httpx.post(base + "/api/v1/events/batch", json=body, headers=bearer(key))
        assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text


def _at_revision(url: str, revision: str) -> None:
    """A database at an older schema revision, holding an organization."""
    from alembic import command

    from kilometers.store import db

    engine = db.make_engine(url)
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), revision)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO organizations (id, name, plan, created_ns) VALUES ('o1', 'old', 'free', 1)")
        )
    assert db.current_revision(engine) == revision
    engine.dispose()


def _revision(url: str) -> str | None:
    from kilometers.store import db

    engine = db.make_engine(url)
    try:
        return db.current_revision(engine)
    finally:
        engine.dispose()


def test_serve_creates_a_new_sqlite_database(tmp_path: Path) -> None:
    """A new file (and a new directory) is created and migrated, like every other store."""
    url = f"sqlite:///{tmp_path / 'new' / 'team.db'}"
    _serves_at_head(url)
    assert _revision(url) == HEAD


def test_serve_on_the_default_store(tmp_path: Path) -> None:
    """No --db: the default store under KM_HOME, created on first use."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env["KM_HOME"] = str(tmp_path / "home")
    with _serving(None, env=env) as base:
        assert httpx.get(base + "/ready").json() == {"status": "ready"}
    assert _revision(f"sqlite:///{tmp_path / 'home' / 'km.db'}") == HEAD


def test_serve_creates_an_empty_postgresql_database(pg_cluster: Cluster) -> None:
    url = pg_cluster.create_database("km_serve_fresh")
    _serves_at_head(url)
    assert _revision(url) == HEAD


def test_admin_creates_a_new_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'admin-first.db'}"
    km("admin", "create-org", "acme", "--db", url)
    assert _revision(url) == HEAD


@pytest.mark.parametrize("scheme", ["sqlite", "postgresql"])
def test_serve_refuses_an_older_revision_unless_migrate(
    tmp_path: Path, scheme: str, request: pytest.FixtureRequest
) -> None:
    if scheme == "sqlite":
        path = tmp_path / "old.db"
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_cluster").create_database("km_serve_old")
    _at_revision(url, "0004")
    before = hashlib.sha256(path.read_bytes()).hexdigest() if scheme == "sqlite" else None
    result = km("serve", "--db", url, "--port", str(_port()), check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "revision 0004" in result.stderr and f"needs {HEAD}" in result.stderr
    assert "km db upgrade" in result.stderr and "km serve --migrate" in result.stderr
    assert _revision(url) == "0004"
    if scheme == "sqlite":
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    refused = km("admin", "list-orgs", "--db", url, check=False)
    assert refused.returncode == 1 and "km db upgrade" in refused.stderr
    assert _revision(url) == "0004"

    _serves_at_head(url, "--migrate")
    assert _revision(url) == HEAD
    assert "old" in km("admin", "list-orgs", "--db", url).stdout  # the data was migrated, not replaced


def test_serve_refuses_a_database_that_holds_other_tables(tmp_path: Path) -> None:
    """Not empty, not km's: never touched unless asked to."""
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    result = km("serve", "--db", f"sqlite:///{path}", "--port", str(_port()), check=False)
    assert result.returncode == 1 and "revision none" in result.stderr and "km db upgrade" in result.stderr
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]


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


def test_list_orgs_names_an_unset_retention_and_the_set_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orgs.db'}"
    km("db", "upgrade", "--db", url)
    km("admin", "create-org", "acme", "--plan", "unlimited", "--db", url)  # keeps data forever
    km("admin", "create-org", "globex", "--plan", "unlimited", "--db", url)
    km("admin", "set-limits", "--org", "globex", "--retention-days", "30", "--db", url)
    lines = km("admin", "list-orgs", "--db", url).stdout.splitlines()
    [acme] = [line for line in lines if "  acme  " in line]
    [globex] = [line for line in lines if "  globex  " in line]
    assert acme.endswith("retention=none") and "Noned" not in acme
    assert globex.endswith("retention=30d")
