"""Rate limits: a per-key token bucket, in memory (:class:`RateLimiter`, one process) or in the
database (:class:`SharedRateLimiter`, shared by every `km serve` process on it), and growing
delays after failed sign-ins (:class:`LoginThrottle`, per process)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, text


class RateLimiter:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait before the next request will be."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


_TAKE = """
INSERT INTO rate_buckets (key, tokens, updated) VALUES (:key, :burst - 1, {now})
ON CONFLICT (key) DO UPDATE SET
    tokens = {least}(:burst, rate_buckets.tokens
                     + {greatest}(0, excluded.updated - rate_buckets.updated) * :rate) - 1,
    updated = {greatest}(excluded.updated, rate_buckets.updated)
WHERE {least}(:burst, rate_buckets.tokens
              + {greatest}(0, excluded.updated - rate_buckets.updated) * :rate) >= 1
RETURNING tokens
"""
_LEFT = """
SELECT {least}(:burst, tokens + {greatest}(0, {now} - updated) * :rate) FROM rate_buckets
WHERE key = :key
"""


class SharedRateLimiter:
    """The token bucket of :class:`RateLimiter`, kept in the ``rate_buckets`` table so that all
    server processes on one database draw from the same bucket: N processes allow exactly
    ``rate`` requests per second per key (and ``burst`` at once), not N times as many.

    One statement per request: an upsert that refills the bucket for the time elapsed and takes
    a token only when one is left (``ON CONFLICT ... DO UPDATE ... WHERE``). The row lock it
    takes makes concurrent requests for the same key count one after the other. On PostgreSQL
    the time is the database's clock, so hosts whose clocks differ still share one bucket."""

    def __init__(self, engine: Engine, rate: float, burst: float) -> None:
        self.engine = engine
        self.rate = rate
        self.burst = burst
        postgres = engine.dialect.name == "postgresql"
        now = "extract(epoch from clock_timestamp())::float8" if postgres else ":now"
        names = (
            {"least": "least", "greatest": "greatest"} if postgres else {"least": "min", "greatest": "max"}
        )
        self._take = text(_TAKE.format(now=now, **names))
        self._left = text(_LEFT.format(now=now, **names))

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait before the next request will be."""
        if self.rate <= 0:
            return 0.0
        params = {"key": key, "rate": self.rate, "burst": self.burst, "now": time.time()}
        with self.engine.begin() as conn:
            if conn.execute(self._take, params).first() is not None:
                return 0.0
            left = conn.execute(self._left, params).scalar()
        return max(0.0, 1 - float(left or 0.0)) / self.rate or 1 / self.rate


class LoginThrottle:
    """Growing delays after failed sign-ins, per account and per client address (per server
    process, like :class:`RateLimiter`).

    The first ``free`` failures cost nothing; each later one doubles the wait before the next
    attempt, up to ``max_delay`` seconds, so an attacker cannot lock a real user out for long.
    An address a user has signed in from is known-good for that account: there, only that pair's
    own failures count, so someone guessing the user's password elsewhere, or others failing
    behind the same address, do not keep the user out. A successful sign-in clears the
    account's, the address's and the pair's failures. Failures are forgotten after ``forget``
    seconds without one."""

    def __init__(self, free: int = 5, max_delay: float = 60.0, forget: float = 900.0) -> None:
        self.free = free
        self.max_delay = max_delay
        self.forget = forget
        self._failures: dict[str, tuple[int, float]] = {}
        """key -> (failures, time of the last one)"""
        self._known: dict[str, set[str]] = {}
        """account -> addresses that signed in to it"""
        self._lock = threading.Lock()

    def _delay(self, failures: int) -> float:
        return 0.0 if failures < self.free else min(self.max_delay, 2.0 ** (failures - self.free))

    def _wait(self, key: str, now: float) -> float:
        failures, last = self._failures.get(key, (0, now))
        if now - last > self.forget:
            self._failures.pop(key, None)
            return 0.0
        return max(0.0, last + self._delay(failures) - now)

    @staticmethod
    def _keys(account: str, address: str) -> tuple[str, str, str]:
        return f"addr:{address}", f"acct:{account}", f"pair:{account}\x00{address}"

    def wait(self, account: str, address: str) -> float:
        """0 when a sign-in may be tried now, else the seconds to wait."""
        addr, acct, pair = self._keys(account, address)
        now = time.monotonic()
        with self._lock:
            if address in self._known.get(account, ()):
                return self._wait(pair, now)
            return max(self._wait(addr, now), self._wait(acct, now))

    def failed(self, account: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 100_000:  # bounded memory under a spray of names
                self._failures = {k: v for k, v in self._failures.items() if now - v[1] <= self.forget}
            for key in self._keys(account, address):
                failures, last = self._failures.get(key, (0, now))
                self._failures[key] = (0 if now - last > self.forget else failures) + 1, now

    def succeeded(self, account: str, address: str) -> None:
        with self._lock:
            for key in self._keys(account, address):
                self._failures.pop(key, None)
            known = self._known.setdefault(account, set())
            if len(known) < 100:
                known.add(address)
