"""Statements that change or drop data without a row limit, found with a real SQL parser (sqlglot).

``danger.destructive_sql``: ``DROP DATABASE``/``SCHEMA`` (critical); ``DROP TABLE``,
``TRUNCATE``, ``DELETE``/``UPDATE`` without ``WHERE`` or with an always-true one, ``ALTER TABLE
… DROP`` (high); ``DROP`` of a view, index, function, user or role, and ``DELETE``/``UPDATE``
bounded only by ``LIMIT``/``TOP`` (medium). ``SELECT``, ``INSERT``, ``UPDATE … WHERE id = 1``,
``DELETE … WHERE …`` are not findings. Text that does not parse as SQL ("how to delete from a
list") is not judged. MongoDB shell calls (``db.x.drop()``, ``deleteMany({})``) and Redis
``FLUSHALL``/``FLUSHDB`` are recognised by their call shape.

sqlglot is imported on first use (:mod:`kilometers.analysis.sqltree`): it takes a few hundred
milliseconds to import, and most sessions never send SQL.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from .findings import Severity


class SqlVerdict(NamedTuple):
    rule: str
    severity: Severity
    label: str


RULE = "danger.destructive_sql"
GATES = ("drop", "truncate", "delete", "update", "alter", "flush", "remove(")
"""Lower-case words without which a text is not parsed (nothing in it can change or drop data)."""
_MAX_SQL_CHARS = 20_000
_MAX_CACHED_CHARS = 4096
_MONGO = re.compile(
    r"\bdb\.(?:dropdatabase\(\)|[\w$.-]+\.(?:drop\(\s*\)|(?:deletemany|remove)\(\s*\{\s*\}\s*\)|"
    r"updatemany\(\s*\{\s*\}))",
    re.IGNORECASE,
)
_REDIS = re.compile(r"^\s*(?:flushall|flushdb)\b", re.IGNORECASE | re.MULTILINE)


def judge_sql(text: str) -> tuple[SqlVerdict, ...]:
    """The worst destructive statement of a text (one verdict at most); never raises.

    Short texts are cached: a database tool sends the same statements again and again, and a
    parse costs a few hundred microseconds.
    """
    if not any(g in text.lower() for g in GATES):
        return ()
    return _cached(text) if len(text) <= _MAX_CACHED_CHARS else tuple(_judge(text))


@lru_cache(maxsize=1024)
def _cached(text: str) -> tuple[SqlVerdict, ...]:
    return tuple(_judge(text))


def _judge(text: str) -> list[SqlVerdict]:
    low = text.lower()
    if not any(g in low for g in GATES):
        return []
    if _REDIS.search(text):
        return [SqlVerdict(RULE, "high", "Redis FLUSHALL/FLUSHDB")]
    if "db." in low and _MONGO.search(text):
        return [SqlVerdict(RULE, "high", "MongoDB drop/delete all")]
    from .sqltree import worst  # sqlglot on first use only

    verdict = worst(text[:_MAX_SQL_CHARS])
    return [verdict] if verdict else []
