"""What a file path names: a credential store, a startup or system location, a project or a
temporary directory. Used for tool arguments, resource URIs and the words of shell commands.

Paths are compared in one normal form (:func:`normalise`): lower case, ``/`` separators, the
home directory as ``~`` (``$HOME``, ``%USERPROFILE%``, ``/home/<user>``, ``/Users/<user>``,
``C:\\Users\\<user>``, ``/root``), no ``file://`` prefix.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

from .findings import Severity


class Place(NamedTuple):
    severity: Severity
    label: str


def _rules(*items: tuple[str, Severity, str]) -> tuple[tuple[re.Pattern[str], Place], ...]:
    return tuple((re.compile(p), Place(s, label)) for p, s, label in items)


CREDENTIALS = _rules(
    (r"\bid_(?:rsa|dsa|ecdsa|ed25519)(?:_sk)?(?![\w.])", "high", "SSH private key"),
    (r"(?:^|[\s/\"'=:~])\.ssh(?:/(?!(?:config|known_hosts|[^/]*\.pub)$)|$)", "high", "SSH directory"),
    (r"\bauthorized_keys\b", "high", "SSH authorized_keys"),
    (r"/etc/(?:shadow|gshadow|sudoers|master\.passwd)\b", "high", "system password/sudo file"),
    (r"/etc/passwd\b", "medium", "/etc/passwd"),
    (
        r"(?:^|[\s/\"'=:])\.env(?:rc|\.(?!example\b|sample\b|template\b|dist\b|defaults?\b|schema\b)[\w-]+)?"
        r"(?=$|[\s\"',;)])",
        "high",
        ".env file",
    ),
    (r"\.aws/(?:credentials|config)\b|\baws_shared_credentials_file\b", "high", "AWS credentials"),
    (r"\.config/gcloud\b|application_default_credentials\.json", "high", "Google Cloud credentials"),
    (r"\.azure/(?:accesstokens\.json|msal_token_cache|azureprofile\.json)?", "high", "Azure credentials"),
    (r"\.kube/config\b", "high", "Kubernetes credentials"),
    (r"\.docker/config\.json", "high", "Docker registry credentials"),
    (r"(?:^|[\s/\"'~])[._]netrc\b", "high", ".netrc credentials"),
    (
        r"(?:^|[\s/\"'~])\.(?:npmrc|pypirc|git-credentials|vault-token|pgpass|my\.cnf)\b",
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
CREDENTIAL_GATES = (
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

_STARTUP_FILES = frozenset(
    {
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".bash_logout",
        ".profile",
        ".zshrc",
        ".zprofile",
        ".zshenv",
        ".zlogin",
        ".cshrc",
        ".tcshrc",
        ".kshrc",
        ".login",
        ".xinitrc",
        ".xprofile",
        "microsoft.powershell_profile.ps1",
        "profile.ps1",
        "config.fish",
        "rc.local",
        "ld.so.preload",
        "crontab",
    }
)
_STARTUP_DIRS = (
    "/.config/autostart/",
    "/library/launchagents/",
    "/library/launchdaemons/",
    "/library/startupitems/",
    "/etc/cron",
    "/var/spool/cron/",
    "/etc/systemd/",
    "/.config/systemd/",
    "/lib/systemd/system/",
    "/etc/init.d/",
    "/etc/init/",
    "/etc/profile.d/",
    "/etc/xdg/autostart/",
    "/start menu/programs/startup/",
    "/.ssh/rc",
    "/.ssh/config",
)
_SYSTEM_PREFIXES = (
    "/etc/",
    "/usr/",
    "/bin/",
    "/sbin/",
    "/lib/",
    "/lib64/",
    "/lib32/",
    "/boot/",
    "/system/",
    "/library/",
    "/var/lib/",
    "/var/db/",
    "/dev/",
    "/proc/sys/",
    "/sys/",
    "c:/windows/",
    "c:/program files",
    "c:/programdata/",
)
_HARMLESS_DEVICES = frozenset(
    {"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/stdin", "/dev/zero", "/dev/random"}
)
_PROJECT_DIRS = frozenset(
    {
        "projects",
        "project",
        "src",
        "source",
        "code",
        "repos",
        "repo",
        "git",
        "dev",
        "work",
        "workspace",
        "workspaces",
        "github",
        "gitlab",
        "sandbox",
        "builds",
    }
)
BUILD_DIRS = frozenset(
    {
        "build",
        "dist",
        "out",
        "target",
        "node_modules",
        ".next",
        ".nuxt",
        "coverage",
        "__pycache__",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
        ".cache",
        ".venv",
        "venv",
        ".tox",
        ".parcel-cache",
        ".turbo",
        "tmp",
        "temp",
        "bin",
        "obj",
        "_build",
        ".gradle",
        "vendor",
        "logs",
        "log",
    }
)
_HOME = re.compile(
    r"^(?:/home/[^/]+|/users/[^/]+|[a-z]:/users/[^/]+|/root|\$home|\$\{home\}|%userprofile%|\$env:userprofile)(?=/|$)"
)
_DRIVE = re.compile(r"^[a-z]:/")
CACHE_DIRS = frozenset(
    {
        ".cache",
        "caches",
        "cache",
        "__pycache__",
        ".npm",
        ".yarn",
        "node_modules",
        ".pytest_cache",
        "tmp",
        "temp",
    }
)
"""Folders whose contents are rebuilt on demand: deleting them loses nothing."""
BROAD = frozenset(
    {"/", "/*", "~", "~/", "~/*", "c:/", "c:/*", "/home", "/users", "/home/*", "/users/*", "c:/users"}
)
"""Targets whose deletion wipes a machine or a home directory."""


def normalise(path: str) -> str:
    p = path.strip().strip("\"'").replace("\\", "/").lower()
    if p.startswith("file://"):
        p = unquote(p[7:])
        if p.startswith("localhost/"):
            p = p[9:]
        if re.match(r"^/[a-z]:/", p):
            p = p[1:]
    while "//" in p:
        p = p.replace("//", "/")
    m = _HOME.match(p)
    if m:
        p = "~" + p[m.end() :]
    return p


def credential(path: str) -> Place | None:
    """A credential store or key file (``~/.ssh/id_rsa``, ``.env``, ``~/.aws/credentials``...)."""
    low = path.lower()
    if not any(g in low for g in CREDENTIAL_GATES):
        return None
    text = normalise(path)
    for regex, place in CREDENTIALS:
        if regex.search(text):
            return place
    return None


def startup(path: str) -> str | None:
    """A file or folder whose contents run at login, boot or on a schedule."""
    p = normalise(path)
    base = p.rstrip("/").rsplit("/", 1)[-1]
    if base in _STARTUP_FILES and (
        p.startswith(("~", "/etc/", "/root/")) or "/" not in p or "/.config/" in p
    ):
        return f"startup file {base}"
    if any(d in p for d in _STARTUP_DIRS):
        return "startup location"
    return None


def system(path: str) -> str | None:
    """An operating-system location (``/etc``, ``/usr``, ``C:\\Windows``, block devices...)."""
    p = normalise(path)
    if p in _HARMLESS_DEVICES or p.startswith("/dev/fd/"):
        return None
    if p.startswith(_SYSTEM_PREFIXES) or p.rstrip("/") in ("/etc", "/usr", "/bin", "/boot", "c:/windows"):
        if p.startswith("/usr/local/") and "/bin/" not in p:
            return None
        return "system location"
    return None


_TEMPORARY = (
    "/tmp/",
    "/var/tmp/",
    "/private/tmp/",
    "$tmpdir",
    "${tmpdir}",
    "%temp%",
    "~/appdata/local/temp/",
)


def is_temporary(path: str) -> bool:
    p = normalise(path).rstrip("/") + "/"
    return p.startswith(_TEMPORARY)


def is_project(path: str) -> bool:
    """Inside a working directory: a relative path that does not climb out, or an absolute path under
    a projects/src/code folder, or a build artefact folder deep enough not to be a system one."""
    p = normalise(path).rstrip("/")
    if not p or p in BROAD or p in (".", "..", "./", "./*", "../*"):
        return False
    if p.startswith(("~", "/", "$")) or _DRIVE.match(p):
        parts = [x for x in p.split("/") if x]
        if ".." in parts:
            return False
        # a folder inside a project under a projects/src/code... folder, not the project itself
        roots = [i for i, part in enumerate(parts[1:-1], 1) if part in _PROJECT_DIRS]
        inside = bool(roots) and len(parts) - roots[0] - 1 >= 2
        build = parts[-1] in BUILD_DIRS and len(parts) >= 3
        return inside or build
    parts = p.split("/")
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        elif part not in (".", ""):
            depth += 1
    return True
