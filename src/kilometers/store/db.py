"""Opening a store (SQLite by default, PostgreSQL by URL) and migrating it with Alembic."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection

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


def make_engine(url: str | None = None) -> Engine:
    url = resolve_url(url)
    if url.startswith("sqlite"):
        db_file = url.split("///", 1)[1] if "///" in url else ""
        if db_file and db_file != ":memory:":
            Path(db_file).parent.mkdir(parents=True, exist_ok=True)
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
            return engine
        except Exception:
            if current_revision_or_none(engine) == HEAD:
                return engine
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


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
