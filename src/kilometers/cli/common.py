"""Helpers shared by the CLI's commands: opening the store, durations, JSON lines, errors."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, NoReturn

import click
import orjson

from .. import config
from ..model import parse_ts

if TYPE_CHECKING:
    from sqlalchemy import Engine

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"km: {message}", err=True)
    raise SystemExit(code)


def since_to_ns(value: str, option: str = "--since") -> int:
    """``10m``, ``2h``, ``1d`` (ago) or an ISO 8601 time -> ns since the epoch."""
    match = _DURATION.match(value.strip())
    if match:
        return time.time_ns() - int(float(match.group(1)) * _UNITS[match.group(2)] * 1e9)
    try:
        return parse_ts(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30s, 10m, 2h, 1d, 1w) nor an ISO 8601 time",
            param_hint=option,
        ) from None


def open_engine(db_url: str | None) -> Engine:
    from ..store import db

    try:
        settings = config.load({"db_url": db_url})
    except config.ConfigError as exc:
        fail(str(exc), 2)
    try:
        return db.open_store(settings.db_url)
    except Exception as exc:
        fail(f"cannot open the store at {db.resolve_url(settings.db_url)}: {exc}")


def echo_json(obj: Any) -> None:
    click.echo(orjson.dumps(obj).decode())


db_option = click.option("--db", "db_url", help="Store URL (default: the local SQLite store).")
