"""The Alembic history produces exactly the schema in schema.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from kilometers.store import db
from kilometers.store.schema import metadata


def test_migrations_match_the_schema(engine: Engine) -> None:
    assert db.current_revision(engine) == db.head_revision()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_head_constant_matches_alembic() -> None:
    assert db.head_revision() == db.HEAD
