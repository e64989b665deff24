"""Many rows in one statement on PostgreSQL: one binary array per column, ``unnest``-ed.

``INSERT … SELECT * FROM unnest(%(c)b::type[], …) ON CONFLICT …`` has one parameter per column
whatever the number of rows, so its text never changes: psycopg converts it once and caches it,
and PostgreSQL prepares it after a few executions. The multi-row ``VALUES`` SQLAlchemy builds for
an ``executemany`` has a placeholder per value instead, a new statement each batch size that
psycopg parses again in Python every time (see docs/benchmarks.md, "Where the time goes:
ingestion"). The ``b`` (binary) placeholders spare psycopg escaping every element as text.

The statement's columns and their types are read from the table (:mod:`.schema`), so a column
added there is part of it with no change here. Rows go in the order given: sort them by the
conflict key so that concurrent statements lock the rows they share in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, CursorResult, Table
from sqlalchemy.dialects import postgresql

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _quote(name: str) -> str:
    return str(_DIALECT.identifier_preparer.quote(name))


def _array_type(table: Table, column: str) -> str:
    """The column's PostgreSQL type (``VARCHAR(36)``, ``BIGINT``...), as an array type."""
    return f"{table.c[column].type.compile(dialect=_DIALECT)}[]"


@cache
def _statement(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...], action: str) -> str:
    arrays = ", ".join(f"%({c})b::{_array_type(table, c)}" for c in columns)
    return (
        f"INSERT INTO {_quote(table.name)} ({', '.join(_quote(c) for c in columns)}) "
        f"SELECT * FROM unnest({arrays}) ON CONFLICT ({', '.join(_quote(c) for c in conflict)}) {action}"
    )


def insert_new(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str],
    returning: str,
) -> CursorResult[Any]:
    """Insert ``rows`` (each with the same keys, all of them columns of ``table``), skipping
    those that conflict on ``conflict``; the result holds ``returning`` of the rows inserted."""
    columns = tuple(rows[0])
    sql = _statement(table, columns, tuple(conflict), f"DO NOTHING RETURNING {_quote(returning)}")
    return conn.exec_driver_sql(sql, {c: [r[c] for r in rows] for c in columns})


def add_counts(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    counts: Sequence[str],
) -> None:
    """Insert ``rows``, or add their ``counts`` to the row already there with the same ``key``
    (keys unique within ``rows``: one statement cannot update a row twice)."""
    columns = (*key, *counts)
    name = _quote(table.name)
    adding = ", ".join(f"{_quote(c)} = {name}.{_quote(c)} + EXCLUDED.{_quote(c)}" for c in counts)
    sql = _statement(table, columns, tuple(key), f"DO UPDATE SET {adding}")
    conn.exec_driver_sql(sql, {c: [r[c] for r in rows] for c in columns})
