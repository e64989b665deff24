"""Configuration: flags > ``KM_*`` environment variables > config file (TOML) > defaults."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from . import paths


class ConfigError(ValueError):
    """The config file or a KM_* variable holds something km cannot use."""


@dataclass
class Settings:
    db_url: str | None = None
    """SQLAlchemy URL of the store; default: SQLite in the data dir."""
    exclude_ping: bool = False
    include_methods: list[str] = field(default_factory=list)
    exclude_methods: list[str] = field(default_factory=list)
    payload_limit: int = 0
    """Bytes of payload kept per stored event (0 = all). Forwarded bytes are never changed."""
    grace_period: float = 5.0
    """Seconds a server gets to exit after its stdin closes, and after SIGTERM, before it is killed."""
    api_url: str | None = None
    """Team server (``km serve``) that events are forwarded to; nothing is uploaded when unset."""
    api_key: str | None = field(default=None, repr=False)
    """Ingest key for the team server. Never printed or logged (``repr=False``)."""
    upload_batch_size: int = 500
    """Events per upload request at most."""
    upload_interval: float = 2.0
    """Seconds between upload passes while km monitor runs."""
    policy: str | None = None
    """A policy file (TOML): `log` or `block` mode, tool allow/deny lists, analysis settings."""
    policy_on_error: str | None = None
    """What km does when the policy file cannot be used and does not say (its `on_error`):
    `refuse` (unset: the default) stops km before the server starts; `log` warns and goes on
    with the default policy."""
    analysis: bool = True
    """Security analysis and redaction of what is stored. Turning it off also turns redaction off."""
    redact_pii: bool = False
    keep_request_state: bool = False
    """Store a multi-round call's opaque ``requestState`` as sent; by default km stores its
    SHA-256 (``sha256:…``), enough to link the rounds. Forwarded bytes are never changed."""
    """Also redact personal data (e-mail, phone, cards, IBAN, SSN) in what km stores; secrets always are."""
    otel: bool = False
    """Export spans and metrics over OTLP (configured by the standard OTEL_EXPORTER_OTLP_* variables)."""
    otel_payloads: bool = False
    """Also put (redacted) arguments and results on spans."""
    otel_legacy_names: bool = False
    """Also put the older JSON-RPC attribute names (``rpc.*``, ``mcp.request.id``) on spans."""
    recorder_process: bool = True
    """`km monitor` records in a child process, so recording never competes with forwarding for
    the GIL (off: a recorder thread in km's process; a blocking policy always uses the thread)."""

    @property
    def uploads_enabled(self) -> bool:
        return bool(self.api_url and self.api_key)


ENV = {
    "db_url": "KM_DB",
    "exclude_ping": "KM_EXCLUDE_PING",
    "include_methods": "KM_INCLUDE_METHODS",
    "exclude_methods": "KM_EXCLUDE_METHODS",
    "payload_limit": "KM_PAYLOAD_LIMIT",
    "grace_period": "KM_GRACE_PERIOD",
    "api_url": "KM_API_URL",
    "api_key": "KM_API_KEY",
    "upload_batch_size": "KM_UPLOAD_BATCH_SIZE",
    "upload_interval": "KM_UPLOAD_INTERVAL",
    "policy": "KM_POLICY",
    "policy_on_error": "KM_POLICY_ON_ERROR",
    "redact_pii": "KM_REDACT_PII",
    "keep_request_state": "KM_KEEP_REQUEST_STATE",
    "analysis": "KM_ANALYSIS",
    "otel": "KM_OTEL",
    "otel_payloads": "KM_OTEL_PAYLOADS",
    "otel_legacy_names": "KM_OTEL_LEGACY_NAMES",
    "recorder_process": "KM_RECORDER_PROCESS",
}
SECTIONS = {
    "db_url": ("store", "url"),
    "exclude_ping": ("monitor", "exclude_ping"),
    "include_methods": ("monitor", "include_methods"),
    "exclude_methods": ("monitor", "exclude_methods"),
    "payload_limit": ("monitor", "payload_limit"),
    "grace_period": ("monitor", "grace_period"),
    "api_url": ("sync", "api_url"),
    "api_key": ("sync", "api_key"),
    "upload_batch_size": ("sync", "batch_size"),
    "upload_interval": ("sync", "interval"),
    "policy": ("monitor", "policy"),
    "policy_on_error": ("monitor", "policy_on_error"),
    "redact_pii": ("monitor", "redact_pii"),
    "keep_request_state": ("monitor", "keep_request_state"),
    "analysis": ("monitor", "analysis"),
    "otel": ("export", "otel"),
    "otel_payloads": ("export", "otel_payloads"),
    "otel_legacy_names": ("export", "otel_legacy_names"),
    "recorder_process": ("monitor", "recorder_process"),
}
SECRET = "api_key"
"""Settings never echoed back in error messages."""


def _coerce(name: str, value: Any, origin: str) -> Any:
    default = getattr(Settings(), name)
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if isinstance(default, list):
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            raise ValueError(f"expected a list of strings, got {value!r}")
        if name == "payload_limit":
            number = int(value)
            if number < 0:
                raise ValueError("must be 0 or more")
            return number
        if name == "grace_period":
            seconds = float(value)
            if seconds < 0:
                raise ValueError("must be 0 or more")
            return seconds
        if name == "upload_batch_size":
            if isinstance(value, bool):
                raise ValueError(f"expected a whole number, got {value!r}")
            number = int(value)
            if number < 1:
                raise ValueError("must be 1 or more")
            return number
        if name == "upload_interval":
            if isinstance(value, bool):
                raise ValueError(f"expected a number of seconds, got {value!r}")
            seconds = float(value)
            if not seconds > 0:
                raise ValueError("must be more than 0")
            return seconds
        if name in ("api_url", "api_key"):
            if value is None or (isinstance(value, str) and not value.strip()):
                return None  # an empty KM_API_URL / KM_API_KEY turns forwarding off
            if not isinstance(value, str):
                raise ValueError(
                    "expected a string" if name == SECRET else f"expected a string, got {value!r}"
                )
            value = value.strip()
            if name == "api_url":
                if not value.startswith(("http://", "https://")):
                    raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
                value = value.rstrip("/")
            return value
        if name == "policy_on_error":
            if value is None or (isinstance(value, str) and not value.strip()):
                return None
            if value not in ("refuse", "log"):
                raise ValueError(f"expected 'refuse' or 'log', got {value!r}")
            return value
        if value is not None and not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: invalid value for {name}: {exc}") from None


def read_file(path: Path | None = None) -> dict[str, Any]:
    path = path or paths.config_file()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    for name, (section, key) in SECTIONS.items():
        table = data.get(section, {})
        if isinstance(table, dict) and key in table:
            values[name] = _coerce(name, table[key], f"config file {path} [{section}] {key}")
    return values


def load(overrides: dict[str, Any] | None = None, path: Path | None = None) -> Settings:
    """Resolve settings. ``overrides`` are command-line values (None means not given)."""
    values = read_file(path)
    for name, var in ENV.items():
        if name == "db_url" and "KM_DATABASE_URL" in os.environ and var not in os.environ:
            var = "KM_DATABASE_URL"
        if var in os.environ:
            values[name] = _coerce(name, os.environ[var], f"environment variable {var}")
    for name, value in (overrides or {}).items():
        if value is not None and value != ():
            values[name] = _coerce(name, list(value) if isinstance(value, tuple) else value, f"--{name}")
    known = {f.name for f in fields(Settings)}
    return Settings(**{k: v for k, v in values.items() if k in known})


def load_lenient(overrides: dict[str, Any]) -> tuple[Settings, str | None]:
    """For km monitor, which must start the server whatever happens: settings from flags and
    whatever else is valid, plus a message saying what was ignored."""
    try:
        return load(overrides), None
    except ConfigError as exc:
        problem = str(exc)
    try:
        return load(
            overrides, path=Path("/nonexistent/km-config.toml")
        ), f"{problem}; the config file is ignored"
    except ConfigError as exc:
        settings = Settings()
        for name, value in overrides.items():
            if value is not None and value != ():
                setattr(settings, name, list(value) if isinstance(value, tuple) else value)
        return settings, f"{problem}; {exc}; only command-line flags are used"


def write_file(settings: Settings, path: Path | None = None) -> Path:
    """Write ``settings`` as TOML, readable by its owner only (0600: it may hold an API key or a
    database URL with a password)."""
    path = path or paths.config_file()
    paths.private_dir(path.parent)
    data: dict[str, dict[str, Any]] = {}
    for name, value in asdict(settings).items():
        if value is None:
            continue
        section, key = SECTIONS[name]
        data.setdefault(section, {})[key] = value
    text = tomli_w.dumps(data).encode()
    # created 0600 (no window where a secret is world-readable); an existing file is tightened too
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)
        file.write(text)
    return path


def coerce(name: str, value: Any, origin: str) -> Any:
    """Validate one setting given on the command line (``origin`` names it in the error)."""
    return _coerce(name, value, origin)
