"""The host: one per process. It assembles the recording pipeline once and opens sessions on it.

At start-up, before any session exists, the host opens the store once (migrating it once) and
builds the sinks every session shares: the store writer (one engine), the uploader (one thread),
the OpenTelemetry exporter (one tracer and meter provider), the Prometheus exporter (one port)
and the plugins' sinks (loaded once). Each transport then opens its sessions on it::

    host = Host(settings, policy=policy)
    host.start()
    handle = host.open_session(session)      # its own Recorder (capture, security stage, gate)
    handle.submit(direction, chunk, ts_ns)   # from the forwarding path
    handle.close(exit_code)                  # drains the session and ends it in every sink
    host.close()                             # ends the sessions still open, then closes the sinks

A session's hooks (``on_session_start``, ``on_events``, ...) run on its own recorder thread, so a
shared sink is called from several threads at once and keeps its per-session state by session
id. ``close`` is called once, by the host, after every session has ended. As the store is
opened at start-up by this one object, no two threads of a process ever migrate it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import Settings
from .frames import (
    DIRECTIONS,
    KIND_MSG_C2S,
    KIND_OMITTED,
    KIND_S2C,
    KIND_SESSION,
    SESSION_DETAILS,
    unpack_message,
)
from .model import Direction, Session
from .recorder import BATCH_WINDOW, Recorder
from .sinks import Sink

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .jsonrpc import Filters
    from .security import Gate, Policy
    from .store.writer import StoreSink


class SessionHandle:
    """One recording session opened on a :class:`Host`: what a transport calls."""

    def __init__(self, recorder: Recorder, gate: Gate | None = None, host: Host | None = None) -> None:
        self.recorder = recorder
        self.gate = gate
        """The blocking policy's gate (block mode only), wired to this session's recorder."""
        self._host = host
        self._started = False
        # the recorder's own methods: no extra call on the forwarding path
        self.submit: Callable[[Direction, bytes, int], None] = recorder.submit
        """A chunk of a byte stream (stdio), as read."""
        self.submit_message: Callable[..., None] = recorder.submit_message
        """One already-framed message (HTTP transports)."""
        self.submit_omitted: Callable[[Direction, int, int], None] = recorder.submit_omitted
        """A message too large to decode and keep (it was forwarded): recorded as a marker."""
        self.barrier: Callable[..., bool] = recorder.barrier
        self.release: Callable[[], None] = recorder.release
        """The session is idle: the sinks let go of what they can reopen (database connections)."""
        self.backlog: Callable[[], int] = recorder.backlog

    def submit_frame(self, kind: int, data: bytes, ts_ns: int) -> None:
        """A frame of traffic handed over by another process (a relay to the agent, km to its
        recorder process): a chunk, a whole message, an omitted one or new details of the session
        (see frames.py)."""
        if kind <= KIND_S2C:
            self.submit(DIRECTIONS[kind], data, ts_ns)
        elif kind == KIND_OMITTED:
            direction, size = data.split(b" ", 1)
            self.submit_omitted(DIRECTIONS[int(direction)], int(size), ts_ns)
        elif kind == KIND_SESSION:
            import json

            details = json.loads(data)
            self.update_session(**{k: v for k, v in details.items() if k in SESSION_DETAILS})
        else:
            message, headers = unpack_message(data)
            self.submit_message(DIRECTIONS[kind - KIND_MSG_C2S], message, ts_ns, headers)

    @property
    def session(self) -> Session:
        return self.recorder.session

    def tools_changed(self) -> frozenset[str]:
        """The tools changed since pinned, once what was submitted so far has been processed
        (the gate asks before it lets a call through)."""
        self.recorder.barrier()
        return self.tools_changed_now()

    def tools_changed_now(self) -> frozenset[str]:
        """The same as of now (the agent asks on the recorder thread, after a checkpoint)."""
        from .security import SecurityStage

        stage = self.recorder.stage
        return stage.tools_changed() if isinstance(stage, SecurityStage) else frozenset()

    def update_session(self, **details: object) -> None:
        """The transport changed the session's details (the bridge's ``transport``): the sinks get
        an ``on_session_update`` with the next batch."""
        session = self.recorder.session
        changed = False
        for name, value in details.items():
            if getattr(session, name) != value:
                setattr(session, name, value)
                changed = True
        if changed:
            self.recorder.capture.session_changed = True

    def start(self) -> None:
        """Start the session's recorder thread (its sinks see ``on_session_start``)."""
        if not self._started:
            self._started = True
            self.recorder.start()

    def close(self, exit_code: int | None, timeout: float | None = None) -> None:
        """Drain what was submitted, end the session in every sink (they stay open for the others).
        A session never started is not recorded (its server could not be started)."""
        if self._started:
            self.recorder.stop(exit_code, timeout)
        if self._host is not None:
            self._host._ended(self)


def unrecorded(session: Session, filters: Filters | None = None) -> SessionHandle:
    """A session that goes through capture but reaches no sink (recording failed or is off)."""
    from .jsonrpc import Capture

    handle = SessionHandle(Recorder(Capture(session, filters), []))
    handle.start()
    return handle


class Host:
    """The process's recording pipeline: the store, the shared sinks, and the sessions opened on it."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy: Policy | None = None,
        metrics_port: int | None = None,
        server_side: bool = False,
        batch_window: float = BATCH_WINDOW,
    ) -> None:
        """``policy``: loaded from the settings when not given (see pipeline.load_policy);
        ``server_side``: km answers the client in the server's place (km proxy): its sessions
        are marked so (``Session.server_side``)."""
        self.settings = settings
        self.policy = policy
        self.metrics_port = metrics_port
        self.server_side = server_side
        self.batch_window = batch_window
        self.sinks: list[Sink] = []
        """Shared by every session, in order: the store first, so that everything after it (the
        uploader above all) works from what was committed."""
        self.store: StoreSink | None = None
        self.store_error: Exception | None = None
        """Why the store could not be opened at start-up (its sink retries on the next batch)."""
        self._sessions: set[SessionHandle] = set()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    # -- start-up ------------------------------------------------------------------------------------

    def start(self) -> Host:
        """Open (and migrate) the store and build the shared sinks; call once, before any session."""
        if self._started:
            return self
        self._started = True
        settings = self.settings
        if settings.analysis:
            if self.policy is None:
                from .pipeline import load_policy

                self.policy = load_policy(settings)
        else:
            _log.warning("km: security analysis and redaction are off (analysis = false)")
        from .store.writer import StoreSink

        self.store = StoreSink(settings.db_url)
        try:
            self.store.open()
        except Exception as exc:  # reported by the caller or by the sink; traffic goes on
            self.store_error = exc
        self.sinks = [self.store, *self._exporters()]
        return self

    def _exporters(self) -> list[Sink]:
        settings = self.settings
        sinks: list[Sink] = []
        if settings.api_url and settings.api_key:
            from .sync.sink import UploaderSink

            assert self.store is not None
            sinks.append(
                UploaderSink(
                    settings.api_url,
                    settings.api_key,
                    db_url=settings.db_url,
                    batch_size=settings.upload_batch_size,
                    interval=settings.upload_interval,
                    open_store=self.store.open,
                )
            )
        if settings.otel:
            try:
                from .export.otel import OtelSink

                sinks.append(
                    OtelSink(
                        payloads=settings.otel_payloads,
                        legacy_names=settings.otel_legacy_names,
                    )
                )
            except Exception as exc:  # a bad OTEL_* setting must not keep the server from starting
                _log.warning(f"km: OpenTelemetry export is off: {exc}")
        if self.metrics_port is not None:
            try:
                from .export.prometheus import MetricsSink

                sinks.append(MetricsSink(self.metrics_port, backlog=self.backlog))
            except OSError as exc:
                _log.warning(f"km: cannot serve metrics on port {self.metrics_port}: {exc}")
        from .plugins import plugin_sinks

        sinks.extend(plugin_sinks(settings))
        return sinks

    # -- sessions ------------------------------------------------------------------------------------

    def open_session(
        self,
        session: Session,
        *,
        filters: Filters | None = None,
        start: bool = True,
        settings: Settings | None = None,
    ) -> SessionHandle:
        """A new session on the shared sinks, with its own capture, security stage and (block mode)
        gate. ``filters``: the settings' when not given; ``start=False``: the caller starts it
        (once the session's details, such as the server's pid, are known); ``settings``: the
        session's own (its filters, payload limit; the agent's sessions come with theirs), else
        the host's."""
        from .jsonrpc import Capture, Filters

        if not self._started:
            self.start()
        if self._closed:
            raise RuntimeError("the host is closed")
        settings = settings or self.settings
        if self.server_side:
            session.server_side = True
        if filters is None:
            filters = Filters(settings.exclude_ping, settings.include_methods, settings.exclude_methods)
        # the payload limit applies after redaction (recorder)
        capture = Capture(session, filters, keep_request_state=settings.keep_request_state)
        stage = None
        if settings.analysis:
            from .security import SecurityStage

            assert self.policy is not None
            stage = SecurityStage(self.policy, settings.db_url)
            stage.redact_session(session)  # before any sink writes it: `--token ghp_…` never lands
        recorder = Recorder(
            capture,
            self.sinks,
            batch_window=self.batch_window,
            stage=stage,
            payload_limit=settings.payload_limit,
        )
        recorder.closes_sinks = False  # the host closes them, once, after every session
        handle = SessionHandle(recorder, None, self)
        if stage is not None and self.policy is not None and self.policy.mode == "block":
            from .security import Gate

            handle.gate = Gate(self.policy, handle.tools_changed, session.name or "server")
        with self._lock:
            self._sessions.add(handle)
        if start:
            handle.start()
        return handle

    def _ended(self, handle: SessionHandle) -> None:
        with self._lock:
            self._sessions.discard(handle)

    @property
    def sessions(self) -> list[SessionHandle]:
        """The sessions open now."""
        with self._lock:
            return list(self._sessions)

    def backlog(self) -> int:
        """Chunks waiting for the sessions' recorder threads (approximate)."""
        return sum(handle.backlog() for handle in self.sessions)

    # -- the end -------------------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """End every session still open (each drains what it was given), then close the shared
        sinks once, the last one first (the uploader reads what the store committed)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for handle in self.sessions:
            handle.close(None, timeout)
        for sink in reversed(self.sinks):
            try:
                sink.close()
            except Exception as exc:
                _log.warning(f"km: the {sink.name} sink failed to close ({exc!r})")

    def __enter__(self) -> Host:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()
