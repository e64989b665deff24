"""Opening a store (SQLite by default, PostgreSQL by URL) and migrating it with Alembic."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, ProgrammingError, StatementError

from .. import paths

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0005"
"""The newest migration (tests check it equals Alembic's head): lets km check a store without
importing Alembic, which costs ~100 ms and ~12 MB at every km monitor start."""


class SchemaOutOfDate(RuntimeError):
    """The database's schema is older than this version of km."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def resolve_url(url: str | None) -> str:
    return url or paths.default_db_url()


_CREDENTIALS = re.compile(r"(://[^/@\s:]*):([^/\s]*)@")
"""A URL's user:password@ (to the last @ before the path: a password may hold a raw @)."""
ERROR_CHARS = 200
"""An error from the database layer is cut to this many characters when printed."""


def display_url(url: str | None) -> str:
    """The store's URL as km prints it: never with the password of a database URL."""
    url = resolve_url(url)
    with contextlib.suppress(Exception):
        url = make_url(url).render_as_string(hide_password=True)
    return _CREDENTIALS.sub(r"\1:***@", url)


def _passwords(url: str | None) -> set[str]:
    """The password of ``url`` as parsed and as written (and the parts of a raw one with @ in it,
    which a driver may echo as a host name)."""
    found: set[str] = set()
    url = resolve_url(url)
    with contextlib.suppress(Exception):
        found.add(str(make_url(url).password or ""))
    for match in _CREDENTIALS.finditer(url):
        found.add(match.group(2))
        found.update(match.group(2).split("@"))
    return {p for p in found if len(p) >= 3}


def error_text(exc: BaseException, url: str | None = None) -> str:
    """What failed in the database layer, for a one-line message: the driver's own first line,
    never SQLAlchemy's text (it carries the statement and its parameters: payloads), with the
    password of ``url`` and of any URL in it masked."""
    inner: BaseException = exc
    if isinstance(exc, StatementError):
        inner = exc.orig if exc.orig is not None else Exception(exc.args[0] if exc.args else "")
    lines = str(inner).strip().splitlines()
    line = lines[0].strip() if lines else type(inner).__name__
    for password in sorted(_passwords(url), key=len, reverse=True):
        line = line.replace(password, "***")
    line = _CREDENTIALS.sub(r"\1:***@", line)
    return line if len(line) <= ERROR_CHARS else line[: ERROR_CHARS - 1] + "…"


def _private_file(db_file: str) -> None:
    """Create a SQLite store readable by its owner only: a 0600 file (SQLite gives the -wal and
    -shm files the database file's mode) in a 0700 directory; an existing store is tightened."""
    path = Path(db_file)
    paths.private_dir(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(OSError):  # missing, or not ours to change
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)


def sqlite_file(url: str | None) -> str | None:
    """The file of a SQLite store's URL (None for other databases and in-memory stores)."""
    url = resolve_url(url)
    if not url.startswith("sqlite") or "///" not in url:
        return None
    db_file = url.split("///", 1)[1]
    return db_file if db_file and db_file != ":memory:" and not db_file.startswith("file:") else None


def make_engine(url: str | None = None) -> Engine:
    url = resolve_url(url)
    if url.startswith("sqlite"):
        db_file = sqlite_file(url)
        if db_file:
            _private_file(db_file)
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True)


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (safe to call when already current)."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")


def ensure_current(engine: Engine) -> None:
    current, head = current_revision(engine), HEAD
    if current != head:
        raise SchemaOutOfDate(
            f"the database schema is at revision {current or 'none'} but km needs {head}; "
            "run `km db upgrade` to migrate it"
        )


def _migration_race(exc: Exception) -> bool:
    """Whether ``exc`` is what another process migrating the same store at the same moment
    causes (the tables or revision row it just made, its lock), rather than a store that cannot
    be opened or written at all (missing directory, read-only, disk full), which fails at once."""
    if isinstance(exc, IntegrityError | ProgrammingError):
        return True
    message = str(exc.orig if isinstance(exc, StatementError) else exc).lower()
    return "already exists" in message or "locked" in message


def open_store(url: str | None = None, migrate: bool = True, wait: float = 15.0) -> Engine:
    """An engine on a migrated store. The local store migrates itself; servers call ensure_current.

    Several km processes may open a new store at the same moment (a client starting all its
    servers): one migrates, the others wait until the schema is current instead of failing."""
    engine = make_engine(url)
    if not migrate:
        return engine
    deadline = time.monotonic() + wait
    while True:
        try:
            upgrade(engine)
            break
        except Exception as exc:
            if current_revision_or_none(engine) == HEAD:
                break
            if not _migration_race(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    db_file = sqlite_file(url)
    if db_file:
        from .live import close_dead_sessions

        with contextlib.suppress(Exception):  # a store km may only read is still read
            close_dead_sessions(engine, db_file)
    return engine


def upsert(conn: Connection, table: Any) -> Any:
    """``INSERT`` into ``table`` in the connection's dialect, which offers ``on_conflict_do_*``
    and ``excluded`` on both SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table)


def current_revision_or_none(engine: Engine) -> str | None:
    try:
        return current_revision(engine)
    except Exception:
        return None
