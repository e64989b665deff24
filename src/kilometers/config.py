"""Configuration: flags > ``KM_*`` environment variables > config file (TOML) > defaults."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
    """Without the agent, `km monitor` records in a child process, so recording never competes
    with forwarding for the GIL (off: a recorder thread in km's process, as with a blocking
    policy and no agent)."""
    agent: bool = True
    """`km monitor` and `km proxy` hand their sessions to one background recorder per user and
    data directory (``km agent``); off: each records by itself (see ``recorder_process``)."""
    agent_idle: float = 300.0
    """Seconds the agent stays up with no session before it exits."""
    agent_transport: str = "auto"
    """How ``km monitor`` reaches the agent: ``unix`` (a socket only this user can open), ``tcp``
    (loopback, with a secret token from a file only this user can read), ``auto``: unix where
    the system has Unix sockets, else tcp (Windows)."""
    metrics_port: int | None = None
    """Serve Prometheus metrics of every session on 127.0.0.1:PORT (the agent's, or km monitor's)."""
    server_redact: bool = True
    """`km serve`: redact secrets left in uploaded events (the ingest backstop)."""
    server_analysis: bool = True
    """`km serve`: run every detector on uploaded events."""
    metrics_token: str | None = field(default=None, repr=False)
    """`km serve`: the bearer token Prometheus sends to read /metrics."""
    oidc_issuer: str | None = None
    """`km serve`: OpenID Connect single sign-on (all three of issuer, client id and secret, or none)."""
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    oidc_name: str = "OpenID Connect"
    oidc_scopes: str = "openid email profile"
    oidc_redirect_uri: str | None = None
    server_host: str = "127.0.0.1"
    """`km serve`: the address it listens on."""
    server_port: int = 8000
    server_max_body_mb: float = 10.0
    """`km serve`: the largest request body in MB, also after gunzip."""
    server_rate: float = 50.0
    """`km serve`: requests/s per key or signed-in user (burst twice that; 0: no limit)."""
    metrics_public: bool = False
    """`km serve`: serve /metrics without a token (private networks only)."""
    proxy_listen: str = "127.0.0.1:8800"
    """`km proxy`: HOST:PORT it listens on (port 0 picks a free one)."""
    proxy_idle_timeout: float = 600.0
    """`km proxy`: seconds without traffic after which a session is ended in the records."""
    proxy_max_sessions: int = 100
    """`km proxy`: sessions recorded at once at most (past it, the one idle longest is ended)."""
    proxy_header_timeout: float = 10.0
    """`km proxy`: seconds a client has to send a request's headers."""
    proxy_upstream_ca: str | None = None
    """`km proxy`: CA bundle (PEM file or directory) the upstream's certificate is verified with."""

    @property
    def uploads_enabled(self) -> bool:
        return bool(self.api_url and self.api_key)


@dataclass(frozen=True)
class Spec:
    """One setting: its one name in each place it can be given, and what it takes."""

    name: str
    """The field of :class:`Settings`."""
    section: str
    key: str
    """Where it sits in the config file: ``[section] key``."""
    env: str
    """Its ``KM_*`` environment variable."""
    flag: str
    """The command-line flag(s) that give it, or "" when there is none."""
    kind: str
    """What it takes (for the docs)."""
    help: str
    scope: str = "recording"
    """``recording`` (km monitor, km proxy and the commands that read the store), ``proxy`` (km
    proxy's own) or ``server`` (km serve)."""
    old_env: tuple[str, ...] = ()
    """Older names of the variable: still read, with a deprecation message (said once)."""
    secret: bool = False
    """Never shown or echoed back in an error (an API key, a client secret, a token)."""


BOOLEAN = "boolean"
SPECS: tuple[Spec, ...] = (
    Spec("db_url", "store", "url", "KM_DB", "`--db` (every command)", "store URL",
         "the store (local recordings, and the team server's database); default: SQLite in the data dir",
         scope="both", old_env=("KM_DATABASE_URL",)),
    Spec("exclude_ping", "monitor", "exclude_ping", "KM_EXCLUDE_PING", "`--exclude-ping` / `--include-ping`",
         BOOLEAN, "do not record ping requests and their replies"),
    Spec("include_methods", "monitor", "include_methods", "KM_INCLUDE_METHODS",
         "`--include-method` (repeatable)", "list of patterns (variable: comma-separated)",
         "record only methods matching one of these patterns (`tools/*`)"),
    Spec("exclude_methods", "monitor", "exclude_methods", "KM_EXCLUDE_METHODS",
         "`--exclude-method` (repeatable)", "list of patterns (variable: comma-separated)",
         "do not record methods matching one of these patterns"),
    Spec("payload_limit", "monitor", "payload_limit", "KM_PAYLOAD_LIMIT", "`--payload-limit`",
         "whole number ≥ 0", "bytes of each stored payload kept (0 = all); forwarded bytes never change"),
    Spec("grace_period", "monitor", "grace_period", "KM_GRACE_PERIOD", "`--grace-period` (`km monitor`)",
         "seconds ≥ 0", "seconds a server gets to exit after its stdin closes, and after SIGTERM"),
    Spec("policy", "monitor", "policy", "KM_POLICY", "`--policy`", "path (`~` expanded)",
         "a policy file (below); unset: the log-only default policy"),
    Spec("policy_on_error", "monitor", "policy_on_error", "KM_POLICY_ON_ERROR", "",
         "`refuse` (default) or `log`; empty means unset",
         "a policy that cannot be used stops km (`refuse`) or is reported and replaced by the default "
         "(`log`); the policy file's own `on_error` wins"),
    Spec("redact_pii", "monitor", "redact_pii", "KM_REDACT_PII", "`--redact-pii` / `--keep-pii`", BOOLEAN,
         "also redact personal data (e-mail, phone, cards, IBAN, SSN) in what is stored"),
    Spec("keep_request_state", "monitor", "keep_request_state", "KM_KEEP_REQUEST_STATE", "", BOOLEAN,
         "store a multi-round call's `requestState` as sent (default: as its sha256 hash; it is opaque "
         "and may carry what the server sealed into it)"),
    Spec("analysis", "monitor", "analysis", "KM_ANALYSIS", "", BOOLEAN,
         "security analysis and redaction of what is stored (false: no risk and NO redaction)"),
    Spec("recorder_process", "monitor", "recorder_process", "KM_RECORDER_PROCESS", "", BOOLEAN,
         "`km monitor` records in a child process (false: a thread in km's process)"),
    Spec("agent", "monitor", "agent", "KM_AGENT", "", BOOLEAN,
         "`km monitor` and `km proxy` hand their sessions to one background `km agent` per user and "
         "data directory (false: each `km monitor` or `km proxy` records by itself; a blocking "
         "policy decides in km's process either way)"),
    Spec("agent_idle", "monitor", "agent_idle", "KM_AGENT_IDLE", "", "seconds ≥ 0.1",
         "seconds the agent stays up with no session before it exits"),
    Spec("agent_transport", "monitor", "agent_transport", "KM_AGENT_TRANSPORT", "",
         "`auto`, `unix` or `tcp`",
         "how `km monitor` reaches the agent: a Unix socket only this user can open, or loopback TCP "
         "with a secret token from a file only this user can read; `auto`: unix where the system has "
         "Unix sockets, else tcp (Windows)"),
    Spec("metrics_port", "monitor", "metrics_port", "KM_METRICS_PORT", "`km monitor --metrics-port`",
         "port, 1–65535", "serve Prometheus metrics of every session on 127.0.0.1:PORT (the agent's)"),
    Spec("api_url", "sync", "api_url", "KM_API_URL", "`km sync --api-url`",
         "`http://` or `https://` URL; empty means unset",
         "team server (`km serve`) events are forwarded to; unset: none"),
    Spec("api_key", "sync", "api_key", "KM_API_KEY", "none (`km init --api-key` writes it)",
         "string; empty means unset", "its ingest key", secret=True),
    Spec("upload_batch_size", "sync", "batch_size", "KM_UPLOAD_BATCH_SIZE",
         "none (`km init --upload-batch-size`)", "whole number ≥ 1", "events per upload request at most"),
    Spec("upload_interval", "sync", "interval", "KM_UPLOAD_INTERVAL", "none (`km init --upload-interval`)",
         "seconds > 0", "seconds between uploads while km monitor runs"),
    Spec("otel", "export", "otel", "KM_OTEL", "`--otel` / `--no-otel`", BOOLEAN,
         "export OpenTelemetry spans and metrics (`OTEL_EXPORTER_OTLP_*` say where)"),
    Spec("otel_payloads", "export", "otel_payloads", "KM_OTEL_PAYLOADS", "`--otel-payloads`", BOOLEAN,
         "also put redacted arguments and results on tools/call spans"),
    Spec("otel_legacy_names", "export", "otel_legacy_names", "KM_OTEL_LEGACY_NAMES", "`--otel-legacy-names`",
         BOOLEAN, "also put the older JSON-RPC attribute names (`rpc.*`) on spans"),
    Spec("server_redact", "serve", "redact", "KM_SERVER_REDACT", "`km serve --redact` / `--no-redact`",
         BOOLEAN, "redact secrets left in uploaded events (off: trust the clients)", scope="server"),
    Spec("server_analysis", "serve", "analysis", "KM_SERVER_ANALYSIS",
         "`km serve --analysis` / `--no-analysis`",
         BOOLEAN, "check uploads for secrets, personal data, dangerous calls and tool poisoning",
         scope="server"),
    Spec("metrics_token", "serve", "metrics_token", "KM_METRICS_TOKEN", "`km serve --metrics-token`",
         "string; empty means unset", "bearer token Prometheus sends to read `/metrics`", scope="server",
         secret=True),
    Spec("oidc_issuer", "serve", "oidc_issuer", "KM_OIDC_ISSUER", "`km serve --oidc-issuer`",
         "issuer URL; empty means off", "OpenID Connect provider for single sign-on", scope="server"),
    Spec("oidc_client_id", "serve", "oidc_client_id", "KM_OIDC_CLIENT_ID", "`km serve --oidc-client-id`",
         "string", "client id registered at the provider", scope="server"),
    Spec("oidc_client_secret", "serve", "oidc_client_secret", "KM_OIDC_CLIENT_SECRET",
         "`km serve --oidc-client-secret`", "string", "client secret (prefer the variable over the flag)",
         scope="server", secret=True),
    Spec("oidc_name", "serve", "oidc_name", "KM_OIDC_NAME", "`km serve --oidc-name`", "string",
         'provider name on the login page ("Sign in with <name>")', scope="server"),
    Spec("oidc_scopes", "serve", "oidc_scopes", "KM_OIDC_SCOPES", "`km serve --oidc-scopes`",
         "space-separated, must include `openid`", "scopes requested (they must give the email claim)",
         scope="server"),
    Spec("oidc_redirect_uri", "serve", "oidc_redirect_uri", "KM_OIDC_REDIRECT_URI",
         "`km serve --oidc-redirect-uri`", "URL",
         "callback registered at the provider; default: <URL the browser used>/auth/oidc/callback",
         scope="server"),
    Spec("server_host", "serve", "host", "KM_SERVER_HOST", "`km serve --host`", "address",
         "address `km serve` listens on", scope="server"),
    Spec("server_port", "serve", "port", "KM_SERVER_PORT", "`km serve --port`", "port, 0–65535",
         "port `km serve` listens on", scope="server"),
    Spec("server_max_body_mb", "serve", "max_body_mb", "KM_SERVER_MAX_BODY_MB", "`km serve --max-body-mb`",
         "MB > 0", "largest request body, also after gunzip (larger: `413`)", scope="server"),
    Spec("server_rate", "serve", "rate", "KM_SERVER_RATE", "`km serve --rate`", "requests/s ≥ 0",
         "requests per second per key or signed-in user, burst twice that, shared by every process "
         "(0: no limit)", scope="server"),
    Spec("metrics_public", "serve", "metrics_public", "KM_METRICS_PUBLIC", "`km serve --metrics-public`",
         BOOLEAN, "serve `/metrics` without a token (private networks only)", scope="server"),
    Spec("proxy_listen", "proxy", "listen", "KM_PROXY_LISTEN", "`km proxy --listen`", "HOST:PORT",
         "address `km proxy` listens on (port 0 picks a free one)", scope="proxy"),
    Spec("proxy_idle_timeout", "proxy", "idle_timeout", "KM_PROXY_IDLE_TIMEOUT", "`km proxy --idle-timeout`",
         "seconds ≥ 0.1", "seconds without traffic after which a session is ended in the records",
         scope="proxy"),
    Spec("proxy_max_sessions", "proxy", "max_sessions", "KM_PROXY_MAX_SESSIONS", "`km proxy --max-sessions`",
         "whole number ≥ 1", "sessions recorded at once at most; past it, the one idle longest is ended",
         scope="proxy"),
    Spec("proxy_header_timeout", "proxy", "header_timeout", "KM_PROXY_HEADER_TIMEOUT",
         "`km proxy --header-timeout`", "seconds ≥ 0.1",
         "seconds a client has to send a request's headers; slower connections are closed", scope="proxy"),
    Spec("proxy_upstream_ca", "proxy", "upstream_ca", "KM_PROXY_UPSTREAM_CA", "`km proxy --upstream-ca`",
         "path; empty means unset", "CA bundle (PEM file or directory) to verify the upstream's TLS with",
         scope="proxy"),
)  # fmt: skip
BY_NAME = {spec.name: spec for spec in SPECS}
ENV = {spec.name: spec.env for spec in SPECS}
SECTIONS = {spec.name: (spec.section, spec.key) for spec in SPECS}
SECRETS = frozenset(spec.name for spec in SPECS if spec.secret)
"""Settings never echoed back in error messages."""
UNSET_WHEN_EMPTY = frozenset(
    {"api_url", "api_key", "policy_on_error", "metrics_token", "oidc_issuer", "oidc_client_id",
     "oidc_client_secret", "oidc_redirect_uri", "proxy_upstream_ca"}
)  # fmt: skip
"""An empty value (``KM_API_URL=``) means unset: forwarding, the token, sign-in are off."""
NUMBERS: dict[str, tuple[type, float, float | None]] = {
    "agent_idle": (float, 0.1, None),
    "metrics_port": (int, 1, 65535),
    "server_port": (int, 0, 65535),
    "server_max_body_mb": (float, 0.001, None),
    "server_rate": (float, 0, None),
    "proxy_idle_timeout": (float, 0.1, None),
    "proxy_max_sessions": (int, 1, None),
    "proxy_header_timeout": (float, 0.1, None),
}
"""Numeric settings: (type, lowest, highest or None), both allowed."""


def _number(name: str, value: Any) -> float | int:
    kind, low, high = NUMBERS[name]
    if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected a {'whole number' if kind is int else 'number'}, got {value!r}")
    number: float | int = int(value) if kind is int else float(value)
    if number < low or (high is not None and number > high):
        raise ValueError(f"must be {low:g} or more" if high is None else f"must be {low:g}–{high:g}")
    return number


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
        if name in NUMBERS:
            return _number(name, value)
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
        if name in UNSET_WHEN_EMPTY and name != "policy_on_error":
            if value is None or (isinstance(value, str) and not value.strip()):
                return None  # an empty KM_API_URL / KM_API_KEY turns forwarding off
            if not isinstance(value, str):
                raise ValueError(
                    "expected a string" if name in SECRETS else f"expected a string, got {value!r}"
                )
            value = value.strip()
            if name == "api_url":
                if not value.startswith(("http://", "https://")):
                    raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
                value = value.rstrip("/")
            return value
        if name == "agent_transport":
            if value not in ("auto", "unix", "tcp"):
                raise ValueError(f"expected 'auto', 'unix' or 'tcp', got {value!r}")
            return value
        if name == "policy_on_error":
            if value is None or (isinstance(value, str) and not value.strip()):
                return None
            if value not in ("refuse", "log"):
                raise ValueError(f"expected 'refuse' or 'log', got {value!r}")
            return value
        if value is not None and not isinstance(value, str):
            raise ValueError("expected a string" if name in SECRETS else f"expected a string, got {value!r}")
        if name in ("oidc_name", "oidc_scopes", "server_host", "proxy_listen") and not (value or "").strip():
            raise ValueError("must not be empty")
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: invalid value for {name}: {exc}") from None


def read_file(path: Path | None = None) -> dict[str, Any]:
    path = path or paths.config_file()
    if not path.exists():
        return {}
    try:
        import tomllib  # here: a relay without a config file never loads it (~0.4 MiB)

        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    values: dict[str, Any] = {}
    for name, (section, key) in SECTIONS.items():
        table = data.get(section, {})
        if isinstance(table, dict) and key in table:
            values[name] = _coerce(name, table[key], f"config file {path} [{section}] {key}")
    return values


DEFAULT = "default"


def _deprecated(message: str, key: str) -> None:
    """Said once per process. ``logging`` is imported here, not at the top: every relay resolves
    the settings, and none needs it otherwise (~0.2 MiB of its RSS)."""
    import logging

    from .log import once

    logging.getLogger(__name__).warning(message, extra=once(key))


def _env(spec: Spec) -> tuple[str, str] | None:
    """(variable, value) of the setting from the environment: its name, else an older one (said
    once on stderr, as deprecated)."""
    for old in spec.old_env:
        if old in os.environ:
            ignored = " (ignored: it is set too)" if spec.env in os.environ else ""
            _deprecated(f"km: {old} is deprecated; use {spec.env}{ignored}", f"deprecated:{old}")
    if spec.env in os.environ:
        return spec.env, os.environ[spec.env]
    for old in spec.old_env:
        if old in os.environ:
            return old, os.environ[old]
    return None


def flag_origin(spec: Spec) -> str:
    """How an error names a setting given on the command line."""
    flags = re.findall(r"--[a-z][a-z-]*", spec.flag)
    return flags[0] if flags and not spec.flag.startswith("none") else f"--{spec.name}"


def resolve(
    overrides: dict[str, Any] | None = None, path: Path | None = None
) -> tuple[Settings, dict[str, str]]:
    """Resolve settings, flags > environment > config file > defaults, and say where each came
    from. ``overrides`` are command-line values (None means not given)."""
    path = path or paths.config_file()
    values = read_file(path)
    origins = {name: f"config file {path} [{SECTIONS[name][0]}] {SECTIONS[name][1]}" for name in values}
    for spec in SPECS:
        given = _env(spec)
        if given is not None and not (spec.scope == "server" and not given[1]):
            var, text = given  # (an empty variable of km serve's means unset, as it always did)
            origins[spec.name] = f"environment variable {var}"
            values[spec.name] = _coerce(spec.name, text, origins[spec.name])
    for name, value in (overrides or {}).items():
        if value is not None and value != () and name in BY_NAME:
            origins[name] = flag_origin(BY_NAME[name])
            values[name] = _coerce(name, list(value) if isinstance(value, tuple) else value, origins[name])
    return Settings(**values), {spec.name: origins.get(spec.name, DEFAULT) for spec in SPECS}


def load(overrides: dict[str, Any] | None = None, path: Path | None = None) -> Settings:
    """Resolve settings. ``overrides`` are command-line values (None means not given)."""
    return resolve(overrides, path)[0]


def shown(name: str, value: Any) -> str:
    """A setting's value as `km config` shows it: a secret only as set or not."""
    if BY_NAME[name].secret:
        return "(set, hidden)" if value else "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value) if value else "(none)"
    return "(unset)" if value is None else str(value)


def markdown_table() -> str:
    """The table of every setting in docs/configuration.md (kept equal by tests/test_settings.py)."""
    rows = [
        "| config file | variable | flag | takes | default | what it does |",
        "|---|---|---|---|---|---|",
    ]
    defaults = Settings()
    for spec in SPECS:
        variable = f"`{spec.env}`" + "".join(f" (older: `{old}`)" for old in spec.old_env)
        default = getattr(defaults, spec.name)
        rows.append(
            f"| `[{spec.section}] {spec.key}` | {variable} | {spec.flag or 'none'} | {spec.kind} | "
            f"{'' if default is None else '`' + shown(spec.name, default) + '`'} | {spec.help} |"
        )
    return "\n".join(rows) + "\n"


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
    defaults = Settings()
    for name, value in asdict(settings).items():
        if value is None or (BY_NAME[name].scope in ("server", "proxy") and value == getattr(defaults, name)):
            continue  # km serve's and km proxy's settings are written only when they differ from the default
        section, key = SECTIONS[name]
        data.setdefault(section, {})[key] = value
    import tomli_w  # (only to write: every km monitor reads its settings, none writes them)

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
