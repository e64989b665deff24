"""Dangerous operations in ``tools/call`` requests (the tool's name, its arguments and, when the
server listed it, its definition: annotations, description, input schema) and in
``resources/read`` requests (the URI).

Severity follows consequence: what a call can destroy, leak or make persistent, not the fact
that it runs a command or writes a file. Commands are parsed with a shell lexer
(:mod:`kilometers.analysis.commands`), SQL with a SQL parser (:mod:`kilometers.analysis.sql`),
paths are classified by :mod:`kilometers.analysis.locations`.

Rules (usual severity in brackets):

* ``danger.remote_code``, ``danger.exfiltration``, ``danger.destructive_command``,
  ``danger.system_write``, ``danger.shell_exec`` in commands: see
  :mod:`kilometers.analysis.commands`. An ordinary command is not a finding.
* ``danger.destructive_tool`` (medium; high when aimed at ``/``, ``~``, ``*`` or system files,
  low for files in a project or temporary folder): a deleting tool by name
  (delete/remove/purge/drop/destroy...). Annotations win: ``readOnlyHint: true`` or
  ``destructiveHint: false`` silence it; a tool only annotated ``destructiveHint: true`` gets
  ``low``.
* ``danger.sensitive_path`` (high; some medium): an argument or resource URI names a credential
  store (``~/.ssh``, private keys, ``/etc/shadow``, ``.env`` but not ``.env.example``, cloud CLI
  credentials, ``.netrc``/``.npmrc``/``.pypirc``, MCP client configs, browser profiles,
  keychains, ``/proc/*/environ``) or a cloud metadata endpoint (``169.254.169.254``,
  ``metadata.google.internal``). Only short arguments (paths) are checked.
* ``danger.system_write`` (high): a file-writing tool (write/edit/create/move/copy... by name,
  not annotated read-only) writes to a system (``/etc``, ``/usr``, ``C:\\Windows``), startup
  (``~/.bashrc``, launch agents, cron, systemd units) or credential location.
* ``danger.destructive_sql`` (high; critical for ``DROP DATABASE``): see
  :mod:`kilometers.analysis.sql`; in query-like arguments or SQL tools only.
* ``danger.exfiltration_url`` (high; medium for raw IPs and encoded data): a URL to a
  request-capture/paste/tunnel service, a secret inside a URL, a raw public IP, or bulk
  encoded data in a query string or host name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .commands import deletion_severity, judge, metadata_host
from .findings import SEVERITY_RANK, Severity, mask
from .leaves import Hit, Leaves, PathPart, pointer
from .locations import credential, is_project, startup, system
from .pii import scan as scan_pii
from .pycode import judge_python
from .secrets import scan as scan_secrets
from .sql import GATES as SQL_GATES
from .sql import judge_sql
from .text import entropy

_NAME_TOKENS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")

_SHELL_TOKENS = frozenset(
    {
        "bash",
        "sh",
        "zsh",
        "fish",
        "shell",
        "terminal",
        "powershell",
        "pwsh",
        "cmd",
        "subprocess",
        "spawn",
        "osascript",
        "applescript",
        "repl",
        "ssh",
    }
)
_EXEC_VERBS = frozenset({"exec", "execute", "run", "eval", "evaluate", "invoke"})
_EXEC_OBJECTS = frozenset(
    {
        "command",
        "commands",
        "cmd",
        "script",
        "code",
        "python",
        "javascript",
        "js",
        "node",
        "ruby",
        "perl",
        "process",
        "program",
        "snippet",
        "bash",
        "shell",
        "binary",
        "cli",
        "applescript",
        "jupyter",
        "cell",
    }
)
_COMMAND_KEYS = frozenset(
    {
        "command",
        "cmd",
        "commandline",
        "shellcommand",
        "script",
        "bashcommand",
        "shell",
        "commands",
        "code",
        "exec",
        "run",
    }
)
_DESCRIPTION_SHELL = re.compile(
    r"\b(?:execut|run)\w*\s+(?:an?\s+|the\s+|arbitrary\s+|any\s+)*(?:shell|bash|terminal|system|os|cli)?\s*"
    r"(?:commands?|scripts?|code)\b",
    re.IGNORECASE,
)
_PYTHON_TOKENS = frozenset({"python", "py", "python3", "jupyter", "notebook", "ipython", "cell", "pandas"})
_CODE_KEYS = frozenset({"code", "source", "snippet", "pythoncode", "cell"})
"""Arguments that hold program code: judged as Python when they parse as Python, else as a command."""
_DESTRUCTIVE_VERBS = frozenset(
    {
        "delete",
        "remove",
        "rm",
        "rmdir",
        "unlink",
        "erase",
        "wipe",
        "purge",
        "destroy",
        "drop",
        "truncate",
        "shred",
        "kill",
        "terminate",
        "uninstall",
        "flush",
        "nuke",
        "del",
    }
)
_QUERY_KEYS = frozenset(
    {"sql", "query", "statement", "q", "queries", "statements", "command", "cmd", "script"}
)
_QUERY_TOKENS = frozenset(
    {
        "sql",
        "query",
        "db",
        "database",
        "postgres",
        "postgresql",
        "psql",
        "mysql",
        "sqlite",
        "mssql",
        "mongo",
        "mongodb",
        "redis",
        "bigquery",
        "snowflake",
        "clickhouse",
        "duckdb",
        "supabase",
        "oracle",
        "cql",
    }
)
_BROAD_TARGETS = frozenset(
    {"/", "~", "~/", "*", "/*", "$home", "c:\\", "c:/", ".", "./", "..", "/home", "/etc"}
)

_URL = re.compile(r"\b(?:https?|wss?|ftp)://([^\s/?#\"'<>`\\]+)([^\s\"'<>`\\]*)", re.IGNORECASE)
_BARE_HOST = re.compile(
    r"(?:^|[\s@])((?:[a-z0-9-]+\.)+[a-z]{2,}|[0-9]{1,3}(?:\.[0-9]{1,3}){3})(?::[0-9]+)?(?:/\S*)?",
    re.IGNORECASE,
)
EXFIL_DOMAINS: tuple[str, ...] = (
    "webhook.site",
    "requestbin.com",
    "requestbin.net",
    "pipedream.net",
    "ngrok.io",
    "ngrok-free.app",
    "ngrok.app",
    "ngrok.dev",
    "beeceptor.com",
    "hookbin.com",
    "requestcatcher.com",
    "interact.sh",
    "oast.pro",
    "oast.live",
    "oast.site",
    "oast.online",
    "oast.fun",
    "oast.me",
    "burpcollaborator.net",
    "oastify.com",
    "canarytokens.com",
    "pastebin.com",
    "paste.ee",
    "hastebin.com",
    "transfer.sh",
    "file.io",
    "0x0.st",
    "termbin.com",
    "ix.io",
    "sprunge.us",
    "trycloudflare.com",
    "serveo.net",
    "loca.lt",
    "localtunnel.me",
    "dnslog.cn",
    "ceye.io",
    "requestrepo.com",
    "postb.in",
    "ptsv2.com",
    "ptsv3.com",
    "mockbin.org",
    "bashupload.com",
    "tmpfiles.org",
    "catbox.moe",
    "gofile.io",
    "webhook.cool",
    "ghostbin.com",
    "rentry.co",
    "pastes.io",
    "dpaste.com",
)
_EXFIL_PATHS = ("discord.com/api/webhooks/", "discordapp.com/api/webhooks/", "api.telegram.org/bot")
_SIGNED_PARAMS = (
    "sig",
    "signature",
    "token",
    "credential",
    "policy",
    "hash",
    "checksum",
    "state",
    "code",
    "nonce",
    "key-pair",
    "security",
    "expires",
    "digest",
    "integrity",
    "etag",
    "session",
)
_ENCODED = re.compile(r"[A-Za-z0-9+/_=%-]{64,}")


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """What the server said about a tool in ``tools/list``."""

    read_only: bool | None = None
    destructive: bool | None = None
    shell: bool = False
    """The definition describes command/code execution or takes a ``command`` argument."""

    @classmethod
    def from_definition(cls, tool: Mapping[str, Any] | None) -> ToolInfo:
        if not isinstance(tool, Mapping):
            return cls()
        ann = tool.get("annotations")
        read_only = destructive = None
        if isinstance(ann, Mapping):
            ro = ann.get("readOnlyHint")
            de = ann.get("destructiveHint")
            read_only = ro if isinstance(ro, bool) else None
            destructive = de if isinstance(de, bool) else None
        shell = False
        description = tool.get("description")
        if isinstance(description, str) and _DESCRIPTION_SHELL.search(description[:2000]):
            shell = True
        schema = tool.get("inputSchema")
        props = schema.get("properties") if isinstance(schema, Mapping) else None
        if isinstance(props, Mapping) and any(_norm(k) in ("command", "cmd", "commandline") for k in props):
            shell = True
        return cls(read_only, destructive, shell)


_NON_ALNUM = re.compile(r"[^a-z0-9]")
_NORM_CACHE: dict[str, str] = {}


def _norm(key: str) -> str:
    """``Command_Line`` -> ``commandline`` (cached: argument names repeat)."""
    norm = _NORM_CACHE.get(key)
    if norm is None:
        norm = _NON_ALNUM.sub("", key.lower())
        if len(_NORM_CACHE) > 4096:
            _NORM_CACHE.clear()
        _NORM_CACHE[key] = norm
    return norm


def name_tokens(name: str) -> list[str]:
    """``run_shellCommand`` -> ``["run", "shell", "command"]``."""
    return [t.lower() for t in _NAME_TOKENS.findall(name)]


def is_shell_tool(name: str, info: ToolInfo | None = None) -> bool:
    tokens = set(name_tokens(name))
    if tokens & _SHELL_TOKENS:
        return True
    if tokens & _EXEC_VERBS and (tokens & _EXEC_OBJECTS or tokens <= _EXEC_VERBS):
        return True
    return bool(info and info.shell and not tokens & {"sql", "query", "queries", "test", "tests"})


@dataclass(frozen=True, slots=True)
class _Facts:
    """What a tool's name and definition say, the same for every call of the tool."""

    shell: bool
    python: bool
    query: bool
    writes: frozenset[str] | None
    verb: str | None
    """The first word of the name that destroys data (``delete``), if any."""


_FACTS: dict[tuple[str, ToolInfo], _Facts] = {}


def _facts(name: str, info: ToolInfo) -> _Facts:
    """The :class:`_Facts` of a tool (cached: a session calls few tools, many times)."""
    facts = _FACTS.get((name, info))
    if facts is None:
        words = name_tokens(name)
        tokens = set(words)
        facts = _Facts(
            shell=is_shell_tool(name, info),
            python=bool(tokens & _PYTHON_TOKENS),
            query=bool(tokens & _QUERY_TOKENS),
            writes=_writing_keys(tokens, info),
            verb=next((t for t in words if t in _DESTRUCTIVE_VERBS), None),
        )
        if len(name) <= 256:
            if len(_FACTS) >= 4096:
                _FACTS.clear()
            _FACTS[(name, info)] = facts
    return facts


def _strings(
    obj: Any, path: list[PathPart], out: list[tuple[tuple[PathPart, ...], str]], budget: list[int]
) -> None:
    if budget[0] <= 0:
        return
    if isinstance(obj, str):
        value = obj[:MAX_ARGUMENT_CHARS]
        budget[0] -= len(value)
        out.append((tuple(path), value))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            path.append(k)
            _strings(v, path, out, budget)
            path.pop()
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            path.append(i)
            _strings(v, path, out, budget)
            path.pop()


def _short(text: str, limit: int = 80) -> str:
    """A one-line excerpt for a message, with secrets and personal data replaced by ``[REDACTED]``."""
    text = " ".join(text[:4096].split())
    leaves = Leaves(text, min_len=1)
    spans = sorted((h.start, h.end) for h in (*scan_secrets(leaves), *scan_pii(leaves)) if h.leaf == 0)
    for start, end in reversed(spans):
        text = text[:start] + "[REDACTED]" + text[end:]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _command_strings(
    shell: bool, strings: list[tuple[tuple[PathPart, ...], str]]
) -> list[tuple[tuple[PathPart, ...], str]]:
    out = []
    for path, value in strings:
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        if _norm(key) in _COMMAND_KEYS or (
            shell and key not in ("cwd", "workdir", "directory", "description")
        ):
            out.append((path, value))
    if shell and strings and not out:
        out = strings[:1]
    return out


def _ptr(base: str, path: tuple[PathPart, ...]) -> str:
    return base + pointer(path)


class _Scan:
    def __init__(self, base: str) -> None:
        self.base = base
        self.hits: list[Hit] = []

    def add(self, rule: str, severity: Severity, message: str, path: tuple[PathPart, ...] | str) -> None:
        ptr = path if isinstance(path, str) else _ptr(self.base, path)
        self.hits.append(Hit(rule, severity, message, path=ptr))


MAX_ARGUMENT_CHARS = 65_536
"""Characters of one argument string examined (a longer command is judged by its beginning)."""
MAX_ARGUMENTS_CHARS = 262_144
"""Characters of argument strings examined per call."""
_MAX_PATH_LENGTH = 256
"""Longer argument strings are free text (file contents, messages), not paths: not checked for
sensitive paths (commands are always checked)."""


def scan_call(
    tool: str | None,
    arguments: Any,
    definition: Mapping[str, Any] | ToolInfo | None = None,
    *,
    base: str = "/params/arguments",
    name_path: str = "/params/name",
) -> list[Hit]:
    """Hits for one ``tools/call``; every hit carries its own JSON pointer.

    ``definition``: the tool's definition from ``tools/list`` (or its :class:`ToolInfo`).
    """
    name = tool or ""
    info = definition if isinstance(definition, ToolInfo) else ToolInfo.from_definition(definition)
    facts = _facts(name, info)
    s = _Scan(base)
    strings: list[tuple[tuple[PathPart, ...], str]] = []
    _strings(arguments, [], strings, [MAX_ARGUMENTS_CHARS])

    commands = _command_strings(facts.shell, strings)
    command_paths = {path for path, _ in commands}
    python = facts.python
    for path, command in commands:
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        verdicts = judge_python(command) if python or _norm(key) in _CODE_KEYS else None
        for verdict in judge(command) if verdicts is None else verdicts:
            s.add(verdict.rule, verdict.severity, f"{verdict.label}: {_short(command, 60)!r}", path)

    _destructive_tool(s, name, info, facts.verb, arguments, strings, name_path)

    query_tool = facts.query
    writes = facts.writes
    for path, value in strings:
        is_command = path in command_paths
        low = None  # lowered only for the checks that need it
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        if not is_command and len(value) <= _MAX_PATH_LENGTH:
            _location(s, value, path, writes is not None and _norm(key) in writes)
        if query_tool or _norm(key) in _QUERY_KEYS:
            low = value.lower()
            if any(g in low for g in SQL_GATES):
                for found in judge_sql(value):
                    s.add(found.rule, found.severity, f"{found.label}: {_short(value, 60)!r}", path)
        if is_command or "://" in value:
            _urls(s, value, value.lower() if low is None else low, path, command=is_command)
    return s.hits


def scan_resource(uri: Any, *, path: str = "/params/uri") -> list[Hit]:
    """Hits for a ``resources/read`` request: a credential file or a cloud metadata endpoint."""
    if not isinstance(uri, str) or len(uri) > 4 * _MAX_PATH_LENGTH:
        return []
    s = _Scan("")
    if metadata_host(uri):
        s.add(
            "danger.sensitive_path",
            "high",
            f"reads the cloud instance metadata endpoint: {_short(uri, 60)!r}",
            path,
        )
    else:
        _location(s, uri, path, write=False)
    return s.hits


_WRITE_VERBS = frozenset(
    {
        "write",
        "create",
        "edit",
        "save",
        "append",
        "put",
        "patch",
        "overwrite",
        "upload",
        "store",
        "modify",
        "replace",
        "insert",
        "mkdir",
        "touch",
        "set",
        "update",
    }
)
_TRANSFER_VERBS = frozenset({"move", "copy", "rename", "mv", "cp", "link", "symlink"})
_PATH_KEYS = frozenset(
    {"path", "file", "filepath", "filename", "filepaths", "paths", "uri", "target", "targetpath", "location"}
)
_DESTINATION_KEYS = frozenset(
    {
        "destination",
        "dest",
        "destpath",
        "destinationpath",
        "to",
        "target",
        "targetpath",
        "newpath",
        "output",
        "outputpath",
        "outfile",
    }
)


def _writing_keys(tokens: set[str], info: ToolInfo) -> frozenset[str] | None:
    """The argument names a tool writes to (None: the tool does not write files)."""
    if info.read_only is True:
        return None
    if tokens & _TRANSFER_VERBS:
        return _DESTINATION_KEYS
    if tokens & _WRITE_VERBS:
        return _PATH_KEYS | _DESTINATION_KEYS
    return None


def _location(s: _Scan, value: str, path: tuple[PathPart, ...] | str, write: bool) -> None:
    """A credential store read or written, a startup or system location written, a metadata URL."""
    if "://" in value and metadata_host(value):
        s.add(
            "danger.sensitive_path",
            "high",
            f"reads the cloud instance metadata endpoint: {_short(value, 60)!r}",
            path,
        )
        return
    place = credential(value)
    if write and "\n" not in value:
        label = startup(value) or system(value)
        if place is not None and place.severity == "high" and not is_project(value):
            label = place.label
        if label is not None:
            s.add("danger.system_write", "high", f"writes to a {label}: {_short(value, 60)!r}", path)
        return  # a write reads nothing: a project's own .env is the project's business
    if place is not None:
        s.add("danger.sensitive_path", place.severity, f"accesses {place.label}: {_short(value, 60)!r}", path)


def _truthy(arguments: Any, *keys: str) -> bool:
    if not isinstance(arguments, Mapping):
        return False
    for k, v in arguments.items():
        if isinstance(k, str) and _norm(k) in keys and v in (True, "true", "yes", 1, "1"):
            return True
    return False


def _destructive_tool(
    s: _Scan,
    name: str,
    info: ToolInfo,
    verb: str | None,
    arguments: Any,
    strings: list[tuple[tuple[PathPart, ...], str]],
    name_path: str,
) -> None:
    """``verb``: the first word of the tool's name that destroys data (``delete``), if any."""
    if info.read_only is True or info.destructive is False:
        return
    if verb is None:
        if info.destructive is True:
            s.add("danger.destructive_tool", "low", f"tool {name!r} is annotated as destructive", name_path)
        return
    recursive = _truthy(arguments, "recursive", "force", "all", "cascade", "purge")
    broad = any(v.strip().lower() in _BROAD_TARGETS for _, v in strings)
    severity: Severity = "high" if broad else "medium"
    detail = " (a broad target)" if broad else ""
    paths = [
        v
        for p, v in strings
        if len(v) <= _MAX_PATH_LENGTH
        and any(_norm(k) in _PATH_KEYS for k in p if isinstance(k, str))
        and ("/" in v or "\\" in v or v.startswith((".", "~")))
    ]
    if paths and not broad:
        worst = max((deletion_severity(v, recursive) for v in paths), key=lambda x: SEVERITY_RANK[x[0]])
        severity, detail = worst[0], f" ({worst[1]})"
    elif recursive and not broad:
        severity, detail = "high", " (recursive/forced)"
    if severity == "info":
        return  # build output or temporary files
    s.add(
        "danger.destructive_tool",
        severity,
        f"tool {name!r} deletes or destroys data ({verb}){detail}",
        name_path,
    )


def _urls(s: _Scan, value: str, low: str, path: tuple[PathPart, ...], *, command: bool) -> None:
    hosts: list[tuple[str, str]] = []
    for m in _URL.finditer(value):
        hosts.append((m.group(1).lower(), m.group(0)))
    if command:
        for m in _BARE_HOST.finditer(value):
            host = m.group(1).lower()
            if not any(h == host for h, _ in hosts):
                hosts.append((host, m.group(0).strip()))
    for hostport, url in hosts:
        host = hostport.rsplit("@", 1)[-1]
        host = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0]
        reason = _exfil_reason(host, url)
        if reason is not None:
            sev, label = reason
            s.add("danger.exfiltration_url", sev, f"{label}: {_short(_mask_url(url), 70)!r}", path)
            return


def _mask_url(url: str) -> str:
    """Scheme and host only: paths and queries of such URLs often carry tokens (``/bot<token>/``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    host = authority.rsplit("@", 1)[-1]
    tail = "/…" if len(rest) > len(authority) else ""
    return f"{scheme}{sep}{host}{tail}"


def _exfil_reason(host: str, url: str) -> tuple[Severity, str] | None:
    low = url.lower()
    if any(host == d or host.endswith("." + d) for d in EXFIL_DOMAINS) or any(p in low for p in _EXFIL_PATHS):
        return "high", "sends data to a request-capture/paste/tunnel service"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_global:
        return "medium", "contacts a raw public IP address"
    if len(url) > 40:
        found = scan_secrets(Leaves(url, min_len=8))
        if found:
            return "high", f"a secret ({found[0].rule}) in a URL {mask(url)}"
    labels = host.split(".")
    if any(len(label) >= 40 and entropy(label) >= 3.5 for label in labels[:-2]):
        return "medium", "encoded data in the host name (DNS exfiltration)"
    _, _, query = url.partition("?")
    if query:
        for part in query.split("&"):
            k, _, v = part.partition("=")
            if len(v) >= 64 and not any(x in k.lower() for x in _SIGNED_PARAMS):
                m = _ENCODED.search(v)
                if m and entropy(m.group()) >= 4.0:
                    return "medium", "bulk encoded data in a URL query"
    return None
