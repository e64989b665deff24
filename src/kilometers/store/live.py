"""Sessions whose km died: a recording into a local SQLite store holds a lock file next to it
(``km.db-live/<session id>.lock``) for as long as it runs. The kernel releases the lock when
the process dies, even on SIGKILL, so the next km that opens the store ends such a session:
at its last event (or its start when it has none), with no exit code."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy import Engine, func, select, update

from .. import paths
from .schema import LOCAL_ORG, events, sessions

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the session of a killed km stays open
    fcntl = None  # type: ignore[assignment]


def live_dir(db_file: str) -> Path:
    return Path(f"{db_file}-live")


class LiveLock:
    """Held by a recording for its session's lifetime (a no-op where there is no ``flock``)."""

    def __init__(self, db_file: str, session_id: str) -> None:
        self._path: Path | None = None
        self._fd: int | None = None
        if fcntl is None:
            return
        folder = paths.private_dir(live_dir(db_file))
        # locked before it gets its name: a sweep never sees the file of a live session unlocked
        tmp = folder / f".{session_id}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._path = folder / f"{session_id}.lock"
            os.replace(tmp, self._path)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self, ended: bool) -> None:
        """``ended``: the session's end is stored, the file goes (before the lock). Otherwise
        only the lock goes, and the next sweep ends the session."""
        if self._fd is not None and self._path is not None:
            if ended:
                with contextlib.suppress(OSError):
                    self._path.unlink()
            os.close(self._fd)
            self._fd = None


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
            continue  # ended meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its km is still recording
            session_id = path.stem
            last = (
                select(func.max(events.c.ts_ns))
                .where(events.c.org_id == LOCAL_ORG, events.c.session_id == session_id)
                .scalar_subquery()
            )
            with engine.begin() as conn:
                closed += conn.execute(
                    update(sessions)
                    .where(
                        sessions.c.org_id == LOCAL_ORG,
                        sessions.c.id == session_id,
                        sessions.c.ended_ns.is_(None),
                    )
                    .values(ended_ns=func.coalesce(last, sessions.c.started_ns), exit_code=None)
                ).rowcount
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return closed
