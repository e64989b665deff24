"""Sessions whose km died. Each km process that records into a local SQLite store holds one
locked file beside it (``km-live/<pid>-<random>.lock`` beside ``km.db``) listing the sessions
it is recording. The kernel releases the lock when the process dies, even on SIGKILL, so the
next km that opens the store ends the sessions listed in an unlocked file: at their last event
(or their start when they have none), with no exit code.

One file per process, not per session: ``km proxy`` records up to ``--max-sessions`` at
once, and a session costs no file handle of its own."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import threading
from pathlib import Path

from sqlalchemy import Engine, func, select, update

from .. import paths
from .schema import LOCAL_ORG, events, sessions

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the session of a killed km stays open
    fcntl = None  # type: ignore[assignment]


def live_dir(db_file: str) -> Path:
    """``km-live`` for ``km.db``: named so that no ``km.db*`` pattern (backups, copies) takes it."""
    path = Path(db_file)
    return path.with_name(f"{path.stem}-live")


class _ProcessFile:
    """This process's locked file for one store: the ids of the sessions it records."""

    def __init__(self, db_file: str) -> None:
        assert fcntl is not None
        folder = paths.private_dir(live_dir(db_file))
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        # locked before it gets its name: a sweep never sees the file of a live process unlocked
        tmp = folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.path = folder / f"{name}.lock"
            os.replace(tmp, self.path)
        except OSError:
            os.close(fd)
            raise
        self.fd = fd
        self.sessions: list[str] = []

    def write(self) -> None:
        data = "".join(f"{s}\n" for s in self.sessions).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)


_files: dict[str, _ProcessFile] = {}
_files_lock = threading.Lock()


@atexit.register
def _remove_finished() -> None:
    """At a normal exit, the file of a process whose sessions all ended goes (else: the sweep)."""
    with _files_lock:
        for file in _files.values():
            if not file.sessions:
                with contextlib.suppress(OSError):
                    file.path.unlink()


class LiveLock:
    """Held by a recording for its session's lifetime (a no-op where there is no ``flock``)."""

    def __init__(self, db_file: str, session_id: str) -> None:
        self._db_file: str | None = None
        self._session_id = session_id
        if fcntl is None:
            return
        with _files_lock:
            file = _files.get(db_file)
            if file is None:
                file = _files[db_file] = _ProcessFile(db_file)
            file.sessions.append(session_id)
            file.write()
        self._db_file = db_file

    def release(self, ended: bool) -> None:
        """``ended``: the session's end is stored, it leaves the list. Otherwise it stays listed,
        and the sweep after this process exits ends it."""
        if self._db_file is None:
            return
        db_file, self._db_file = self._db_file, None
        if not ended:
            return
        with _files_lock:
            file = _files.get(db_file)
            if file is None:
                return
            with contextlib.suppress(ValueError):
                file.sessions.remove(self._session_id)
            with contextlib.suppress(OSError):
                file.write()


def close_dead_sessions(engine: Engine, db_file: str) -> int:
    """End the sessions whose recording process died; returns how many were ended."""
    folder = live_dir(db_file)
    if fcntl is None or not folder.is_dir():
        return 0
    closed = 0
    for path in folder.glob("*.lock"):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue  # removed meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its km is still recording
            listed = [s for s in path.read_text(errors="replace").split() if s]
            if listed:
                closed += _end_sessions(engine, listed)
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return closed


def _end_sessions(engine: Engine, session_ids: list[str]) -> int:
    closed = 0
    with engine.begin() as conn:
        for session_id in session_ids:
            last = (
                select(func.max(events.c.ts_ns))
                .where(events.c.org_id == LOCAL_ORG, events.c.session_id == session_id)
                .scalar_subquery()
            )
            closed += conn.execute(
                update(sessions)
                .where(
                    sessions.c.org_id == LOCAL_ORG,
                    sessions.c.id == session_id,
                    sessions.c.ended_ns.is_(None),
                )
                .values(ended_ns=func.coalesce(last, sessions.c.started_ns), exit_code=None)
            ).rowcount
    return closed
