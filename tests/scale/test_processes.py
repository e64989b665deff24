"""Several `km serve` processes on one PostgreSQL act as one (issue "Past one machine", item 2):
a key revoked or a member removed through one process is refused by every other within 1 s,
the rate limit and the monthly quota are exact across processes under concurrent load, a live
stream ends on every process when its credential does, and an OpenID Connect sign-in started on
one process completes on another."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import Engine, func, select, update

from kilometers.server import accounts, tenancy
from kilometers.server.ratelimit import SharedRateLimiter
from kilometers.server.retention import apply_retention
from kilometers.store import db
from kilometers.store.schema import events, org_usage, rate_buckets

from factory import bearer, session_batch
from km_helpers import free_port, km_serve, oidc_provider, wait_until
from pg import Cluster

KM = str(Path(sys.executable).parent / "km")
_names = itertools.count()
CONTRACT_SECONDS = 1.0
"""A revoked key or removed member is refused by every process within this long."""


@contextlib.contextmanager
def database(pg_cluster: Cluster) -> Iterator[tuple[str, Engine]]:
    url = pg_cluster.create_database(f"km_scale_{os.getpid()}_{next(_names)}")
    engine = db.open_store(url)
    try:
        yield url, engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def km_serve_with(url: str, *args: str) -> Iterator[str]:
    """A real ``km serve`` on ``url`` with extra flags; yields its base URL once /health answers."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([KM, "serve", "--db", url, "--port", str(port), *args])
    try:
        wait_until(lambda: proc.poll() is None and _healthy(base), 30)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def _healthy(base: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(base + "/health", timeout=1).status_code == 200
    return False


@contextlib.contextmanager
def servers(url: str, n: int, *args: str) -> Iterator[list[str]]:
    """``n`` real `km serve` processes on ``url``, each with the flags ``args``."""
    with ExitStack() as stack:
        yield [stack.enter_context(km_serve_with(url, *args)) for _ in range(n)]


def refused_everywhere_within(
    bases: list[str], path: str, headers: dict[str, str], status: int, since: float
) -> dict[str, float]:
    """Poll every process until each answers ``status``, for at most the 1 s contract after
    ``since``; returns how long each took (seconds)."""
    took: dict[str, float] = {}
    while len(took) < len(bases):
        for base in bases:
            if base not in took and httpx.get(base + path, headers=headers).status_code == status:
                took[base] = time.monotonic() - since
        if time.monotonic() - since > CONTRACT_SECONDS:
            break
    missing = [b for b in bases if b not in took]
    assert not missing, f"still accepted after {CONTRACT_SECONDS} s by {missing}"
    return took


def test_a_revoked_key_is_refused_by_every_process_within_a_second(pg_cluster: Cluster) -> None:
    with database(pg_cluster) as (url, engine), servers(url, 3) as bases:
        org = tenancy.create_org(engine, "acme", "unlimited")
        admin = tenancy.create_key(engine, org, "admin")
        read = tenancy.create_key(engine, org, "read")
        key_id = tenancy.authenticate(engine, read).id  # type: ignore[union-attr]
        for base in bases:  # every process has the key's lookup cached
            assert httpx.get(base + "/api/v1/sessions", headers=bearer(read)).status_code == 200
        r = httpx.delete(f"{bases[0]}/api/v1/keys/{key_id}", headers=bearer(admin))
        assert r.status_code == 204, r.text
        took = refused_everywhere_within(bases[1:], "/api/v1/sessions", bearer(read), 401, time.monotonic())
        print("revoked key refused after", {b: f"{t * 1000:.0f} ms" for b, t in took.items()})
        # revoked outside any server process (`km admin revoke-key`, SQL): the same
        other = tenancy.create_key(engine, org, "read")
        for base in bases:
            assert httpx.get(base + "/api/v1/sessions", headers=bearer(other)).status_code == 200
        tenancy.revoke_key(engine, tenancy.authenticate(engine, other).id)  # type: ignore[union-attr]
        refused_everywhere_within(bases, "/api/v1/sessions", bearer(other), 401, time.monotonic())


def test_a_removed_members_keys_are_refused_by_every_process_within_a_second(
    pg_cluster: Cluster,
) -> None:
    with database(pg_cluster) as (url, engine), servers(url, 3) as bases:
        org = tenancy.create_org(engine, "acme", "unlimited")
        admin = tenancy.create_key(engine, org, "admin")
        dev = accounts.create_user(engine, "dev@example.com", "correct horse")
        accounts.set_member(engine, org, dev, "member")
        key = tenancy.create_key(engine, org, "read", created_by=dev.id)
        for base in bases:
            assert httpx.get(base + "/api/v1/sessions", headers=bearer(key)).status_code == 200
        r = httpx.delete(f"{bases[0]}/api/v1/members/{dev.id}", headers=bearer(admin))
        assert r.status_code == 204, r.text
        refused_everywhere_within(bases[1:], "/api/v1/sessions", bearer(key), 403, time.monotonic())


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_rate_limit_is_shared_by_every_process(
    dialect: str, pg_cluster: Cluster, tmp_path: os.PathLike[str]
) -> None:
    """--rate 1 (burst 2) with three processes: hammered concurrently, together they allow what
    one bucket allows (2 at once, then 1 per second), not three times as much."""
    with contextlib.ExitStack() as stack:
        if dialect == "sqlite":
            url = f"sqlite:///{tmp_path}/server.db"
            engine = db.open_store(url)
            stack.callback(engine.dispose)
        else:
            url, engine = stack.enter_context(database(pg_cluster))
        org = tenancy.create_org(engine, "acme", "unlimited")
        read = tenancy.create_key(engine, org, "read")
        bases = stack.enter_context(servers(url, 3, "--rate", "1"))

        def call(i: int) -> int:
            return httpx.get(bases[i % 3] + "/api/v1/org", headers=bearer(read), timeout=30).status_code

        started = time.monotonic()
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(call, range(60)))
        elapsed = time.monotonic() - started
        allowed = codes.count(200)
        assert set(codes) <= {200, 429}, codes
        # one bucket: 2 at once plus 1 per second elapsed; per process it would be at least 6
        assert 2 <= allowed <= 2 + int(elapsed) + 1, (allowed, elapsed)
        r = httpx.get(bases[0] + "/api/v1/org", headers=bearer(read))
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1


def test_the_monthly_quota_is_exact_across_processes(pg_cluster: Cluster) -> None:
    """A limit of 10 batches' worth of events, 24 batches sent at once through three processes:
    exactly 10 are stored, the others refused whole with 402."""
    with database(pg_cluster) as (url, engine), servers(url, 3) as bases:
        org = tenancy.create_org(engine, "acme", "unlimited")
        per_batch = 50
        org = tenancy.set_limits(engine, org, 10 * per_batch, None)
        ingest = tenancy.create_key(engine, org, "ingest")
        batches = []
        for _ in range(24):
            session, evs = session_batch(per_batch // 2 - 1)
            assert len(evs) == per_batch
            batches.append({"session": session, "events": evs})
        gate = threading.Barrier(12)

        def send(i: int) -> int:
            with httpx.Client(timeout=60) as client:
                if i < 12:
                    gate.wait()
                r = client.post(
                    bases[i % 3] + "/api/v1/events/batch", json=batches[i], headers=bearer(ingest)
                )
                return r.status_code

        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(send, range(24)))
        assert sorted(set(codes)) == [200, 402], codes
        assert codes.count(200) == 10, codes
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(events).where(events.c.org_id == org.id))
            used = conn.execute(select(org_usage.c.events).where(org_usage.c.org_id == org.id))
            assert stored.scalar() == used.scalar() == 10 * per_batch


class Stream:
    """An SSE stream read on a thread: the event kinds it received, and when it ended."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.kinds: list[str] = []
        self.connected = threading.Event()
        self.ended = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(5, read=None))
        threading.Thread(target=self._read, args=(url, headers), daemon=True).start()
        assert self.connected.wait(10), "the stream did not open"

    def _read(self, url: str, headers: dict[str, str]) -> None:
        with (
            contextlib.suppress(httpx.HTTPError, RuntimeError),
            self.client.stream("GET", url, headers=headers) as r,
        ):
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("event: "):
                    self.kinds.append(line[7:])
        self.ended.set()


def test_streams_end_on_every_process_within_a_second(pg_cluster: Cluster) -> None:
    """Streams of one key open on two processes, events ingested through a third reach both;
    the key revoked through the third ends both streams (``event: revoked``) within 1 s."""
    with database(pg_cluster) as (url, engine), servers(url, 3) as bases:
        org = tenancy.create_org(engine, "acme", "unlimited")
        admin = tenancy.create_key(engine, org, "admin")
        read = tenancy.create_key(engine, org, "read")
        streams = [Stream(base + "/api/v1/live", bearer(read)) for base in bases[:2]]
        session, evs = session_batch(1)
        r = httpx.post(
            bases[2] + "/api/v1/events/batch", json={"session": session, "events": evs}, headers=bearer(admin)
        )
        assert r.json()["accepted"] == len(evs)
        wait_until(
            lambda: all(s.kinds.count("event") == len(evs) for s in streams),
            10,
            "both streams to receive every event",
            seen=lambda: f"{len(evs)} events sent; the streams received {[s.kinds for s in streams]}",
        )
        key_id = tenancy.authenticate(engine, read).id  # type: ignore[union-attr]
        assert httpx.delete(f"{bases[2]}/api/v1/keys/{key_id}", headers=bearer(admin)).status_code == 204
        revoked = time.monotonic()
        for s in streams:
            assert s.ended.wait(max(0.0, revoked + CONTRACT_SECONDS - time.monotonic())), s.kinds
            assert s.kinds[-1] == "revoked", s.kinds
            s.client.close()


# -- OpenID Connect: the callback lands on another process --------------------------------------

CLIENT_ID, CLIENT_SECRET = "kilometers", "a-long-client-secret-for-the-scale-tests"


def _at_provider(start: str, login: str, back: str) -> str:
    """Sign in at the provider (login form, consent form); the URL it sends the browser back to."""
    url = start
    with httpx.Client(timeout=10) as browser:
        for _ in range(20):
            if url.startswith(back):
                return url
            response = browser.get(url)
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                continue
            action = re.search(r'<form[^>]*action="([^"]+)"', response.text)
            prompt = re.search(r'name="prompt" value="(\w+)"', response.text)
            assert action and prompt, response.text
            form = {"prompt": prompt[1]}
            if prompt[1] == "login":
                form.update(login=login, password="any password")
            response = browser.post(urljoin(url, action[1]), data=form)
            assert response.is_redirect, response.text
            url = urljoin(url, response.headers["location"])
    raise AssertionError("the provider never sent the browser back")


def test_oidc_sign_in_completes_on_another_process(pg_cluster: Cluster) -> None:
    first_port, second_port = free_port(), free_port()
    callback = f"http://127.0.0.1:{second_port}/auth/oidc/callback"
    claims = {"ann": {"email": "ann@example.com", "email_verified": True, "name": "Ann"}}
    with (
        oidc_provider(CLIENT_ID, CLIENT_SECRET, callback, claims) as issuer,
        database(pg_cluster) as (url, engine),
    ):
        org = tenancy.create_org(engine, "acme", "unlimited")
        accounts.set_member(engine, org, accounts.create_user(engine, "ann@example.com", None), "viewer")
        env = {
            **os.environ,
            "KM_OIDC_ISSUER": issuer,
            "KM_OIDC_CLIENT_ID": CLIENT_ID,
            "KM_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "KM_OIDC_REDIRECT_URI": callback,
        }
        with (
            km_serve(url, env=env, port=first_port) as first,
            km_serve(url, env=env, port=second_port) as second,
            httpx.Client(timeout=10, follow_redirects=False) as browser,
        ):
            r = browser.get(first + "/auth/oidc/login")  # the flow starts on the first process
            assert r.status_code == 303, r.text
            back = _at_provider(r.headers["location"], "ann", second)
            r = browser.get(back)  # ... and the provider sends the browser to the second
            assert r.status_code == 303 and r.headers["location"] == "/", r.headers.get("location")
            for base in (first, second):  # one session, valid on every process
                me = browser.get(base + "/auth/me")
                assert me.status_code == 200 and me.json()["user"]["email"] == "ann@example.com", me.text
            assert urlsplit(back).port == second_port
            assert json.loads(browser.get(second + "/auth/me").text)["org"]["name"] == "acme"


def test_idle_rate_buckets_are_removed_by_retention(tmp_path: Path) -> None:
    engine = db.open_store(f"sqlite:///{tmp_path}/server.db")
    limiter = SharedRateLimiter(engine, rate=0.001, burst=2)
    assert limiter.take("busy") == 0 and limiter.take("idle") == 0
    assert limiter.take("busy") == 0 and limiter.take("busy") > 0  # the third waits (1 token per 1,000 s)
    with engine.begin() as conn:
        conn.execute(
            update(rate_buckets).where(rate_buckets.c.key == "idle").values(updated=time.time() - 7200)
        )
    apply_retention(engine)
    with engine.connect() as conn:
        assert conn.execute(select(rate_buckets.c.key)).scalars().all() == ["busy"]
    engine.dispose()
