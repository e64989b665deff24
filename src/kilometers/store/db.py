"""Opening a store (SQLite by default, PostgreSQL by URL) and migrating it with Alembic."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError

from .. import paths

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: processes are not serialised, threads are
    fcntl = None  # type: ignore[assignment]

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0015"
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


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return _revision(conn)


class HalfMigrated(RuntimeError):
    """The store has km's tables but no schema revision, in a shape no revision has."""


_MIGRATING = threading.Lock()
"""Alembic's ``context`` is module-global: one migration at a time in a process."""
PG_MIGRATION_LOCK = 0x6B6D_6462
"""The PostgreSQL advisory lock (a bigint key) a migration holds for its transaction."""
_migrated: set[tuple[str, int, int]] = set()
"""The stores this process migrated: URL and, for a file, its device and inode."""


def migrate_lock_file(db_file: str) -> Path:
    """``km-migrate.lock`` for ``km.db``: named so that no ``km.db*`` pattern takes it."""
    path = Path(db_file)
    return path.with_name(f"{path.stem}-migrate.lock")


@contextlib.contextmanager
def _process_lock(db_file: str | None) -> Iterator[None]:
    """Held by the one km process migrating a SQLite file (released by the kernel if it dies)."""
    if db_file is None or fcntl is None:
        yield
        return
    fd = os.open(migrate_lock_file(db_file), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _tables(conn: Connection) -> dict[str, frozenset[str]]:
    """km's tables in the store and their columns."""
    from .schema import metadata

    found = inspect(conn)
    return {
        t: frozenset(c["name"] for c in found.get_columns(t))
        for t in found.get_table_names()
        if t in metadata.tables
    }


def _revision_of(tables: dict[str, frozenset[str]]) -> str | None:
    """The revision whose schema has exactly these tables and columns (migrating an empty
    in-memory database one revision at a time to compare), or None."""
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS))
    scratch = create_engine("sqlite://")
    try:
        with scratch.begin() as conn:
            for revision in reversed(list(script.walk_revisions())):
                command.upgrade(_alembic_config(conn), revision.revision)
                if _tables(conn) == tables:
                    return str(revision.revision)
    finally:
        scratch.dispose()
    return None


def _migrate(conn: Connection) -> None:
    current = _revision(conn)
    if current == HEAD:
        return
    from alembic import command

    if current is None and (tables := _tables(conn)):
        # an older km, migrating from several threads at once, left the tables of a revision
        # without recording it: record the revision they match, then migrate on from there
        found = _revision_of(tables)
        if found is None:
            raise HalfMigrated(
                "it has km tables but no schema revision (a migration by an older km was cut "
                "short); move the store aside, and km creates a new one"
            )
        command.stamp(_alembic_config(conn), found)
    command.upgrade(_alembic_config(conn), "head")


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision (safe to call when already current).

    One migration at a time per store, whatever runs it: threads of this process take a lock
    around Alembic, processes an ``flock`` on a file beside a SQLite store or an advisory lock
    on PostgreSQL; under it, the revision is read again and only a store behind is migrated.
    On SQLite the migration runs in one ``BEGIN IMMEDIATE`` transaction, so that its DDL too is
    undone if it fails (the sqlite3 module otherwise commits each CREATE TABLE at once)."""
    if current_revision(engine) == HEAD:
        return
    with _MIGRATING, _process_lock(sqlite_file(str(engine.url))), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        _migrate(conn)


def upgrade_apart(url: str | None, timeout: float = 600.0) -> None:
    """:func:`upgrade` a store that is behind in a short-lived child process: Alembic and the
    migration scripts take ~10 MB that a long-lived process (the agent) would otherwise keep
    for its whole life. Whatever goes wrong there is left to :func:`open_store`, which meets it
    again and reports it."""
    url = resolve_url(url)
    if url.startswith("sqlite") and sqlite_file(url) is None:
        return  # an in-memory store is new in every process
    try:
        engine = make_engine(url)
        try:
            if current_revision(engine) == HEAD:
                return
        finally:
            engine.dispose()
    except Exception:
        return
    import subprocess
    import sys

    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(  # the URL on stdin: a password in it must not show in `ps`
            [sys.executable, "-m", "kilometers.store.db"],
            input=url.encode(),
            stdout=sys.stderr.fileno(),  # never a client's stdout
            timeout=timeout,
            check=False,
        )


def ensure_current(engine: Engine, create: bool = False, migrate: bool = False) -> None:
    """Raise :class:`SchemaOutOfDate` unless the schema is at :data:`HEAD`. With ``create``, a new
    database (no tables at all) is created at the newest revision, as every other store is; with
    ``migrate`` (`km serve --migrate`), one at an older revision is migrated too. A database that
    holds anything else is only ever migrated when asked to."""
    with engine.connect() as conn:
        current = _revision(conn)
        empty = current is None and not inspect(conn).get_table_names()
    if current == HEAD:
        return
    if migrate or (create and empty):
        upgrade(engine)
        return
    raise SchemaOutOfDate(
        f"the database schema is at revision {current or 'none'} but km needs {HEAD}; "
        "run `km db upgrade` to migrate it"
    )


def _store_key(url: str) -> tuple[str, int, int] | None:
    """What identifies a store for :data:`_migrated` (None: an in-memory store, new each time)."""
    if not url.startswith("sqlite"):
        return url, 0, 0
    db_file = sqlite_file(url)
    if db_file is None:
        return None
    try:
        st = os.stat(db_file)
    except OSError:
        return None
    return url, st.st_dev, st.st_ino


def open_store(url: str | None = None, migrate: bool = True) -> Engine:
    """An engine on a migrated store. The local store migrates itself; servers call ensure_current.

    A process migrates a store once: later opens (``km proxy``'s sessions, once it migrated at
    start-up) only open it. Several km processes may open a new store at the same moment (a
    client starting all its servers): one migrates, the others wait for it (see upgrade)."""
    url = resolve_url(url)
    engine = make_engine(url)
    if migrate:
        key = _store_key(url)
        if key is None or key not in _migrated:
            upgrade(engine)
            if key is not None:
                _migrated.add(key)
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


if __name__ == "__main__":  # upgrade_apart's child: python -m kilometers.store.db < URL
    import sys

    upgrade(make_engine(sys.stdin.read().strip()))
