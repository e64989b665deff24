"""Helpers shared by the CLI's commands: opening the store, durations, JSON lines, errors."""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import orjson

from .. import config
from ..model import parse_ts

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ..security import Policy

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


POLICY_EXIT = 78
"""Exit status (EX_CONFIG) when the policy file cannot be used: the server was not started."""


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
        fail(db_failure("cannot open the store", exc, settings.db_url))


def db_failure(what: str, exc: BaseException, url: str | None) -> str:
    """One line for an error from the database layer: what failed, where, the driver's reason;
    never a password or the statement's parameters (see store.db.error_text)."""
    from ..store import db

    return f"{what} {db.display_url(url)}: {db.error_text(exc, url)}"


def echo_json(obj: Any) -> None:
    click.echo(orjson.dumps(obj).decode())


db_option = click.option("--db", "db_url", help="Store URL (default: the local SQLite store).")


# -- the recording options shared by km monitor and km proxy ---------------------------------------

_RECORDING_OPTIONS = [
    click.option("--db", "db_url", help="Store URL (default: SQLite in the km data dir)."),
    click.option(
        "--exclude-ping/--include-ping", default=None, help="Do not record ping requests and replies."
    ),
    click.option(
        "--include-method", multiple=True, help="Record only methods matching this pattern (`*` wildcards)."
    ),
    click.option("--exclude-method", multiple=True, help="Do not record methods matching this pattern."),
    click.option(
        "--payload-limit",
        type=click.IntRange(min=0),
        help="Keep at most this many bytes of each stored payload (0 = all).",
    ),
    click.option(
        "--policy", type=click.Path(dir_okay=False), help="Policy file (TOML): log or block mode, tool lists."
    ),
    click.option(
        "--redact-pii/--keep-pii", default=None, help="Also redact personal data in what is stored."
    ),
    click.option(
        "--otel/--no-otel", default=None, help="Export OpenTelemetry spans (OTEL_EXPORTER_OTLP_* config)."
    ),
    click.option(
        "--otel-payloads", is_flag=True, default=None, help="Put (redacted) arguments/results on spans."
    ),
    click.option(
        "--otel-legacy-names",
        is_flag=True,
        default=None,
        help="Also put the older JSON-RPC attribute names (rpc.*) on spans.",
    ),
]
F = TypeVar("F", bound=Callable[..., Any])


def recording_options(fn: F) -> F:
    """The options every recording command takes (store, filters, payload limit, security, OTel)."""
    for option in reversed(_RECORDING_OPTIONS):
        fn = option(fn)
    return fn


def recording_policy(settings: config.Settings) -> Policy:
    """The policy of a recording command, loaded before anything starts: one that cannot be used
    stops km (exit status :data:`POLICY_EXIT`) unless its ``on_error`` says ``log``."""
    from ..pipeline import load_policy
    from ..security import PolicyError

    try:
        return load_policy(settings)
    except PolicyError as exc:
        fail(f'{exc} (the server was not started; `km policy check FILE` checks a policy, on_error = "log" '
             "runs without it)", POLICY_EXIT)  # fmt: skip


def recording_settings(params: dict[str, Any], **extra: Any) -> config.Settings:
    """Settings from a recording command's options (and ``extra`` ones), lenient: a broken config
    file or KM_* variable is reported on stderr and the valid settings and flags are kept."""
    overrides = {
        "db_url": params["db_url"],
        "exclude_ping": params["exclude_ping"],
        "include_methods": params["include_method"],
        "exclude_methods": params["exclude_method"],
        "payload_limit": params["payload_limit"],
        "policy": params["policy"],
        "redact_pii": params["redact_pii"],
        "otel": params["otel"],
        "otel_payloads": params["otel_payloads"],
        "otel_legacy_names": params["otel_legacy_names"],
        **extra,
    }
    settings, problem = config.load_lenient(overrides)
    if problem:
        click.echo(f"km: {problem}", err=True)
    return settings


def freeze_startup_heap() -> None:
    """Move what a server built at start-up (modules, the app, its engine) out of the garbage
    collector's full passes: it lives as long as the process, and each full pass walked all of it
    again, 20-40 ms taken from whichever request was allocating then (the p95 of a week of
    ``/api/v1/stats``; docs/benchmarks.md). Garbage made later is collected as before."""
    gc.collect()
    gc.freeze()
