"""Lossless forwarding from `km monitor` to a real team server (`km serve`), exactly once.

Real processes only: `km serve` on SQLite or PostgreSQL, `km monitor` around a raw JSON-RPC server,
`km sync` and `km status`. The server is killed with SIGKILL, restarted, given bad keys, a tiny body
limit, a rate limit and a quota; every time, every local event must end up on it exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sync_helpers import (
    RPC_SERVER,
    TeamServer,
    assert_exactly_once,
    client_env,
    expected_events,
    free_port,
    km_ok,
    km_run,
    local_cursor,
    local_sessions,
    rpc_lines,
    run_session,
)

from km_helpers import KM, PYTHON, KmProcess, km_events, wait_until

MakeServer = Callable[..., TeamServer]
FAST = {"KM_UPLOAD_INTERVAL": "0.2"}


def start_monitor(home: Path, env: dict[str, str], name: str) -> KmProcess:
    return KmProcess(home, [PYTHON, RPC_SERVER], ["--name", name], env=env)


def converse(km: KmProcess, calls: int, first_id: int = 1, initialize: bool = True) -> None:
    """Send requests one by one and wait for each answer, like a client would."""
    for line in rpc_lines(calls, first_id=first_id, initialize=initialize):
        km.write(line)
    last = first_id + calls - 1

    def answered(data: bytes) -> bool:
        complete = data.split(b"\n")[:-1]
        return any(json.loads(x).get("id") == last for x in complete if x.strip())

    km.stdout.wait_for(answered)


def assert_key_hidden(key: str, *outputs: str | bytes) -> None:
    for out in outputs:
        text = out.decode(errors="replace") if isinstance(out, bytes) else out
        assert key not in text, "the API key was printed"


# -- the happy path ---------------------------------------------------------------------------------


def test_monitor_forwards_every_event_exactly_once(
    km_home: Path, team_server: MakeServer, server_db_url: str | None
) -> None:
    server = team_server(server_db_url)
    env = client_env(km_home, server, **FAST)
    # a long session: its events reach the server while it runs (the background uploader)
    km = start_monitor(km_home, env, "alpha")
    try:
        converse(km, 25)
        sid = None

        def uploaded_while_running() -> bool:
            nonlocal sid
            sessions = local_sessions(km_home)
            if "alpha" not in sessions:
                return False
            sid = sessions["alpha"]["id"]
            return server.session(sid) is not None and server.count(sid) == expected_events(25)

        wait_until(uploaded_while_running, what="events uploaded during the session")
        converse(km, 10, first_id=100, initialize=False)
        code, out, err = km.finish()
    finally:
        km.cleanup()
    assert code == 0 and err == b"", err
    assert len(out.splitlines()) == 36  # the client got every answer, and nothing else on stdout
    # short sessions: the final flush at session end sends them right away
    run_session(env, 30, "beta")
    run_session(env, 5, "gamma")
    sessions = local_sessions(km_home)
    for name in ("alpha", "beta", "gamma"):
        assert_exactly_once(km_home, server, sessions[name]["id"])
    assert sessions["alpha"]["event_count"] == expected_events(25) + 20
    # nothing left: km sync has nothing to do, km status says so, and the counts stay the same
    assert "nothing to upload" in km_ok("sync", env=env)
    status = km_ok("status", env=env)
    assert "backlog:      none" in status and server.url in status
    assert_key_hidden(server.ingest_key, status)
    stats = server.get("/api/v1/stats", since="2000-01-01T00:00:00Z")
    total = sum(s["event_count"] for s in sessions.values())
    assert stats["totals"]["events"] == total, "the server's rollups counted an event twice"


# -- the server is not there -------------------------------------------------------------------------


def test_server_down_then_km_sync_uploads_the_backlog_once(km_home: Path, team_server: MakeServer) -> None:
    server = team_server(start=False)
    env = client_env(km_home, server, **FAST)
    first = run_session(env, 40, "alpha")
    run_session(env, 7, "beta")
    # traffic is unaffected, stdout is only the server's; one line on stderr says what happened
    err = first.stderr.decode()
    assert err.count("\n") == 1 and "cannot reach the team server" in err and "kept locally" in err, err
    assert_key_hidden(server.ingest_key, first.stdout, err)
    status = km_ok("status", env=env)
    assert f"backlog:      {expected_events(40) + expected_events(7)} events" in status
    assert f"alpha  {expected_events(40)}" in status and f"beta   {expected_events(7)}" in status
    down = km_run("sync", "--retries", "0", env=env)
    assert down.returncode == 1 and "cannot reach the team server" in down.stderr, down.stderr
    assert "kept in the local store" in down.stderr

    # (an agent still up would upload the backlog by itself once the server is back: this is
    # about km sync, so it goes first)
    km_ok("agent", "stop", env=env)
    server.start()
    result = km_run("sync", env=env)
    assert result.returncode == 0, result.stderr
    assert f"uploaded {expected_events(40) + expected_events(7)} events" in result.stdout
    sessions = local_sessions(km_home)
    for name in ("alpha", "beta"):
        assert_exactly_once(km_home, server, sessions[name]["id"])
    assert "backlog:      none" in km_ok("status", env=env)
    assert "nothing to upload" in km_ok("sync", env=env)


def test_next_km_run_uploads_what_an_earlier_run_left(km_home: Path, team_server: MakeServer) -> None:
    server = team_server(start=False)
    env = client_env(km_home, server, **FAST)
    run_session(env, 20, "offline")
    server.start()
    offline_id = local_sessions(km_home)["offline"]["id"]
    km = start_monitor(km_home, env, "online")
    try:
        converse(km, 3)
        # without km sync: the new run's uploader resumes from the cursor and sends the old session too
        wait_until(lambda: server.count(offline_id) == expected_events(20), what="the earlier backlog")
        code, _, err = km.finish()
    finally:
        km.cleanup()
    assert code == 0 and err == b""
    sessions = local_sessions(km_home)
    assert_exactly_once(km_home, server, offline_id)
    assert_exactly_once(km_home, server, sessions["online"]["id"])


# -- crashes in the middle of an upload ------------------------------------------------------------------


def test_sigkill_of_server_and_of_km_sync_mid_upload(km_home: Path, team_server: MakeServer) -> None:
    server = team_server(start=False)
    env = client_env(km_home, server, KM_UPLOAD_BATCH_SIZE="40")
    run_session(env, 3000, "big", payload_bytes=300)
    total = expected_events(3000)
    sid = local_sessions(km_home)["big"]["id"]

    def sync_in_background() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [KM, "sync", "--retries", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    # 1. the server dies (SIGKILL) in the middle of a long km sync
    server.start()
    sync = sync_in_background()
    wait_until(lambda: local_cursor(km_home, server) > 200, what="the upload to start")
    server.kill()
    _, err = sync.communicate(timeout=60)
    assert sync.returncode == 1, err
    assert "cannot reach the team server" in err and "run `km sync` again" in err, err
    done = local_cursor(km_home, server)
    assert 0 < done < total

    # 2. km sync itself dies (SIGKILL) in the middle of the next attempt
    server.start()
    sync = sync_in_background()
    wait_until(lambda: local_cursor(km_home, server) > done + 200, what="the upload to go on")
    os.kill(sync.pid, signal.SIGKILL)
    sync.wait(30)
    assert local_cursor(km_home, server) < total, "make the backlog bigger: the sync finished too soon"

    # 3. one more km sync finishes the job; every event is on the server once
    result = km_run("sync", env=env)
    assert result.returncode == 0, result.stderr
    assert_exactly_once(km_home, server, sid)
    assert server.count(sid) == total


# -- keys ------------------------------------------------------------------------------------------------


def test_bad_revoked_and_read_only_keys_are_clear_errors_and_lose_nothing(
    km_home: Path, team_server: MakeServer
) -> None:
    server = team_server()
    bogus = "km_live_" + "x" * 43
    env = client_env(km_home, server, key=bogus, **FAST)
    session = run_session(env, 12, "alpha")
    err = session.stderr.decode()
    assert err.count("\n") == 1 and "refused the API key" in err and "km sync" in err, err
    assert_key_hidden(bogus, session.stdout, err)

    refused = km_run("sync", env=env)
    assert refused.returncode == 1 and "refused the API key (HTTP 401" in refused.stderr, refused.stderr
    assert "km init --api-key" in refused.stderr and "kept in the local store" in refused.stderr
    assert_key_hidden(bogus, refused.stdout, refused.stderr)
    status = km_ok("status", env=env)
    assert "km_live_xxxx…" in status and f"alpha  {expected_events(12)}" in status
    assert_key_hidden(bogus, status)

    revoked = server.create_key("ingest")
    server.admin("revoke-key", server.key_id(revoked))
    result = km_run("sync", env=client_env(km_home, server, key=revoked))
    assert result.returncode == 1 and "revoked" in result.stderr, result.stderr

    result = km_run("sync", env=client_env(km_home, server, key=server.read_key))
    assert result.returncode == 1 and "HTTP 403" in result.stderr and "ingest" in result.stderr, result.stderr

    sid = local_sessions(km_home)["alpha"]["id"]
    assert server.session(sid) is None  # nothing got in with a wrong key...
    km_ok("sync", env=client_env(km_home, server))  # ...and nothing was lost
    assert_exactly_once(km_home, server, sid)
    # with nothing left to upload, km sync still checks the key (and stores nothing)
    checked = km_run("sync", env=client_env(km_home, server, key=bogus))
    assert checked.returncode == 1 and "refused the API key" in checked.stderr, checked.stderr
    assert "nothing to upload" in km_ok("sync", env=client_env(km_home, server))
    # a wrong URL is not mistaken for a server that is down
    wrong = client_env(km_home, KM_API_URL=server.url + "/typo", KM_API_KEY=server.ingest_key)
    result = km_run("sync", env=wrong)
    assert result.returncode == 1 and "HTTP 404" in result.stderr and "check the API URL" in result.stderr
    assert_exactly_once(km_home, server, sid)


def test_init_configures_forwarding_and_keeps_the_key_private(km_home: Path, team_server: MakeServer) -> None:
    server = team_server()
    out = km_ok(
        "init", "--api-url", server.url + "/", "--api-key", server.ingest_key, env=client_env(km_home)
    )
    assert "forwarded to " + server.url in out
    assert_key_hidden(server.ingest_key, out)
    config = km_home / "config.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert f'api_url = "{server.url}"' in config.read_text()
    env = client_env(km_home, **FAST)  # no KM_API_* variables: the config file alone
    run_session(env, 9, "alpha")
    assert_exactly_once(km_home, server, local_sessions(km_home)["alpha"]["id"])
    status = km_ok("status", env=env)
    assert str(config) in status and server.ingest_key[:12] + "…" in status
    assert_key_hidden(server.ingest_key, status, json.dumps(km_ok("status", "--json", env=env)))


# -- the server pushes back ----------------------------------------------------------------------------------


def test_rate_limit_is_honoured(km_home: Path, team_server: MakeServer) -> None:
    server = team_server(serve_args=("--rate", "2"))  # 2 requests/s, bursts of 4, Retry-After on 429
    env = client_env(km_home, server, KM_UPLOAD_BATCH_SIZE="5")
    run_session(env, 12, "alpha")  # 27 events: 6 requests, so some get 429 and must wait and retry
    result = km_run("sync", env=env)
    assert result.returncode == 0, result.stderr
    assert_exactly_once(km_home, server, local_sessions(km_home)["alpha"]["id"])


def test_body_too_large_splits_batches_and_skips_only_an_oversized_event(
    km_home: Path, team_server: MakeServer
) -> None:
    server = team_server(serve_args=("--rate", "0", "--max-body-mb", "0.03"))  # about 31 KB
    env = client_env(km_home, server)
    offline = client_env(km_home)  # record first, upload with km sync
    run_session(offline, 60, "alpha", payload_bytes=1500)  # 123 events, about 190 KB in one batch of 500
    result = km_run("sync", env=env)
    assert result.returncode == 0, result.stderr
    assert_exactly_once(km_home, server, local_sessions(km_home)["alpha"]["id"])

    # one call far above the limit: its two events are refused (and kept locally), the rest goes through
    for name, session_env in (("huge-sync", offline), ("huge-monitor", env)):
        km = start_monitor(km_home, session_env, name)
        try:
            converse(km, 2)
            km.write(rpc_lines(1, payload_bytes=60_000, first_id=3, initialize=False)[0])
            converse(km, 2, first_id=4, initialize=False)
            code, _, err = km.finish()
        finally:
            km.cleanup()
        assert code == 0
        if session_env is offline:
            result = km_run("sync", env=env)
            assert result.returncode == 1 and "too large" in result.stderr, result.stdout + result.stderr
            assert "2 refused by the server" in result.stdout
        else:  # forwarded by km monitor itself: one line on stderr
            assert err.count(b"\n") == 1 and b"too large for the team server" in err, err
        sid = local_sessions(km_home)[name]["id"]
        remote = {e["id"] for e in server.events(sid)}
        local = {e["id"]: e for e in km_events(km_home, "--session", sid)}
        assert len(local) - len(remote) == 2 and remote < set(local)
        assert all(local[i]["size_bytes"] > 60_000 for i in set(local) - remote)
    assert "refused:      4 events" in km_ok("status", env=env)
    assert "nothing to upload" in km_ok("sync", env=env)


def test_quota_exceeded_stops_and_resumes_when_raised(km_home: Path, team_server: MakeServer) -> None:
    server = team_server(start=False)
    server.admin("set-limits", "--org", "acme", "--events-per-month", "30")
    server.start()
    env = client_env(km_home, server, KM_UPLOAD_BATCH_SIZE="10")
    session = run_session(env, 20, "alpha")  # 43 events
    assert "plan limit" in session.stderr.decode()
    result = km_run("sync", env=env)
    assert result.returncode == 1 and "HTTP 402" in result.stderr and "raise the limit" in result.stderr
    sid = local_sessions(km_home)["alpha"]["id"]
    assert server.count(sid) <= 30
    server.admin("set-limits", "--org", "acme", "--unlimited-events")
    server.kill()
    server.start()  # (the server caches an organization's limits for a few seconds)
    km_ok("sync", env=env)
    assert_exactly_once(km_home, server, sid)


# -- several km processes, one store -------------------------------------------------------------------------


def test_concurrent_monitors_sharing_a_store(km_home: Path, team_server: MakeServer) -> None:
    server = team_server()
    env = client_env(km_home, server, **FAST)
    names = ["one", "two", "three"]
    # the store exists first: km processes racing to create a fresh store is a store concern
    # (kilometers.store.db.open_store), not the uploader's
    km_ok("db", "upgrade", env=env)

    failures: list[BaseException] = []

    def talk(km: KmProcess) -> None:  # six rounds of five calls, a little apart
        try:
            for r in range(6):
                converse(km, 5, first_id=1 + 5 * r, initialize=r == 0)
                time.sleep(0.1)
        except BaseException as exc:
            failures.append(exc)

    kms = [start_monitor(km_home, env, name) for name in names]
    try:
        threads = []
        for km in kms:
            thread = threading.Thread(target=talk, args=(km,))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(120)
        assert not failures, failures
        sessions = local_sessions(km_home)
        ids = [sessions[n]["id"] for n in names]
        # uploaded in the background while all three run
        wait_until(
            lambda: all(server.session(i) and server.count(i) == expected_events(30) for i in ids),
            what="every session's events on the server",
        )
        results = [km.finish() for km in kms]
    finally:
        for km in kms:
            km.cleanup()
    assert all(code == 0 and err == b"" for code, _, err in results), results
    km_ok("sync", env=env)  # final states a lease holder had no time for
    for sid in ids:
        assert_exactly_once(km_home, server, sid)


# -- the proxy never waits on the network -------------------------------------------------------------------


def test_a_hung_server_never_slows_the_proxy_or_its_exit(km_home: Path) -> None:
    """A FAKE team server (a socket that accepts connections and never answers): nothing real hangs
    on purpose, so this one stands in for a network that swallows requests."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = client_env(km_home, KM_API_URL=url, KM_API_KEY="km_live_" + "h" * 43, **FAST)
    try:
        km = start_monitor(km_home, env, "alpha")
        try:
            started = time.monotonic()
            converse(km, 20)
            wait_until(lambda: len(accepted) > 0, what="an upload attempt")
            converse(km, 20, first_id=21, initialize=False)  # answers keep flowing while uploads hang
            answered = time.monotonic() - started
            km.close_stdin()
            closing = time.monotonic()
            code = km.wait(30)
            exit_time = time.monotonic() - closing
        finally:
            km.cleanup()
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()
    assert code == 0
    assert answered < 15, f"answers took {answered:.1f}s"
    assert exit_time < 5, f"km took {exit_time:.1f}s to exit (the final flush is at most 1 s)"
    assert km.stderr.data == b"" and km.stdout.data.count(b"\n") == 41
    # everything is still local, ready for km sync
    assert local_sessions(km_home)["alpha"]["event_count"] == expected_events(40)


def test_no_forwarding_without_url_and_key(km_home: Path) -> None:
    env = client_env(km_home, KM_API_URL=f"http://127.0.0.1:{free_port()}")
    run_session(env, 3, "alpha")
    status = km_ok("status", env=env)
    assert "not forwarding: no API key" in status
    result = km_run("sync", env=env)
    assert result.returncode == 2 and "km init --api-url URL --api-key KEY" in result.stderr
