"""A per-key token bucket (per server process; document the per-process nature in deploy.md)."""

from __future__ import annotations

import threading
import time


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
