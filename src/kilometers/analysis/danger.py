"""Dangerous operations in ``tools/call`` requests: the tool's name, its arguments and, when the
server listed it, its definition (annotations, description, input schema).

Rules (usual severity in brackets):

* ``danger.shell_exec`` (medium; high with sudo/doas): the call runs a shell command or code:
  a shell-like tool (``bash``, ``run_command``, ``execute_python``, or a definition that says
  it executes commands) or a ``command``/``cmd``/``script`` argument.
* ``danger.destructive_command`` (high; critical for ``rm -rf /`` and disk wipes): the
  command deletes or overwrites: ``rm -r``, ``mkfs``, ``dd of=/dev/...``, ``git reset --hard``,
  forced pushes, ``terraform destroy``, ``kubectl delete``, fork bombs...
* ``danger.remote_code`` (critical): download-and-execute, reverse shells, encoded PowerShell.
* ``danger.destructive_tool`` (medium; high when recursive/forced or aimed at ``/``, ``~``,
  ``*``): a deleting tool by name (delete/remove/purge/drop/destroy...). Annotations win:
  ``readOnlyHint: true`` or ``destructiveHint: false`` silence it; a tool that is only
  annotated ``destructiveHint: true`` gets ``low``.
* ``danger.sensitive_path`` (high; some medium): an argument names a credential store:
  ``~/.ssh``, private keys, ``/etc/shadow``, ``.env`` (not ``.env.example``), cloud CLI
  credentials, ``.netrc``/``.npmrc``/``.pypirc``, MCP client configs, browser profiles,
  keychains, ``/proc/*/environ``. Only short arguments (paths) and commands are checked.
* ``danger.destructive_sql`` (high; critical for ``DROP DATABASE``): ``DROP``/``TRUNCATE``,
  ``DELETE``/``UPDATE`` without ``WHERE`` (or ``WHERE 1=1``), MongoDB ``drop()``/
  ``deleteMany({})``, Redis ``FLUSHALL``; in query-like arguments or SQL/shell tools only.
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

from .findings import Severity, mask
from .leaves import Hit, Leaves, PathPart, pointer
from .pii import scan as scan_pii
from .secrets import scan as scan_secrets
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

_Rules = tuple[tuple[re.Pattern[str], Severity, str], ...]


def _rules(*items: tuple[str, Severity, str]) -> _Rules:
    return tuple((re.compile(p, re.IGNORECASE), s, label) for p, s, label in items)


DESTRUCTIVE_COMMANDS: _Rules = _rules(
    (
        r"\brm\s+(?:-[a-z-]+\s+)*(?:--no-preserve-root\b|-[a-z]*r[a-z]*f?\s+(?:/|~|\*|\$home)(?:\s|$|[;&|]))",
        "critical",
        "recursive delete of /, ~ or *",
    ),
    (r"\brm\s+(?:-[a-z]+\s+)*-[a-z]*r[a-z]*\b", "high", "recursive delete (rm -r)"),
    (r"\brm\s+(?:-[a-z]+\s+)*[^\s|;&-][^\s|;&]*", "medium", "file deletion (rm)"),
    (r"\b(?:mkfs(?:\.\w+)?|wipefs|shred|fdisk|parted|sfdisk|diskpart|clear-disk)\b", "critical", "disk wipe"),
    (r"\bdd\b[^|;&\n]*\bof=/dev/", "critical", "raw write to a device (dd)"),
    (r">\s*/dev/(?:sd[a-z]|nvme|hd[a-z]|disk\d|xvd)", "critical", "raw write to a device"),
    (r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:", "critical", "fork bomb"),
    (r"\bchmod\s+(?:-[a-z]+\s+)*0?777\b", "high", "world-writable permissions"),
    (
        r"\b(?:chmod|chown)\s+(?:-[a-z]*\s+)*-[a-z]*r[a-z]*\s+\S+\s+/(?:\s|$)",
        "high",
        "recursive permission change on /",
    ),
    (
        r"\bgit\s+push\b[^|;&\n]*\s(?:--force\b|-f\b|--force-with-lease\b|--delete\b|--mirror\b)",
        "high",
        "forced git push",
    ),
    (
        r"\bgit\s+(?:reset\s+--hard|clean\s+-[a-z]*f|branch\s+-D|checkout\s+--\s+\.|restore\s+\.)",
        "high",
        "discards git work",
    ),
    (r"\bfind\b[^|;&\n]*\s(?:-delete\b|-exec\s+rm\b)", "high", "find -delete"),
    (r"\btruncate\s+(?:-s\s*0|--size[= ]0)\b", "high", "truncates files"),
    (r"\b(?:del|erase)\s+(?:/[a-z]\s+)*/[sqf]\b", "high", "recursive delete (del /s)"),
    (r"\b(?:rd|rmdir)\s+/s\b", "high", "recursive delete (rd /s)"),
    (r"\bremove-item\b[^|;\n]*-recurse", "high", "recursive delete (Remove-Item)"),
    (r"\bformat(?:\.com)?\s+[a-z]:", "critical", "formats a drive"),
    (r"\b(?:shutdown|reboot|poweroff|halt)\b(?:\s|$)", "medium", "shuts the machine down"),
    (r"\bkill(?:all)?\s+-(?:9|kill)\s+-?1\b", "high", "kills all processes"),
    (r"\b(?:iptables\s+-F|ufw\s+disable|setenforce\s+0)\b", "high", "disables the firewall"),
    (r"\bhistory\s+-c\b|\bunset\s+histfile\b", "high", "clears shell history"),
    (r"\bterraform\s+(?:destroy|apply\s+[^\n]*-destroy)\b", "high", "terraform destroy"),
    (r"\bkubectl\s+delete\b", "high", "kubectl delete"),
    (
        r"\bdocker\s+(?:system\s+prune|volume\s+(?:rm|prune)|rm\s+-f|rmi\s+-f)\b",
        "high",
        "deletes docker data",
    ),
    (r"\baws\s+s3\s+(?:rm|rb)\b", "high", "deletes S3 data"),
    (r"\bgcloud\b[^|;\n]*\sdelete\b|\baz\b[^|;\n]*\sdelete\b", "high", "deletes cloud resources"),
)

REMOTE_CODE: _Rules = _rules(
    (
        r"\b(?:curl|wget|fetch|iwr|irm|invoke-webrequest|invoke-restmethod)\b[^|;&\n]*\|\s*(?:sudo\s+)?"
        r"(?:(?:ba|z|da|k|fi)?sh|python[0-9.]*|perl|ruby|node|php|iex|invoke-expression)\b",
        "critical",
        "pipes a download into an interpreter",
    ),
    (
        r"\b(?:ba|z|da)?sh\s+(?:-c\s+)?[\"']?(?:\$\(|<\(|`)\s*(?:curl|wget)\b",
        "critical",
        "runs a downloaded script",
    ),
    (r"\b(?:source|\.)\s+<\(\s*(?:curl|wget)\b", "critical", "sources a downloaded script"),
    (r"\beval\s+[\"']?\$\(\s*(?:curl|wget)\b", "critical", "evaluates a download"),
    (
        r"\bbase64\s+(?:-d|--decode|-D)\b[^;\n]*\|\s*(?:sudo\s+)?(?:(?:ba|z|da)?sh|python[0-9.]*|perl)\b",
        "critical",
        "runs base64-decoded code",
    ),
    (r"/dev/(?:tcp|udp)/", "critical", "reverse shell (/dev/tcp)"),
    (r"\b(?:nc|ncat|netcat)\b[^|;\n]*\s-[a-z]*[ec]\s", "critical", "reverse shell (nc -e)"),
    (r"\bmkfifo\b[^\n]*\b(?:nc|ncat|netcat|sh|bash)\b", "critical", "reverse shell (mkfifo)"),
    (r"\bsocat\b[^\n]*\bexec:", "critical", "reverse shell (socat exec)"),
    (
        r"\bpython[0-9.]*\s+-c\s+[\"'][^\"']*\bsocket\b[^\"']*\b(?:connect|dup2)\b",
        "critical",
        "reverse shell (python socket)",
    ),
    (
        r"\b(?:iex|invoke-expression)\b[^\n]*(?:downloadstring|net\.webclient|iwr|invoke-webrequest)",
        "critical",
        "runs a downloaded PowerShell script",
    ),
    (
        r"\bpowershell(?:\.exe)?\b[^\n]*\s-(?:e|ec|enc|encodedcommand)\s+[a-z0-9+/=]{20,}",
        "critical",
        "encoded PowerShell command",
    ),
    (
        r"\b(?:certutil(?:\.exe)?\s+[^\n]*-urlcache|bitsadmin(?:\.exe)?\s+/transfer|mshta\s+https?:)",
        "critical",
        "Windows download-and-execute",
    ),
    (
        r"\b(?:curl|wget)\b[^\n;|]*(?:-o|-O|>)\s*\S+[^\n]*&&[^\n]*(?:chmod\s+\+x|\bsh\s|\bbash\s|\./)",
        "critical",
        "downloads and runs a program",
    ),
)

_PRIVILEGE = re.compile(r"(?:^|[\s;&|(`])(?:sudo|doas|pkexec|runas)\s|(?:^|[\s;&|])su\s+-", re.IGNORECASE)

SENSITIVE_PATHS: _Rules = _rules(
    (r"(?:^|[\s/\"'=:~])\.ssh(?:/|$|[\s\"',;])", "high", "SSH directory"),
    (r"\bid_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?(?![\w.])", "high", "SSH private key"),
    (r"\bauthorized_keys\b", "high", "SSH authorized_keys"),
    (r"/etc/(?:shadow|gshadow|sudoers|master\.passwd)\b", "high", "system password/sudo file"),
    (r"/etc/passwd\b", "medium", "/etc/passwd"),
    (
        r"(?:^|[\s/\"'=:\\])\.env(?:rc|\.(?!example\b|sample\b|template\b|dist\b|defaults?\b|schema\b)[\w-]+)?"
        r"(?=$|[\s\"',;)])",
        "high",
        ".env file",
    ),
    (r"\.aws/(?:credentials|config)\b|\baws_shared_credentials_file\b", "high", "AWS credentials"),
    (r"\.config/gcloud\b|application_default_credentials\.json", "high", "Google Cloud credentials"),
    (r"\.azure/(?:accesstokens\.json|msal_token_cache|azureprofile\.json)?", "high", "Azure credentials"),
    (r"\.kube/config\b", "high", "Kubernetes credentials"),
    (r"\.docker/config\.json", "high", "Docker registry credentials"),
    (r"(?:^|[\s/\"'~\\])[._]netrc\b", "high", ".netrc credentials"),
    (
        r"(?:^|[\s/\"'~\\])\.(?:npmrc|pypirc|git-credentials|vault-token|pgpass|my\.cnf)\b",
        "high",
        "package/registry/database credentials",
    ),
    (r"\.gnupg\b|\.password-store\b|\.terraform\.d/credentials", "high", "credential store"),
    (r"\.config/gh/hosts\.yml|\.config/hub\b", "high", "GitHub CLI token"),
    (
        r"\.cursor/mcp\.json|claude_desktop_config\.json|\.codeium/windsurf/mcp_config\.json|\.claude\.json\b",
        "high",
        "MCP client configuration (holds server secrets)",
    ),
    (
        r"(?:google/chrome/(?:user data|default|profile)|google-chrome/(?:default|profile)|"
        r"chromium/(?:default|profile)|bravesoftware/brave-browser|microsoft/edge/user data|"
        r"\.mozilla/firefox/|firefox/profiles/|library/safari/|"
        r"library/cookies/|opera software/opera)",
        "high",
        "browser profile",
    ),
    (
        r"(?:^|/)(?:login data|web data|cookies(?:\.sqlite)?|logins\.json|key[34]\.db|local state)"
        r"(?:$|[\s\"'])",
        "high",
        "browser credential store",
    ),
    (r"library/keychains|\.keychain(?:-db)?\b", "high", "macOS keychain"),
    (r"/proc/(?:self|[0-9]+)/(?:environ|mem)\b", "high", "process environment/memory"),
    (r"/(?:var/)?run/secrets/", "high", "container secrets"),
    (r"windows/system32/config/(?:sam|security|system)\b|\bntds\.dit\b", "high", "Windows credential hive"),
    (r"appdata/(?:roaming|local)/microsoft/(?:credentials|protect)", "high", "Windows credential store"),
    (r"(?:^|[\s/\"'~])\.(?:bash|zsh|sh|python|psql|mysql)_history\b", "medium", "shell history"),
    (
        r"\.(?:p12|pfx|jks|keystore|ppk|key)(?=$|[\s\"',;])|(?:^|/)[\w.-]*priv(?:ate)?[\w.-]*\.pem\b",
        "medium",
        "private key file",
    ),
    (
        r"(?:^|[/\s\"'])(?:credentials|secrets?|service[-_]?account[\w-]*)\.(?:json|ya?ml|toml)\b",
        "medium",
        "credentials file",
    ),
)
_SENSITIVE_GATES = (
    "ssh",
    "id_",
    "authorized",
    "/etc/",
    "env",
    ".aws",
    "aws_",
    "gcloud",
    "application_default",
    ".azure",
    ".kube",
    ".docker",
    "netrc",
    ".npmrc",
    ".pypirc",
    "git-credentials",
    "vault-token",
    "pgpass",
    "my.cnf",
    "gnupg",
    "password-store",
    "terraform.d",
    "gh/",
    "hub",
    "mcp",
    "claude",
    "chrome",
    "chromium",
    "brave",
    "edge",
    "firefox",
    "safari",
    "opera",
    "login data",
    "web data",
    "cookies",
    "logins.json",
    "key3",
    "key4",
    "local state",
    "keychain",
    "/proc/",
    "secrets",
    "system32",
    "ntds",
    "appdata",
    "_history",
    ".pem",
    ".key",
    ".p12",
    ".pfx",
    ".jks",
    ".keystore",
    ".ppk",
    "credentials",
    "service",
)

_SQL_GATES = ("drop", "truncate", "delete", "update", "flush", "remove(", "alter")
_SQL_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/|#[^\n]*", re.DOTALL)
_SQL_RULES: _Rules = _rules(
    (r"\bdrop\s+(?:database|schema|keyspace)\b", "critical", "DROP DATABASE"),
    (
        r"\bdrop\s+(?:(?:temporary|temp)\s+)?(?:table|view|materialized\s+view|index|user|role|function|procedure|"
        r"trigger|sequence|collection|type|extension)\b",
        "high",
        "DROP",
    ),
    (
        r"(?:^|;)\s*truncate\s+(?:table\s+)?[\w.\"`\[\]]+\s*(?:;|$|\b(?:cascade|restart|continue)\b)|\btruncate\s+table\b",
        "high",
        "TRUNCATE",
    ),
    (r"\balter\s+table\s+[\w.\"`\[\]]+\s+drop\b", "high", "ALTER TABLE ... DROP"),
    (
        r"\bdb\.dropdatabase\(|\.drop\(\s*\)|\.(?:deletemany|remove)\(\s*\{\s*\}\s*\)",
        "high",
        "MongoDB drop/delete all",
    ),
    (r"\bflush(?:all|db)\b", "high", "Redis FLUSHALL"),
)
_DELETE = re.compile(r"\bdelete\s+from\s+[\w.\"`\[\]]+", re.IGNORECASE)
_UPDATE = re.compile(r"\bupdate\s+[\w.\"`\[\]]+\s+set\s+[\w.\"`\[\]]+\s*=", re.IGNORECASE)
_SQL_TAIL = re.compile(
    r"\s*(?:$|\)|(?:returning|using|as|where|limit|order|join|inner|left|output|from)\b)", re.IGNORECASE
)
_WHERE = re.compile(r"\bwhere\b\s*(?:(?:1|'1'|true)\s*(?:=\s*(?:1|'1'|true))?\s*(?:;|$|\)))?", re.IGNORECASE)

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
    s = _Scan(base)
    strings: list[tuple[tuple[PathPart, ...], str]] = []
    _strings(arguments, [], strings, [MAX_ARGUMENTS_CHARS])
    shell = is_shell_tool(name, info)

    commands = _command_strings(shell, strings)
    command_paths = {path for path, _ in commands}
    for path, command in commands:
        _command(s, command, path, shell)

    _destructive_tool(s, name, info, arguments, strings, name_path)

    query_tool = shell or bool(set(name_tokens(name)) & _QUERY_TOKENS)
    for path, value in strings:
        is_command = path in command_paths
        low = value.lower()
        if is_command or len(value) <= _MAX_PATH_LENGTH:
            _sensitive(s, value, low, path)
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        if query_tool or _norm(key) in _QUERY_KEYS:
            _sql(s, value, low, path)
        if is_command or "://" in value:
            _urls(s, value, low, path, command=is_command)
    return s.hits


def _command(s: _Scan, command: str, path: tuple[PathPart, ...], shell: bool) -> None:
    privileged = _PRIVILEGE.search(command) is not None
    severity: Severity = "high" if privileged else "medium"
    note = " with elevated privileges" if privileged else ""
    s.add("danger.shell_exec", severity, f"runs a command{note}: {_short(command, 60)!r}", path)
    for regex, sev, label in REMOTE_CODE:
        if regex.search(command):
            s.add("danger.remote_code", sev, f"{label}", path)
            break
    for regex, sev, label in DESTRUCTIVE_COMMANDS:
        if regex.search(command):
            s.add("danger.destructive_command", sev, f"{label}", path)
            break


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
    arguments: Any,
    strings: list[tuple[tuple[PathPart, ...], str]],
    name_path: str,
) -> None:
    if info.read_only is True or info.destructive is False:
        return
    tokens = name_tokens(name)
    verb = next((t for t in tokens if t in _DESTRUCTIVE_VERBS), None)
    if verb is None:
        if info.destructive is True:
            s.add("danger.destructive_tool", "low", f"tool {name!r} is annotated as destructive", name_path)
        return
    broad = _truthy(arguments, "recursive", "force", "all", "cascade", "purge") or any(
        v.strip().lower() in _BROAD_TARGETS for _, v in strings
    )
    severity: Severity = "high" if broad else "medium"
    detail = " (recursive/forced or a broad target)" if broad else ""
    s.add(
        "danger.destructive_tool",
        severity,
        f"tool {name!r} deletes or destroys data ({verb}){detail}",
        name_path,
    )


def _sensitive(s: _Scan, value: str, low: str, path: tuple[PathPart, ...]) -> None:
    for gate in _SENSITIVE_GATES:
        if gate in low:
            break
    else:
        return
    text = low.replace("\\", "/")
    for regex, sev, label in SENSITIVE_PATHS:
        if regex.search(text):
            s.add("danger.sensitive_path", sev, f"accesses {label}: {_short(value, 60)!r}", path)
            return


def _sql(s: _Scan, value: str, low: str, path: tuple[PathPart, ...]) -> None:
    if not any(g in low for g in _SQL_GATES):
        return
    text = _SQL_COMMENTS.sub(" ", low) if ("--" in low or "/*" in low or "#" in low) else low
    for regex, sev, label in _SQL_RULES:
        if regex.search(text):
            s.add("danger.destructive_sql", sev, f"{label}: {_short(value, 60)!r}", path)
            return
    for statement in text.split(";"):
        for regex, label in ((_DELETE, "DELETE without WHERE"), (_UPDATE, "UPDATE without WHERE")):
            m = regex.search(statement)
            if m is None:
                continue
            if regex is _DELETE and not _SQL_TAIL.match(statement, m.end()):
                continue  # "how to delete from a list in python"
            where = _WHERE.search(statement, m.end())
            if where is None or where.group().strip() != "where":
                if where is not None:
                    label = label.replace("without WHERE", "with an always-true WHERE")
                s.add("danger.destructive_sql", "high", f"{label}: {_short(value, 60)!r}", path)
                return


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
