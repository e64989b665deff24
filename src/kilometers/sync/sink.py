"""The uploader sink: forwards what the store sink committed to a team server, on its own thread.

Its hooks only count and signal, so neither the recorder thread nor the proxy ever waits on the
network. The thread uploads every ``interval`` seconds (at once when ``batch_size`` events are
waiting), backs off exponentially with jitter on failures, honours ``Retry-After`` and pauses for a long
while on 402. At session end it makes a short best-effort flush (at most ``final_flush`` seconds);
whatever remains stays in the local store for the next km run or ``km sync``.

One UploaderSink (one thread) serves every session of a process (kilometers.host): each
session's end asks the thread for a short final flush and waits for it; the thread stops, and
gives up its lease, when the host closes the sink.

Nothing is written to stdout (it belongs to the MCP client); problems are one line on stderr, at most
once per kind. ``httpx`` is imported on the thread so that ``km monitor`` starts as fast without it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..log import once
from ..model import Event, Session
from ..sinks import Sink

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .uploader import Uploader

QUOTA_PAUSE = 15 * 60.0
"""Seconds without uploads after a 402 (unless the server says otherwise with Retry-After)."""
REJECTED_PAUSE = 5 * 60.0
MAX_BACKOFF = 300.0
LEASE_SECONDS = 60.0
FULL_PASS_EVERY = 30.0
"""Seconds between looks for ended sessions whose final state is unsent, when no event is pending."""


class UploaderSink(Sink):
    name = "uploader"

    def __init__(
        self,
        api_url: str,
        api_key: str,
        db_url: str | None = None,
        batch_size: int = 500,
        interval: float = 2.0,
        final_flush: float = 1.0,
        open_store: Callable[[], Engine] | None = None,
    ) -> None:
        """``open_store``: the engine of the process's store (the host's store sink), shared
        rather than opened by this sink (it then leaves it open when it stops)."""
        self.api_url = api_url.rstrip("/")
        self._api_key = api_key
        self.db_url = db_url
        self.batch_size = max(1, batch_size)
        self.interval = interval
        self.final_flush = final_flush
        self._open_store = open_store
        self._pending = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flush_wanted = 0
        """Final flushes asked for by ended sessions (a ticket each)..."""
        self._flush_done = 0
        """... and the tickets served: at most ``final_flush`` seconds each."""
        self._flushed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0
        self._failures = 0
        self._disabled = False
        self._engine: Engine | None = None
        self._uploader: Uploader | None = None
        self._owner = ""
        self._final_deadline = 0.0
        self._next_full_pass = 0.0
        self.uploaded = 0
        """Events acknowledged by the server through this sink (for tests and diagnostics)."""

    def __repr__(self) -> str:
        return f"UploaderSink({self.api_url!r})"

    # -- hooks (recorder thread): count and signal only ------------------------------------------------

    def on_session_start(self, session: Session) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="km-uploader", daemon=True)
                self._thread.start()

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        with self._lock:
            self._pending += len(events)
            wake = self._pending >= self.batch_size
        if wake:
            self._wake.set()

    def on_session_end(self, session: Session) -> None:
        """The store sink (registered before this one) has committed the final state: flush briefly."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                return
            self._flush_wanted += 1
            ticket = self._flush_wanted
            self._final_deadline = time.monotonic() + self.final_flush
            self._wake.set()
            self._flushed.wait_for(lambda: self._flush_done >= ticket, self.final_flush + 0.05)

    def close(self) -> None:
        """Stop the thread (it gives up its lease first); called once, after every session ended."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(self.final_flush + 0.05)

    # -- the uploader thread ----------------------------------------------------------------------------

    def _warn(self, kind: str, message: str) -> None:
        _log.warning(f"km: {message}", extra=once(f"upload:{self.api_url}:{kind}"))

    def _final_wanted(self) -> bool:
        return self._flush_wanted > self._flush_done

    def _run(self) -> None:
        try:
            first = True
            while not self._stop.is_set():
                if not first and not self._final_wanted():
                    self._wake.wait(self._sleep_time())
                    self._wake.clear()
                first = False
                if self._stop.is_set():
                    break
                if self._final_wanted():
                    with self._lock:
                        ticket, deadline = self._flush_wanted, self._final_deadline
                    self._pass(deadline=deadline)
                    with self._lock:
                        self._flush_done = ticket
                        self._flushed.notify_all()
                    continue
                if time.monotonic() < self._retry_at or self._disabled:
                    continue  # backing off: an early wake-up does not count
                self._pass(deadline=None)
        except Exception as exc:  # never let the thread die with a traceback on the client's stderr
            self._warn("crash", f"uploads to {self.api_url} stopped ({exc!r}); run `km sync` later")
        finally:
            self._finish()

    def _sleep_time(self) -> float:
        if self._disabled:
            return 3600.0
        return max(0.0, self._retry_at - time.monotonic()) or self.interval

    def _ready(self) -> Uploader | None:
        if self._uploader is not None:
            return self._uploader
        from ..store import db
        from .state import lease_owner
        from .uploader import Uploader

        try:
            self._engine = self._open_store() if self._open_store is not None else db.open_store(self.db_url)
        except Exception as exc:
            self._warn("store", f"the uploader cannot open the local store ({exc}); will retry")
            self._schedule_retry(None)
            return None
        self._uploader = Uploader(self._engine, self.api_url, self._api_key, self.batch_size)
        self._owner = lease_owner()
        return self._uploader

    def _schedule_retry(self, retry_after: float | None) -> None:
        from .client import backoff_delay

        self._failures += 1
        delay = retry_after if retry_after is not None else backoff_delay(self._failures, cap=MAX_BACKOFF)
        self._retry_at = time.monotonic() + delay

    def _pass(self, deadline: float | None) -> None:
        """Upload until nothing is pending (or the deadline passes, or the server says stop).

        The final flush (with a deadline) does not wait for the lease: whichever process holds it
        may be busy, and sending the same events twice is harmless."""
        from .client import AuthError, QuotaExceeded, Rejected, TransientError

        if self._disabled:
            return
        uploader = self._ready()
        if uploader is None:
            return
        lease = max(LEASE_SECONDS, 5 * self.interval)
        try:
            final_states = deadline is not None or time.monotonic() >= self._next_full_pass
            if not final_states and not uploader.has_pending_events():
                return  # idle: no write to the store, no request
            if not uploader.acquire_lease(self._owner, lease) and deadline is None:
                return  # another km process sharing this store uploads it, ours included
            if final_states:
                self._next_full_pass = time.monotonic() + FULL_PASS_EVERY
            self._pending = 0
            while not self._stop.is_set():
                if deadline is None and self._final_wanted():
                    return  # a session ended: the final flush takes over, within its deadline
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0.02:
                    return
                result = uploader.upload_once(timeout=timeout, final_states=final_states)
                self.uploaded += result.events
                self._failures = 0
                self._retry_at = 0.0
                if result.rejected and result.messages:
                    self._warn(
                        "event_rejected",
                        f"{result.messages[0]} (further refusals are counted in `km status`)",
                    )
                if not result.more:
                    return
                if deadline is None:
                    uploader.acquire_lease(self._owner, lease)
        except AuthError as exc:
            self._disabled = True
            self._release()  # another km process may have a key that works
            self._warn(
                "auth",
                f"{exc}. Events are kept locally; set a valid key with "
                "`km init --api-key KEY` (or KM_API_KEY), then run `km sync`.",
            )
        except QuotaExceeded as exc:
            pause = max(exc.retry_after or 0.0, QUOTA_PAUSE)
            self._retry_at = time.monotonic() + pause
            self._warn(
                "quota",
                f"{exc}. Events are kept locally; uploads pause for {math.ceil(pause / 60)} min "
                "(`km sync` uploads them once the limit is raised).",
            )
        except TransientError as exc:
            self._schedule_retry(exc.retry_after)
            # not worth a line: being asked to slow down, or the final flush's own short deadline
            if exc.kind != "rate_limited" and not (deadline is not None and exc.kind == "timeout"):
                self._warn(
                    "unreachable",
                    f"{exc}; events are kept locally and uploaded when it is back (or run `km sync`).",
                )
        except Rejected as exc:
            self._retry_at = time.monotonic() + REJECTED_PAUSE
            self._warn("rejected", f"{exc}; events are kept locally.")
        except Exception as exc:  # the local store (locked, full disk...): retry later
            self._schedule_retry(None)
            self._warn("store", f"the uploader cannot read the local store ({exc}); will retry")

    def _release(self) -> None:
        if self._uploader is not None and self._owner:
            with contextlib.suppress(Exception):  # else it expires on its own
                self._uploader.release_lease(self._owner)
            self._owner = ""

    def _finish(self) -> None:
        self._release()
        with self._lock:
            self._flush_done = self._flush_wanted  # nobody waits on a thread that has stopped
            self._flushed.notify_all()
        uploader, self._uploader = self._uploader, None
        if uploader is not None:
            uploader.close()
        if self._engine is not None and self._open_store is None:
            self._engine.dispose()
