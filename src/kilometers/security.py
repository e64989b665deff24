"""The security stage of the pipeline and the policy that can block requests.

:class:`SecurityStage` runs on the recorder thread between capture and the sinks: it scores
every event and redacts secrets (and PII when configured) in every stored text: the payload,
the event's other text fields (:data:`EVENT_FIELDS`) and the session's (:data:`SESSION_FIELDS`),
*before any sink sees them*, so nothing unredacted is stored, uploaded or exported. It keeps
each server's pinned tool definitions in the store, keyed by what the server is
(:func:`server_identity`), not by the name it runs under.

:class:`Policy` (a TOML file, ``km monitor --policy FILE``) says what to do: ``log`` (the
default: findings only) or ``block``. In block mode, :class:`Gate` runs on the forwarding
path for client→server lines only and answers a blocked ``tools/call`` itself with a JSON-RPC
error (code :data:`BLOCKED_CODE`) that names the rule; the request never reaches the server.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import tomllib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from .analysis import RULES, AnalysisConfig, Analyzer, Finding, Pins, canonical_json, redact
from .analysis.config import SettingError, boolean, did_you_mean, strings, table
from .analysis.list_order import TOOLS_REORDERED_RULE
from .analysis.mcp_headers import HEADER_MISMATCH_RULE
from .analysis.names import first_match
from .analysis.redact import PARTIAL_RULE, REDACTED_MARK, omits_unscanned, redact_findings
from .jsonlimits import TOO_DEEP_RULE, value_too_deep
from .jsonrpc import UNPARSEABLE_RULE, LineFramer, may_call, recover, recovered_fields, unescaped
from .model import Event, Session

_log = logging.getLogger(__name__)

BLOCKED_CODE = -32001
BLOCKED_PREFIX = "Blocked by km policy"
LEVEL_RANK = {"none": 0, "info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class PolicyError(ValueError):
    """The policy file cannot be used: the message names the file, the line when known, and
    what to fix. ``on_error`` is what the file itself says about that, when it can be read."""

    def __init__(self, message: str, on_error: str | None = None) -> None:
        super().__init__(message)
        self.on_error = on_error


ON_ERROR = ("refuse", "log")
"""What a policy that cannot be used does: ``refuse`` (the default) stops km before the server
starts; ``log`` says so on stderr and goes on with the default (log-only) policy."""
POLICY_KEYS = ("mode", "block_at", "deny_tools", "allow_tools", "block_changed_tools", "on_error", "analysis")
PROTOCOL_RULES = frozenset({HEADER_MISMATCH_RULE, TOOLS_REORDERED_RULE})
"""Findings added on capture (before the stage) that a policy may disable or re-rate."""
EXTRA_RULES = frozenset({PARTIAL_RULE, UNPARSEABLE_RULE, TOO_DEEP_RULE, *PROTOCOL_RULES})
"""Rule ids km reports besides the analyzer's :data:`RULES`."""


@dataclass
class Policy:
    mode: str = "log"
    """``log`` (record findings) or ``block`` (also refuse matching tool calls)."""
    block_at: str | None = None
    """Block tool calls whose own risk level is at least this (``medium``, ``high``, ``critical``)."""
    deny_tools: list[str] = field(default_factory=list)
    """``tool`` or ``server:tool`` globs that are never allowed (compared by :func:`name_key`)."""
    allow_tools: list[str] = field(default_factory=list)
    """When set, only these ``tool`` / ``server:tool`` globs are allowed (compared exactly)."""
    block_changed_tools: bool = False
    """Block a tool whose definition changed since it was pinned, until `km pins approve`."""
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    on_error: str | None = None
    """What km does when this file cannot be used (see :data:`ON_ERROR`); None: not said here
    (``[monitor] policy_on_error`` decides, by default ``refuse``)."""

    @classmethod
    def load(cls, path: Path) -> Policy:
        """The policy in ``path``; :class:`PolicyError` names the file, line and problem."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(f"policy file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # tomllib says where: "Invalid value (at line 3, column 8)" or "(at end of document)"
            problem, _, where = str(exc).rpartition(" (at ")
            where = where.rstrip(")")
            if not problem or where.startswith("end of"):
                where = f"line {len(text.splitlines()) or 1} (end of file)"
            raise PolicyError(f"policy file {path}, {where}: not valid TOML: {problem or exc}") from None
        try:
            return cls.from_dict(data)
        except SettingError as exc:
            line = _line_of(text, exc.key)
            at = f", line {line}" if line else ""
            on_error = data.get("on_error")
            raise PolicyError(
                f"policy file {path}{at}: {exc}", on_error if on_error in ON_ERROR else None
            ) from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """A policy from its decoded TOML; :class:`SettingError` names the key that is wrong."""
        for key in data:
            if key not in POLICY_KEYS:
                raise SettingError((key,), "is not a policy setting" + did_you_mean(key, POLICY_KEYS))
        on_error = data.get("on_error")
        if on_error is not None and on_error not in ON_ERROR:
            raise SettingError(("on_error",), f"must be 'refuse' or 'log', not {on_error!r}")
        mode = data.get("mode", "log")
        if mode not in ("log", "block"):
            raise SettingError(("mode",), f"must be 'log' or 'block', not {mode!r}")
        block_at = data.get("block_at")
        if block_at is not None and block_at not in ("info", "low", "medium", "high", "critical"):
            raise SettingError(
                ("block_at",), f"must be info, low, medium, high or critical, not {block_at!r}"
            )
        deny_tools = strings(data.get("deny_tools", []), ("deny_tools",))
        allow_tools = strings(data.get("allow_tools", []), ("allow_tools",))
        block_changed_tools = boolean(data.get("block_changed_tools", False), ("block_changed_tools",))
        try:
            analysis = AnalysisConfig.from_dict(table(data.get("analysis", {}), ()))
        except SettingError as exc:
            raise exc.within("analysis") from None
        for key, rules in (("disabled_rules", analysis.disabled_rules),
                           ("severity_overrides", analysis.severity_overrides)):  # fmt: skip
            for rule in rules:
                if not _known_rule(rule):
                    raise SettingError(
                        ("analysis", key), f"names an unknown rule {rule!r}" + did_you_mean(rule, RULES)
                    )
        # denied tools are findings in log mode too (rule policy.denied_tool)
        bare = tuple(p.split(":", 1)[-1] for p in deny_tools)
        analysis = dataclasses.replace(analysis, deny_tools=analysis.deny_tools + bare)
        return cls(mode, block_at, deny_tools, allow_tools, block_changed_tools, analysis, on_error)

    def summary(self) -> str:
        """One line saying what the policy does."""
        parts = [f"mode = {self.mode!r}"]
        if self.block_at:
            parts.append(f"block_at = {self.block_at!r}")
        for key in ("deny_tools", "allow_tools"):
            if getattr(self, key):
                parts.append(f"{key} = {getattr(self, key)!r}")
        if self.block_changed_tools:
            parts.append("block_changed_tools")
        if self.on_error:
            parts.append(f"on_error = {self.on_error!r}")
        return ", ".join(parts)

    def tool_denied(self, server: str, tool: str) -> str | None:
        """The reason a call of ``tool`` on ``server`` is refused by the lists, or None. Deny
        patterns catch case, width and look-alike variants of a name (:func:`name_key`); an
        allow pattern must match the name as written."""
        names = (tool, f"{server}:{tool}")
        pattern = first_match(names, self.deny_tools)
        if pattern is not None:
            return f"tool {tool!r} matches deny pattern {pattern!r}"
        if self.allow_tools and not any(fnmatch.fnmatchcase(n, p) for p in self.allow_tools for n in names):
            return f"tool {tool!r} is not in the allow list"
        return None


def _policy_applied(risk: dict[str, Any] | None, config: AnalysisConfig) -> list[Finding]:
    """Capture's findings; its protocol findings as the policy says (disabled, re-rated)."""
    out = []
    for data in (risk or {}).get("findings") or ():
        f = Finding.from_dict(data)
        if f.rule in PROTOCOL_RULES:
            if not config.rule_enabled(f.rule):
                continue
            f = dataclasses.replace(f, severity=config.severity_for(f.rule, f.severity))
        out.append(f)
    return out


def _known_rule(rule: str) -> bool:
    """A rule id, or a prefix of some (``"pii"``, ``"secret."``)."""
    if rule in RULES or rule in EXTRA_RULES:
        return True
    prefix = rule.rstrip(".") + "."
    return rule != "" and any(r.startswith(prefix) for r in (*RULES, *EXTRA_RULES))


_TOML_KEY = re.compile(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""")
_TOML_TABLE = re.compile(r"^\[\[?([^\]]*)\]")
_TOML_ASSIGN = re.compile(rf"^((?:{_TOML_KEY.pattern})(?:\s*\.\s*(?:{_TOML_KEY.pattern}))*)\s*=")


def _key_path(text: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _TOML_KEY.findall(text))


def _line_of(text: str, key: tuple[str, ...]) -> int | None:
    """The line of ``text`` (TOML) where ``key`` is set, or its table opens: the first line
    whose table and key path begin with it (or with its outer keys, for a key inside an
    inline table). None when not found."""
    for size in range(len(key), 0, -1):
        wanted: tuple[str, ...] = key[:size]
        current: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if table_match := _TOML_TABLE.match(stripped):
                current = _key_path(table_match.group(1))
                if current[:size] == wanted:
                    return number
            elif (assign := _TOML_ASSIGN.match(stripped)) and (current + _key_path(assign.group(1)))[
                :size
            ] == wanted:
                return number
    return None


class SecurityStage:
    def __init__(self, policy: Policy, db_url: str | None = None) -> None:
        self.policy = policy
        self.db_url = db_url
        self.analyzer: Analyzer | None = None
        self.detectors: list[Any] = []
        self.changed_tools: set[str] = set()
        """Tools whose definition changed since pinned (read by the Gate on the forwarding path)."""
        self.lock = threading.Lock()
        self._pins_saved: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._server = ""
        self._key = ""
        self._info: dict[str, Any] = {}
        self._replaces: list[str] = []
        """Keys of the rows from before pins were keyed by identity that this server takes over."""
        self._fields: dict[str, str] = {}
        self._session_seen: bytes | None = None
        """The session's stored fields as last redacted (or found clean), as JSON: a batch whose
        session is unchanged is not redacted again (it costs ~40 µs, per batch)."""

    # -- pins in the store ----------------------------------------------------------------------

    def _engine(self) -> Any:
        from .store import db

        return db.open_store(self.db_url)

    def _load_pins(self, session: Session) -> None:
        """This server's pins and the tool names of the other servers of its client, read when
        the first ``tools/list`` goes by (the server has said who it is at initialize by then)."""
        from sqlalchemy import select

        from .store.schema import LOCAL_ORG, pins

        assert self.analyzer is not None
        identity = server_identity(session)
        self._key = identity_key(identity)
        client = (session.client or {}).get("name")
        self._info = {"identity": identity, "names": [self._server], "clients": []}
        if isinstance(client, str):
            self._info["clients"] = [client]
        try:
            engine = self._engine()
            with engine.connect() as conn:
                rows = conn.execute(
                    select(pins.c.server_key, pins.c.server, pins.c.info, pins.c.data).where(
                        pins.c.org_id == LOCAL_ORG
                    )
                ).all()
            engine.dispose()
        except Exception as exc:
            _log.warning(f"km: cannot read pinned tools ({exc}); pinning starts afresh")
            return
        mine: dict[str, Any] | None = None
        named: dict[str, Any] | None = None
        others: dict[str, list[str]] = {}
        labels: dict[str, str] = {}
        for key, name, info_text, data in rows:
            state = orjson.loads(data)
            info = orjson.loads(info_text) if info_text else None
            if key == self._key:
                mine = state
                self._pins_saved = (state, info or {})
                self._info = _merged_info(info or {}, self._info)
            elif info is None:  # pinned by name, before identities: this server if the name is its
                if name == self._server:
                    named = state
                    self._replaces.append(key)
            elif client is None or not info.get("clients") or client in info["clients"]:
                tools = Pins.from_state(state).to_dict()
                others[key] = [t for t, v in tools.items() if not (isinstance(v, dict) and v.get("removed"))]
                labels[key] = name
        self.analyzer.pins = Pins.from_state(mine if mine is not None else named)
        self.analyzer.other_servers = others
        self.analyzer.server_labels = labels

    def save_pins(self) -> None:
        if self.analyzer is None or not self._key:
            return
        current = self.analyzer.pins.state()
        if (current, self._info) == self._pins_saved or not current["pins"]:
            return
        from sqlalchemy import delete

        from .store.db import upsert
        from .store.schema import LOCAL_ORG, pins

        try:
            engine = self._engine()
            with engine.begin() as conn:
                stmt = upsert(conn, pins).values(
                    org_id=LOCAL_ORG,
                    server_key=self._key,
                    server=self._server,
                    info=orjson.dumps(self._info).decode(),
                    data=orjson.dumps(current).decode(),
                    updated_ns=time.time_ns(),
                )
                update = {c: stmt.excluded[c] for c in ("server", "info", "data", "updated_ns")}
                conn.execute(stmt.on_conflict_do_update(index_elements=["org_id", "server_key"], set_=update))
                if self._replaces:
                    conn.execute(
                        delete(pins).where(pins.c.org_id == LOCAL_ORG, pins.c.server_key.in_(self._replaces))
                    )
            engine.dispose()
            self._pins_saved = (current, self._info)
            self._replaces = []
        except Exception as exc:
            _log.warning(f"km: cannot save pinned tools: {exc}")

    def finish(self) -> None:
        self.save_pins()

    def _plugin_findings(self, e: Event) -> list[dict[str, Any]]:
        decoded = e.decoded()  # the (redacted) message decoded at capture
        if decoded is not None:
            message = decoded.value
        else:  # an event that was not captured by this km (or whose payload was cut)
            try:
                message = orjson.loads(e.payload or "null")
            except orjson.JSONDecodeError:
                message = e.payload
        out: list[dict[str, Any]] = []
        for detector in self.detectors:
            try:
                found = detector(e.direction, e.kind, e.method, e.tool, message)
            except Exception as exc:  # a plugin's bug must not stop the analysis
                _log.warning(f"km: plugin detector {detector!r} failed: {exc!r}")
                continue
            out.extend(
                f
                for f in found
                if isinstance(f, dict) and isinstance(f.get("rule"), str) and not value_too_deep(f)
            )
        return out

    def tools_changed(self) -> frozenset[str]:
        """The tools whose definition changed since pinned, as of the last listing processed
        (read from the forwarding path: see :class:`Gate`)."""
        with self.lock:
            return frozenset(self.changed_tools)

    # -- the stage ------------------------------------------------------------------------------

    def redact_session(self, session: Session) -> None:
        """Redact the session's stored fields now (its command line), before anything writes it."""
        self._redact_session(session, self.policy.analysis)

    def process(self, session: Session, events: Sequence[Event]) -> None:
        config = self.policy.analysis
        self._redact_session(session, config)
        if self.analyzer is None:
            self.analyzer = Analyzer(self.policy.analysis)
            from .plugins import plugin_detectors

            self.detectors = plugin_detectors()
        analyzer = self.analyzer
        if not self._key and any(e.method == "tools/list" for e in events):
            self._server = session.name or (session.server or {}).get("name") or "server"
            self._load_pins(session)
        partial = omits_unscanned(config)
        listed = False
        for e in events:
            risk, redacted = analyzer.analyze_event(e, redact=True)
            if redacted is not None:
                e.payload = redacted
                # text past the scan bound was dropped from the payload: it is no longer whole
                e.truncated = e.truncated or (partial and any(f.rule == PARTIAL_RULE for f in risk.findings))
            self._redact_fields(e, config)
            # capture's own findings, the analysis's, plugins' and a block: one scale decides the level
            extra = _policy_applied(e.risk, config)
            captured = bool(e.risk and e.risk.get("findings"))
            if self.detectors and e.payload is not None:
                extra.extend(Finding.from_dict(f) for f in self._plugin_findings(e))
            if (
                e.kind == "error"
                and e.error_code == BLOCKED_CODE
                and (e.error_message or "").startswith(BLOCKED_PREFIX)
            ):
                extra.append(Finding("policy.blocked", "high", "", e.error_message or ""))
            # the analysis redacted its own messages; these may quote a tool's name as sent
            findings = redact_findings(extra, config) if extra else extra
            findings.extend(risk.findings)
            if e.mcp_headers:  # they mirror the body's values: kept only as the payload is
                headers = redact(e.mcp_headers, config)
                e.mcp_headers = headers.message
                findings.extend(f for f in headers.findings if f not in risk.findings)
            if findings:
                e.risk = config.scoring.risk(findings).to_dict()
            elif captured:  # the policy disabled every finding capture had added
                e.risk = None
            listed = listed or e.method == "tools/list"
        if listed:
            with self.lock:
                self.changed_tools = set(analyzer.pins.pending)
            self.save_pins()

    def _redact_fields(self, e: Event, config: AnalysisConfig) -> None:
        """Secrets in an event's text fields (``?access_token=ghp_...`` in a resource URI, a tool
        name, an error message, a string JSON-RPC id); values not seen before in one pass."""
        cache = self._fields
        values = [getattr(e, a) for a in EVENT_FIELDS]
        misses = [v for v in values if isinstance(v, str) and v not in cache]
        if misses:
            if len(cache) > FIELD_CACHE:
                cache.clear()
            cache.update(zip(misses, redact(misses, config).message, strict=True))
        message = e.message
        for attr, value in zip(EVENT_FIELDS, values, strict=True):
            if isinstance(value, str) and cache[value] != value:
                setattr(e, attr, cache[value])
                if message is not None and attr in MESSAGE_FIELDS:  # the decoded message says the same
                    setattr(message, attr, cache[value])

    def _redact_session(self, session: Session, config: AnalysisConfig) -> None:
        """Secrets in what is stored of the session (the command line, ``--token ghp_...``, and the
        client's and server's info and capabilities) are redacted like payloads, when they changed
        since the last time (capture learns them from ``initialize``; a host may set them)."""
        fields = {a: getattr(session, a) for a in SESSION_FIELDS}
        seen = _json_or_none(fields)
        if seen is not None and seen == self._session_seen:
            return
        cleaned = redact(fields, config)
        if cleaned.changed:
            for attr, value in cleaned.message.items():
                setattr(session, attr, value)
            seen = _json_or_none(cleaned.message)
        self._session_seen = seen


def _json_or_none(value: Any) -> bytes | None:
    """``value`` as JSON (a snapshot that later changes in place do not alter), or None."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return None


def server_identity(session: Session) -> dict[str, Any]:
    """What a server is, whatever it is called: for stdio, its command line (the executable
    found on ``PATH`` and every argument naming an existing file or directory made absolute,
    symbolic links resolved, from the session's working directory); for HTTP, its URL (scheme
    and host in lower case, no default port, no trailing ``/``, no fragment). With the name in
    the ``serverInfo`` it gave at initialize, not its version: an upgrade that changes a tool
    is a change of the same server."""
    info = session.server or {}
    name = info.get("name") if isinstance(info.get("name"), str) else None
    if session.transport == "stdio":
        return {"command": _normal_command(session.command, session.cwd), "server_name": name}
    return {"url": _normal_url(session.command[0] if session.command else ""), "server_name": name}


def identity_key(identity: dict[str, Any]) -> str:
    """The key of a server's pins: the SHA-256 of its identity's canonical JSON."""
    return hashlib.sha256(canonical_json(identity)).hexdigest()


def _normal_command(command: Sequence[str], cwd: str) -> list[str]:
    if not command:
        return []
    exe = command[0] if os.sep in command[0] else shutil.which(command[0]) or command[0]
    return [_real_path(exe, cwd) if os.sep in exe else exe, *(_real_path(a, cwd) for a in command[1:])]


def _real_path(arg: str, cwd: str) -> str:
    """``arg`` as an absolute path without symbolic links when it names an existing file."""
    path = os.path.join(cwd, arg)
    return os.path.realpath(path) if arg and not arg.startswith("-") and os.path.exists(path) else arg


def _normal_url(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and (parts.scheme.lower(), port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), host, parts.path.rstrip("/") or "/", parts.query, ""))


def _merged_info(stored: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The stored info with this session's name and client added (names: most recent last)."""
    names = [n for n in stored.get("names") or [] if n not in now["names"]] + now["names"]
    clients = list(dict.fromkeys([*(stored.get("clients") or []), *now["clients"]]))
    return {**now, "names": names, "clients": clients}


SESSION_FIELDS = ("command", "cwd", "name", "client", "server", "capabilities", "protocol_version")
"""Every text field of a session that is stored (and uploaded)."""
EVENT_FIELDS = ("method", "tool", "resource_uri", "prompt_name", "error_message", "jsonrpc_id")
"""Every text field of an event that is stored besides its payload."""
MESSAGE_FIELDS = frozenset(EVENT_FIELDS) - {"error_message"}
"""The fields an event shares with its decoded :class:`~kilometers.model.Message`."""
FIELD_CACHE = 4096
"""Field values remembered with their redacted form (methods, tools and URIs repeat)."""


def _fields(message: dict[str, Any], key: str) -> list[Any]:
    """The values of ``key`` in a decoded object, also under other letter cases (some JSON
    decoders match field names case-insensitively)."""
    return [v for k, v in message.items() if k == key or k.lower() == key]


def _is_call(message: Any) -> bool:
    return isinstance(message, dict) and "tools/call" in _fields(message, "method")


def _error_line(message: dict[str, Any], text: str) -> bytes:
    """The JSON-RPC error answering ``message``; empty for a notification (nothing to answer)."""
    ids = _fields(message, "id")
    if not ids:
        return b""
    error = {"code": BLOCKED_CODE, "message": text}
    try:
        return orjson.dumps({"jsonrpc": "2.0", "id": ids[-1], "error": error})
    except orjson.JSONEncodeError:  # an id that cannot be written back as JSON (a lone surrogate)
        return orjson.dumps({"jsonrpc": "2.0", "id": None, "error": error})


class Gate:
    """Block mode, on the client→server forwarding path: holds bytes until a line is complete,
    then forwards it or answers it. It decides on the message as a server would read it; only
    ``tools/call`` requests (alone or in a batch) are ever refused, and any that km cannot parse
    strictly is refused whatever its tool."""

    def __init__(self, policy: Policy, tools_changed: Callable[[], Collection[str]], server: str) -> None:
        """``tools_changed``: the tools changed since pinned, once the recorder has processed what
        the server said so far (a tools/list it just sent), wherever it runs: this process's
        session (``SessionHandle.tools_changed``) or the user's agent (``AgentLink.tools_changed``).
        Only called with ``block_changed_tools``."""
        self.policy = policy
        self.tools_changed = tools_changed
        self.server = server
        self.framer = LineFramer()
        self._analyzer: Analyzer | None = None

    @property
    def analyzer(self) -> Analyzer:
        """The analysis of a call (``block_at`` only: made on first use)."""
        if self._analyzer is None:
            self._analyzer = Analyzer(self.policy.analysis)
        return self._analyzer

    def feed(self, data: bytes) -> tuple[bytes, list[bytes]]:
        """(bytes to forward to the server, JSON-RPC error lines to send back to the client)."""
        forward: list[bytes] = []
        answers: list[bytes] = []
        for line in self.framer.feed(data):
            answer = self.check(line)
            if answer is None:
                forward.append(line + b"\n")
            elif answer:
                answers.append(answer + b"\n")
        return b"".join(forward), answers

    def flush(self) -> tuple[bytes, list[bytes]]:
        """End of stream: the last line, without its missing newline, decided like the others."""
        rest = self.framer.flush()
        if rest is None:
            return b"", []
        answer = self.check(rest)
        if answer is None:
            return rest, []
        return b"", [answer + b"\n"] if answer else []

    def check(self, message: bytes) -> bytes | None:
        """None to forward one message (a line or an HTTP body) as is; else it is refused, and
        this is its answer (a JSON-RPC error, a batch of them, or empty: nothing to answer)."""
        if not may_call(message):
            return None
        try:
            decoded = orjson.loads(message)
        except orjson.JSONDecodeError:
            return self._unparseable(message)
        if isinstance(decoded, list):
            return self._batch(decoded, strict=True)
        return self._single(decoded, strict=True)

    def _unparseable(self, line: bytes) -> bytes | None:
        """A line orjson refuses: decided as a lenient server reads it; refused when it is (or,
        read by no parser at all, may be) a tools/call."""
        decoded = recover(line)
        if isinstance(decoded, list):
            return self._batch(decoded, strict=False)
        if decoded is not None:
            return self._single(decoded, strict=False)
        if "tools/call" not in unescaped(line):
            return None
        _, _, jsonrpc_id = recovered_fields(line)
        request = {"id": jsonrpc_id} if jsonrpc_id is not None else {}
        return _error_line(request, f"{BLOCKED_PREFIX}: a tools/call that is not valid JSON")

    def _single(self, message: Any, strict: bool) -> bytes | None:
        if not _is_call(message):
            return None
        reason = self._reason(message) if strict else "a tools/call that is not strict JSON cannot be checked"
        return None if reason is None else _error_line(message, f"{BLOCKED_PREFIX}: {reason}")

    def _batch(self, batch: list[Any], strict: bool) -> bytes | None:
        """A batch with a refused call is not sent at all: the refused calls get the gate's
        error and the other requests one saying they were not sent."""
        refused = [(m, a) for m in batch if (a := self._single(m, strict)) is not None]
        if not refused:
            return None
        answers = [a for _, a in refused]
        skipped = [
            m
            for m in batch
            if isinstance(m, dict) and _fields(m, "method") and not any(m is r for r, _ in refused)
        ]
        answers.extend(_error_line(m, "Not sent: another request in this batch was blocked") for m in skipped)
        answers = [a for a in answers if a]
        return b"[" + b",".join(answers) + b"]" if answers else b""

    def _reason(self, message: dict[str, Any]) -> str | None:
        """Why the policy refuses this tools/call (every tool name it carries), or None."""
        names = [n for p in _fields(message, "params") if isinstance(p, dict) for n in _fields(p, "name")]
        if not names or not all(isinstance(n, str) for n in names):
            return "a tools/call without a tool name cannot be checked"
        for tool in names:
            reason = self._tool_reason(tool, message)
            if reason is not None:
                return reason
        return None

    def _changed(self, tool: str) -> bool:
        changed = self.tools_changed()
        if tool in changed:
            return True
        # pins keep a name that holds a secret redacted: the call's is compared the same way
        return any(REDACTED_MARK in name for name in changed) and (
            redact(tool, self.policy.analysis).message in changed
        )

    def _tool_reason(self, tool: str, message: dict[str, Any]) -> str | None:
        reason = self.policy.tool_denied(self.server, tool)
        if reason is None and self.policy.block_changed_tools and self._changed(tool):
            reason = f"tool {tool!r} changed since it was pinned (run `km pins approve {self.server}`)"
        if reason is None and self.policy.block_at is not None:
            risk = self.analyzer.analyze("client_to_server", "request", "tools/call", tool, message)
            if LEVEL_RANK[risk.level] >= LEVEL_RANK[self.policy.block_at]:
                rules = ", ".join(sorted({f.rule for f in risk.findings}))
                reason = f"risk {risk.level} ({rules}) is at or above block_at={self.policy.block_at}"
        return reason
