"""The stdio transport: spawn the server and relay bytes both ways, unchanged and unbuffered.

Two threads do blocking reads and writes on raw file descriptors (works on POSIX and
Windows alike; no ``select`` on pipes). Each hands a reference to a chunk to the recorder
(one queue append, so a request is always queued before its answer can exist), then
forwards it: the forwarding path never parses, never waits on disk and never writes to
km's own stdout except for the server's bytes.

Lifecycle:
- client closes stdin -> server's stdin is closed -> grace period -> terminate -> kill;
- server exits -> remaining stdout is drained briefly -> km exits with the server's code
  (128+N when it died of signal N), without waiting for the client to close stdin; the session
  records :attr:`StdioProxy.status` (``-N`` for signal N, so a client's SIGTERM is no exit 143);
- SIGINT/SIGTERM/SIGHUP sent to km are forwarded to the server's process group;
- on exit, leftover processes in the server's process group are terminated (no orphans).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from ..directions import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Direction
from ..fdio import write_all

TYPE_CHECKING = False  # (not typing's: importing it costs km monitor ~5 ms before its first byte)
if TYPE_CHECKING:
    from typing import Any

    from ..security import Gate

READ_SIZE = 1 << 16
POSIX = os.name == "posix"
FORWARDED_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
STDOUT_DRAIN_SECONDS = 2.0

OnChunk = Callable[[Direction, bytes, int], None]


class ServerStartError(RuntimeError):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _binary_mode(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        msvcrt.setmode(fd, os.O_BINARY)


class StdioProxy:
    def __init__(
        self,
        command: Sequence[str],
        on_chunk: OnChunk,
        grace_period: float = 5.0,
        stdin_fd: int | None = None,
        stdout_fd: int | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.command = list(command)
        self.on_chunk = on_chunk
        self.grace_period = grace_period
        self.stdin_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
        self.stdout_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
        self.proc: subprocess.Popen[bytes] | None = None
        self._stdout_done = threading.Event()
        self._writing = False
        self._last_read = 0.0
        self.gate = gate
        """Block mode only: decides on each complete client line before it is forwarded."""
        self._out_lock = threading.Lock()
        self._previous: dict[int, Any] = {}
        self._pending: list[int] = []
        self._timers: list[threading.Timer] = []
        self._exiting = False
        self._delivered: set[int] = set()
        self.status: int | None = None
        """How the server ended, as recorded: its exit code, or ``-N`` when it ended by signal N."""

    # -- process control -------------------------------------------------------------------------

    def start(self) -> int:
        """Spawn the server; returns its pid. Raises ServerStartError with a clear message."""
        _binary_mode(self.stdin_fd)
        _binary_mode(self.stdout_fd)
        kwargs: dict[str, object] = {}
        if POSIX:
            kwargs["process_group"] = 0  # so signals and cleanup reach the whole server tree
        # handlers go in before the spawn: a signal in between is remembered and forwarded below
        if threading.current_thread() is threading.main_thread():
            for sig in FORWARDED_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        try:
            self.proc = subprocess.Popen(  # type: ignore[call-overload]
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, **kwargs
            )
        except FileNotFoundError:
            raise ServerStartError(
                f"km: cannot start the server: command not found: {self.command[0]!r}. "
                "Check the command after `--` (is it installed and on PATH?)",
                127,
            ) from None
        except PermissionError:
            raise ServerStartError(
                f"km: cannot start the server: permission denied running {self.command[0]!r}", 126
            ) from None
        except OSError as exc:
            raise ServerStartError(f"km: cannot start the server {self.command[0]!r}: {exc}", 126) from None
        for sig in self._pending:
            self._on_signal(sig, None)
        self._pending.clear()
        return self.proc.pid

    def _signal_group(self, sig: int) -> None:
        proc = self.proc
        if proc is None:
            return
        self._delivered.add(sig)
        try:
            if POSIX:
                os.killpg(proc.pid, sig)
            elif sig == getattr(signal, "SIGKILL", None):  # pragma: no cover
                proc.kill()
            else:  # pragma: no cover - Windows has no process groups for signals
                proc.terminate()
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def _terminate(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal_group(signal.SIGTERM)
        self._after(self.grace_period, self._kill)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._signal_group(getattr(signal, "SIGKILL", signal.SIGTERM))

    def _after(self, seconds: float, fn: Callable[[], None]) -> None:
        timer = threading.Timer(seconds, fn)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.proc is None:
            self._pending.append(signum)  # arrived before the server existed
            return
        self._signal_group(signum)
        if signum != signal.SIGINT:
            self._after(self.grace_period, self._kill)  # a server that ignores SIGTERM is not kept alive

    # -- the two relays --------------------------------------------------------------------------

    def _client_to_server(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        server_in = self.proc.stdin.fileno()
        read, on_chunk, now = os.read, self.on_chunk, time.time_ns
        server_open = True
        while True:
            try:
                data = read(self.stdin_fd, READ_SIZE)
            except OSError:
                data = b""
            end = not data
            if not end:
                # queued before it is forwarded, so a request is always recorded before its answer
                on_chunk(CLIENT_TO_SERVER, data, now())
            if self.gate is not None:
                # the gate holds a line until it is complete; at the end, the last one without "\n"
                data, answers = self.gate.flush() if end else self.gate.feed(data)
                for answer in answers:  # refused by the policy: answered here, never forwarded
                    on_chunk(SERVER_TO_CLIENT, answer, now())
                    with self._out_lock, contextlib.suppress(OSError):
                        write_all(self.stdout_fd, answer)
            if data and server_open:
                try:
                    write_all(server_in, data)
                except OSError:
                    server_open = False  # the server closed its stdin; keep recording what the client sent
            if end:
                break
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        if not self._exiting:
            self._after(self.grace_period, self._terminate)

    def _server_to_client(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        server_out = self.proc.stdout.fileno()
        read, on_chunk, now = os.read, self.on_chunk, time.time_ns
        client_open = True
        try:
            while True:
                try:
                    data = read(server_out, READ_SIZE)
                except OSError:
                    break
                if not data:
                    break
                self._last_read = time.monotonic()
                on_chunk(SERVER_TO_CLIENT, data, now())
                if client_open:
                    self._writing = True
                    try:
                        with self._out_lock:
                            write_all(self.stdout_fd, data)
                    except OSError:
                        client_open = False  # the client went away; keep draining and recording
                    finally:
                        self._writing = False
        finally:
            self._stdout_done.set()

    def _drain_stdout(self) -> None:
        """After the server exits, wait until its last bytes reached the client. A slow client is
        waited for (those bytes are the server's last answer); only a pipe held open by a
        grandchild that writes nothing is given up on, after STDOUT_DRAIN_SECONDS of silence."""
        self._last_read = max(self._last_read, time.monotonic())
        while not self._stdout_done.wait(0.05):
            if not self._writing and time.monotonic() - self._last_read > STDOUT_DRAIN_SECONDS:
                return

    def _wait_server(self) -> int:
        """Wait for the server to exit, waking up for every signal km gets.

        Python runs a signal handler only between bytecodes: a SIGTERM that lands just before a
        blocking ``waitpid`` starts would not be forwarded until the server exits by itself.
        Where the platform has pidfds, the main thread selects on the server's pidfd and a
        signal wakeup pipe instead, so each handler runs as soon as its signal arrives."""
        proc = self.proc
        assert proc is not None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None or threading.current_thread() is not threading.main_thread():
            return proc.wait()
        try:
            pidfd = pidfd_open(proc.pid)
        except OSError:  # an old kernel
            return proc.wait()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        try:
            while proc.poll() is None:  # poll() is also where a pending handler runs
                ready, _, _ = select.select([pidfd, wake_r], [], [])
                if wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                elif pidfd in ready and proc.poll() is None:
                    proc.wait()  # exited: reap it (a timer thread may hold poll()'s lock)
        finally:
            signal.set_wakeup_fd(previous)
            for fd in (pidfd, wake_r, wake_w):
                os.close(fd)
        return proc.returncode

    # -- run -------------------------------------------------------------------------------------

    def run(self) -> int:
        """Relay until the server exits; returns the exit code km should exit with."""
        if self.proc is None:
            self.start()
        assert self.proc is not None
        threads = [
            threading.Thread(target=self._client_to_server, name="km-c2s", daemon=True),
            threading.Thread(target=self._server_to_client, name="km-s2c", daemon=True),
        ]
        for t in threads:
            t.start()
        try:
            returncode = self._wait_server()
            self._exiting = True
            self.status = returncode
            if returncode - 128 in self._delivered:
                # a wrapper (docker run, a shell's trap) reports the signal km delivered as 128+N
                self.status = 128 - returncode
            # bytes the server wrote just before exiting must still reach the client
            self._drain_stdout()
            for timer in self._timers:
                timer.cancel()
            if POSIX:
                self._signal_group(signal.SIGTERM)  # grandchildren left behind: no orphans
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
        if self.proc.stdout is not None and self._stdout_done.is_set():
            self.proc.stdout.close()
        return returncode if returncode >= 0 else 128 - returncode
