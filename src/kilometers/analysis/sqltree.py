"""The SQL side of :mod:`kilometers.analysis.sql`: sqlglot's tokenizer and parser.

Imported on first use (sqlglot takes a few hundred milliseconds to import).
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import Token, Tokenizer, TokenType, exp
from sqlglot.errors import SqlglotError

from .findings import SEVERITY_RANK, Severity
from .sql import GATES, RULE, SqlVerdict

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "falling back to parsing as a Command"

_DROP_SEVERITY: dict[str, Severity] = {
    "DATABASE": "critical",
    "SCHEMA": "critical",
    "KEYSPACE": "critical",
    "TABLE": "high",
    "COLLECTION": "high",
}
_COMMAND_DROPS = frozenset({"USER", "ROLE", "DATABASE", "SCHEMA", "TABLESPACE", "OWNED"})


def worst(text: str) -> SqlVerdict | None:
    """The worst statement of a text that changes or drops data without a row limit."""
    if _bounded(text):
        return None
    found: SqlVerdict | None = None
    for statement in _statements(text):
        verdict = _statement(statement)
        if verdict and (found is None or SEVERITY_RANK[verdict.severity] > SEVERITY_RANK[found.severity]):
            found = verdict
    return found


_READ_ONLY_STARTS = frozenset(
    {
        TokenType.SELECT,
        TokenType.INSERT,
        TokenType.VALUES,
        TokenType.BEGIN,
        TokenType.COMMIT,
        TokenType.ROLLBACK,
        TokenType.SHOW,
        TokenType.DESCRIBE,
    }
)


def _bounded(text: str) -> bool:
    """Whether the tokens alone show that nothing unbounded changes (no parse needed, 5x cheaper):
    every statement reads or inserts, or is a ``DELETE``/``UPDATE`` whose top-level ``WHERE``
    names a column and has no ``OR``. (A tautology such as ``WHERE id = id`` is not caught.)"""
    try:
        tokens = Tokenizer().tokenize(text)
    except _ERRORS:
        return False
    statement: list[Token] = []
    for token in [*tokens, None]:
        if token is None or token.token_type == TokenType.SEMICOLON:
            if statement and not _bounded_statement(statement):
                return False
            statement = []
        else:
            statement.append(token)
    return True


def _bounded_statement(tokens: list[Token]) -> bool:
    first = tokens[0].token_type
    if first in _READ_ONLY_STARTS:
        return True
    if first not in (TokenType.UPDATE, TokenType.DELETE):
        return False
    depth = 0
    for i, token in enumerate(tokens):
        if token.token_type == TokenType.L_PAREN:
            depth += 1
        elif token.token_type == TokenType.R_PAREN:
            depth -= 1
        elif token.token_type == TokenType.WHERE and depth == 0:
            condition = tokens[i + 1 :]
            return not any(t.token_type == TokenType.OR for t in condition) and any(
                t.token_type in (TokenType.VAR, TokenType.IDENTIFIER) for t in condition
            )
    return False


_DIALECTS = (None, "postgres", "mysql", "tsql")
"""Tried in turn until one reads the text: quoting differs (``"x"``, ```x```, ``[x]``)."""
_ERRORS = (SqlglotError, RecursionError, ValueError, KeyError, TypeError, IndexError, AttributeError)


def _parse(text: str) -> list[exp.Expr] | None:
    for dialect in _DIALECTS:
        try:
            return [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        except _ERRORS:
            continue
    return None


def _statements(text: str) -> list[exp.Expr]:
    parsed = _parse(text)
    if parsed is not None:
        return parsed
    # one statement no dialect reads must not hide a DROP in the next: parse them one by one
    out: list[exp.Expr] = []
    for part in text.split(";")[:50]:
        if any(g in part.lower() for g in GATES):
            out.extend(_parse(part) or ())
    return out


def _statement(node: exp.Expr) -> SqlVerdict | None:
    if isinstance(node, exp.Drop):
        kind = str(node.args.get("kind") or "").upper()
        severity = _DROP_SEVERITY.get(kind, "medium")
        return SqlVerdict(RULE, severity, f"DROP {kind or 'object'}")
    if isinstance(node, exp.TruncateTable):
        return SqlVerdict(RULE, "high", "TRUNCATE")
    if isinstance(node, (exp.Delete, exp.Update)):
        verb = "DELETE" if isinstance(node, exp.Delete) else "UPDATE"
        where = node.args.get("where")
        if where is None:
            if node.args.get("limit") is not None:
                return SqlVerdict(RULE, "medium", f"{verb} bounded only by LIMIT")
            return SqlVerdict(RULE, "high", f"{verb} without WHERE")
        if _always_true(where.this):
            return SqlVerdict(RULE, "high", f"{verb} with an always-true WHERE")
        return None
    if isinstance(node, exp.Alter):
        actions = node.args.get("actions") or []
        if any(isinstance(a, exp.Drop) for a in actions):
            return SqlVerdict(RULE, "high", "ALTER TABLE … DROP")
        return None
    if isinstance(node, exp.Command):
        verb = str(node.this or "").upper()
        words = str(node.expression or "").split()
        head = words[0].upper().strip(";") if words else ""
        if verb == "DROP" and head in _COMMAND_DROPS:
            return SqlVerdict(
                RULE, "critical" if head in ("DATABASE", "SCHEMA") else "medium", f"DROP {head}"
            )
    return None


def _always_true(cond: exp.Expr | None) -> bool:
    """``1=1``, ``TRUE``, ``'a'='a'``, ``1``, ``x = x``, or any of these OR-ed in at the top."""
    if cond is None:
        return True
    if isinstance(cond, exp.Paren):
        return _always_true(cond.this)
    if isinstance(cond, exp.Or):
        return _always_true(cond.left) or _always_true(cond.right)
    if isinstance(cond, exp.Boolean):
        return bool(cond.this)
    if isinstance(cond, exp.Literal):
        return not cond.is_string and str(cond.this) not in ("0", "0.0")
    if isinstance(cond, exp.EQ):
        left, right = cond.left, cond.right
        if isinstance(left, exp.Literal) and isinstance(right, exp.Literal):
            return str(left.this) == str(right.this)
        return bool(left == right) and not isinstance(left, exp.Placeholder)
    if isinstance(cond, exp.Is) and isinstance(cond.expression, exp.Null):
        return False
    return False
