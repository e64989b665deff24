"""The recorder in a child process, for stdio sessions: km's own process only forwards bytes.

A recorder thread in km's process competes with the forwarding threads for the GIL: parsing,
analysis and SQLite writes cost ~100 µs of Python per call, and every forwarded chunk then waits
for the interpreter. Here :meth:`RecorderProcess.submit` appends the chunk to a deque (as
cheap as the in-process queue), one feeder thread writes the chunks as frames to a child
``python -m kilometers.recorder_process``, and the child runs the ordinary
:class:`~kilometers.host.Host` (the store, the sinks) with the session's :class:`Recorder`
(capture, security stage) on its own interpreter and core.

- Order is kept: both forwarding threads append to one deque, so a request is always recorded
  before its answer.
- Nothing is lost: the deque is unbounded and the feeder blocks on the pipe (never the
  forwarding threads). When km ends, the child drains everything before km exits.
- The child never writes to km's stdout (its stdout is km's stderr) and ignores SIGINT,
  SIGTERM and SIGHUP (km forwards those to the server); when km dies, the child sees the end
  of its pipe, records what it has, counts what km had not handed over yet as dropped, and
  ends the session.
- That count (POSIX): ``submit`` keeps, per direction, the number of newlines (messages) it
  was given in a small file both processes map (:class:`~kilometers.frames.SubmittedLines`);
  the child compares it with what it received when km went away without ending the session.
- A policy in ``block`` mode must decide on the forwarding path with the analyzer's state, so
  it keeps the in-process recorder (see cli/monitor.py).

Frame: ``<kind:u8><ts_ns:i64><length:u32><data>``; kind 0/1 are client→server/server→client
chunks, 2 ends the session (its data is the exit status in decimal, negative for a signal, or
empty for none). The first frame's
data is the pickled (settings, session, metrics_port) the child needs.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from typing import Any, BinaryIO

from .config import Settings
from .fdio import write_all
from .frames import (
    END,
    FRAME,
    KIND_END,
    KIND_INIT,
    KINDS,
    RECORDED,
    Handover,
    already_stored,
    direction_of,
    messages_in,
    never_received,
)
from .model import Direction, Session

_log = logging.getLogger("kilometers.recorder_process")

BATCH_WINDOW = 0.05
"""Seconds the feeder gathers chunks after the first one, like the in-process recorder."""
NICENESS = 10
"""The recorder process's lower CPU priority (it catches up whenever a core is idle)."""
WRITE_BYTES = 1 << 20
"""Bytes the feeder gathers into one write at most."""


class RecorderProcess:
    """The parent side: ``submit`` from the forwarding threads, ``start``/``stop`` from km."""

    def __init__(
        self, settings: Settings, session: Session, metrics_port: int | None = None, resume: bool = False
    ) -> None:
        """``resume``: the session was begun by the agent, which went away (agent/link.py): the
        child continues its stored record and skips chunks whose events are stored already."""
        self.settings = settings
        self.session = session
        self.metrics_port = metrics_port
        self.resume = resume
        self.handover = Handover()
        self._items: collections.deque[Any] = self.handover.items
        self._wake = self.handover.wake
        self._lines = self.handover.lines
        """Per direction, the messages handed over (POSIX): the child counts those it never
        received as dropped when km dies."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._feeder = threading.Thread(target=self._feed, name="km-feeder", daemon=True)
        self._broken = False

    def submit(self, direction: Direction, data: bytes, ts_ns: int) -> None:
        self.handover.submit(direction, data, ts_ns)

    def submit_frame(self, kind: int, data: bytes, ts_ns: int) -> None:
        """A frame another recorder did not store (the agent's link re-sends them here)."""
        self.handover.submit_frame(kind, data, ts_ns)

    def backlog(self) -> int:
        return len(self._items)

    def tools_changed(self) -> frozenset[str]:
        """None known here: a blocking policy's session falls back to km's own host instead
        (cli/monitor.py), whose recorder answers."""
        return frozenset()

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Spawn the child; raises OSError when it cannot (km then records in-process)."""
        kwargs: dict[str, Any] = {"process_group": 0} if os.name == "posix" else {}
        argv = [sys.executable, "-m", "kilometers.recorder_process"]
        if self._lines is not None:
            argv.append(str(self._lines.fd))
            kwargs["pass_fds"] = (self._lines.fd,)
        self._proc = subprocess.Popen(  # its own process group: a Ctrl-C meant for km skips it
            argv,
            stdin=subprocess.PIPE,
            stdout=sys.stderr.fileno(),  # never the MCP client's stdout
            close_fds=True,
            **kwargs,
        )
        init = pickle.dumps((self.settings, self.session, self.metrics_port, self.resume))
        # handed over now, not after the first batch window: if km is killed at any later
        # moment, the child still knows the session and ends it with what it got
        assert self._proc.stdin is not None
        self._write(self._proc.stdin.fileno(), FRAME.pack(KIND_INIT, 0, len(init)) + init)
        self._feeder.start()

    def stop(self, exit_code: int | None, timeout: float | None = None) -> None:
        """Send the end of the session, then wait until the child has stored everything."""
        self.handover.end(exit_code)
        self._feeder.join(timeout)
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _log.warning("km: the recorder is still writing; leaving it to finish")
        if not self._feeder.is_alive():
            self.handover.close()  # (the child holds its own copy of the count's descriptor)

    # -- the feeder thread ---------------------------------------------------------------------------

    def _feed(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        pipe = self._proc.stdin.fileno()
        items, pack = self._items, FRAME.pack
        while True:
            self._wake.wait()
            # gather a batch window's chunks first: the feeder and the child wake ~20 times a
            # second instead of once per chunk, and meanwhile hold neither a GIL nor a core
            time.sleep(BATCH_WINDOW)
            self._wake.clear()
            while items:
                parts: list[bytes] = []
                size = 0
                done = False
                while items and size < WRITE_BYTES:
                    item = items.popleft()
                    if item[0] is END:  # (END, exit status): the session's end, then the pipe's
                        code = item[1]
                        data = b"" if code is None else str(code).encode()
                        parts.append(pack(KIND_END, 0, len(data)))
                        parts.append(data)
                        done = True
                        break
                    kind, data, ts = item
                    parts.append(pack(kind, ts, len(data)))
                    parts.append(data)
                    size += len(data)
                self._write(pipe, b"".join(parts))
                if done:
                    self._proc.stdin.close()
                    return

    def _write(self, fd: int, data: bytes) -> None:
        if self._broken:
            return
        try:
            write_all(fd, data)
        except OSError as exc:
            self._broken = True
            code = self._proc.poll() if self._proc is not None else None
            _log.error(
                f"km: the recorder process stopped ({exc.strerror or exc}; exit code {code}); "
                "traffic is unaffected but no longer recorded"
            )


# -- the child ------------------------------------------------------------------------------------


def _read_exactly(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def child_main(stream: BinaryIO, lines_fd: int | None = None) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, signal.SIG_IGN)
    if hasattr(os, "nice"):
        # recording can wait, traffic cannot: when cores are scarce the forwarding path goes first
        with contextlib.suppress(OSError):
            os.nice(NICENESS)
    header = _read_exactly(stream, FRAME.size)
    if header is None:
        return 0
    kind, _, length = FRAME.unpack(header)
    init = _read_exactly(stream, length)
    if kind != KIND_INIT or init is None:
        _log.error("km: the recorder process got no session to record")
        return 2
    settings, session, metrics_port, resume = pickle.loads(init)
    from .host import Host

    host = Host(settings, metrics_port=metrics_port).start()  # the store, opened once, then the session
    stored: set[tuple[int, int]] = set()
    if resume and host.store is not None:
        session, stored = resume_session(host, session)
    recording = host.open_session(session)
    submit = recording.submit_frame
    exit_code: int | None = None
    ended = False
    received = [0, 0]
    skipped = 0
    while True:
        header = _read_exactly(stream, FRAME.size)
        if header is None:
            break  # km went away without saying goodbye: keep what arrived
        kind, ts, length = FRAME.unpack(header)
        data = _read_exactly(stream, length) if length else b""
        if data is None:
            break
        if kind == KIND_END:
            exit_code, ended = (int(data) if data else None), True
            break
        if kind not in RECORDED:
            continue
        direction = direction_of(kind, data)
        received[direction] += messages_in(kind, data)
        if stored and already_stored(stored, kind, data, ts):
            skipped += 1
            continue  # its events are in the store already (the agent's, before it went away)
        submit(kind, data, ts)
    if skipped:
        _log.info(f"km: {skipped} re-sent chunks were stored by the agent already; kept once")
    if not ended:
        lost = never_received(lines_fd, received)
        if lost:
            recording.session.dropped_events += lost  # read by the sinks only after close()
            with contextlib.suppress(OSError):
                _log.warning(f"km: km ended before handing {lost} messages to the recorder; "
                             "they are counted as dropped")  # fmt: skip
    recording.close(exit_code)
    host.close()
    return 0


def resume_session(host: Any, session: Session) -> tuple[Session, set[tuple[int, int]]]:
    """The agent's stored record of ``session`` (its row, counted again from its events) and the
    (kind, time) of the chunks whose events it stored: chunks re-sent to this child carry the
    same times, and a chunk's events are stored in one transaction, all or none."""
    from sqlalchemy import func, select

    from .store.codec import session_from_row
    from .store.schema import LOCAL_ORG, events, sessions

    try:
        engine = host.store.open()
        with engine.connect() as conn:
            row = (
                conn.execute(
                    select(sessions).where(sessions.c.org_id == LOCAL_ORG, sessions.c.id == session.id)
                )
                .mappings()
                .first()
            )
            if row is None:
                return session, set()
            found = conn.execute(
                select(events.c.direction, events.c.ts_ns).where(
                    events.c.org_id == LOCAL_ORG, events.c.session_id == session.id
                )
            ).all()
            count, errors = conn.execute(
                select(func.count(), func.count(events.c.error_code)).where(
                    events.c.org_id == LOCAL_ORG, events.c.session_id == session.id
                )
            ).one()
    except Exception as exc:  # the store is down: record from here on as a new part of the session
        _log.warning(f"km: cannot read the session back from the store ({exc!r})")
        return session, set()
    resumed = session_from_row(row)
    resumed.pid, resumed.ended_ns, resumed.exit_code = session.pid, None, None
    resumed.event_count, resumed.error_count = count, errors
    host.store.adopt(resumed)
    return resumed, {(KINDS[direction], ts) for direction, ts in found}


if __name__ == "__main__":
    from .log import setup

    setup()  # the child's messages: the same lines, on km's stderr
    sys.exit(child_main(sys.stdin.buffer, int(sys.argv[1]) if len(sys.argv) > 1 else None))
