"""What a shell command line does, judged by consequence (see :mod:`kilometers.analysis.danger`).

The line is parsed into simple commands (:mod:`kilometers.analysis.shell`); each program is
judged by its arguments and the paths it touches (:mod:`kilometers.analysis.locations`):

* ``danger.remote_code`` (critical): a download piped into an interpreter (``curl … | sh``,
  ``bash -c "$(curl …)"``, ``sh <(wget …)``), decoded code run (``base64 -d | sh``), reverse
  shells (``/dev/tcp``, ``nc -e``, ``socat exec:``, a ``mkfifo`` relay, socket one-liners), a
  downloaded file made executable and run, PowerShell download cradles and encoded commands.
* ``danger.exfiltration`` (high): files, credentials or the environment sent to the network
  (``cat ~/.aws/credentials | curl -d @- …``, ``env | nc``, ``curl -F f=@~/.ssh/id_rsa``,
  ``scp ~/.ssh/id_rsa host:``, ``tar c ~ | ssh …``, a credential variable in a request).
* ``danger.destructive_command``: deletions by what they delete (``rm -rf /``, ``~``, ``*`` and
  disk wipes: critical; recursive deletion outside a project, system files: high; a file
  outside a project: medium; a build folder or file inside the project, temporary files: low),
  forced pushes, ``terraform destroy``, ``kubectl delete``, firewall off, history wiped...
* ``danger.system_write`` (high): writes to system, startup or credential locations
  (``>> ~/.bashrc``, ``tee /etc/…``, ``cp key ~/.ssh/authorized_keys``, ``crontab -``,
  launch agents, registry ``Run`` keys, scheduled tasks).
* ``danger.sensitive_path`` (high): reads of credential stores and key stores
  (``cat ~/.ssh/id_rsa``, ``security find-generic-password``, cloud metadata endpoints).
* ``danger.shell_exec`` (medium): the command runs with elevated privileges (``sudo``...).

An ordinary command (``ls``, ``git status``, ``npm test``, ``rm -rf build``'s low aside) is
not a finding: running a shell is what a shell tool is for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

from . import locations
from .findings import SEVERITY_RANK, Severity
from .shell import SUB, Command, Script, parse
from .text import credential_key_kind


class Verdict(NamedTuple):
    rule: str
    severity: Severity
    label: str


_DOWNLOADERS = frozenset(
    {"curl", "wget", "fetch", "iwr", "irm", "invoke-webrequest", "invoke-restmethod", "aria2c", "http", "xh"}
)
_INTERPRETERS = frozenset(
    {
        "sh",
        "bash",
        "zsh",
        "dash",
        "ksh",
        "fish",
        "ash",
        "python",
        "python2",
        "python3",
        "perl",
        "ruby",
        "node",
        "php",
        "iex",
        "invoke-expression",
        "pwsh",
        "powershell",
        "source",
        ".",
        "eval",
        "bun",
        "deno",
        "osascript",
    }
)
_NETWORK_SINKS = frozenset(
    {
        "curl",
        "wget",
        "nc",
        "ncat",
        "netcat",
        "socat",
        "telnet",
        "ssh",
        "scp",
        "sftp",
        "ftp",
        "tftp",
        "openssl",
        "mail",
        "mailx",
        "sendmail",
        "mutt",
        "http",
        "xh",
        "invoke-webrequest",
        "invoke-restmethod",
        "iwr",
        "irm",
        "rclone",
        "aws",
        "gsutil",
        "az",
        "nslookup",
        "dig",
        "host",
    }
)
_READERS = frozenset(
    {
        "cat",
        "tac",
        "head",
        "tail",
        "less",
        "more",
        "tar",
        "zip",
        "gzip",
        "bzip2",
        "xz",
        "7z",
        "base64",
        "base32",
        "xxd",
        "od",
        "hexdump",
        "gpg",
        "openssl",
        "strings",
        "find",
        "type",
        "get-content",
        "gc",
        "dd",
        "cp",
        "cpio",
    }
)
_ENV_DUMPS = frozenset({"env", "printenv", "set", "export", "declare", "get-childitem"})
_DELETERS = frozenset(
    {"rm", "unlink", "rmdir", "del", "erase", "rd", "remove-item", "ri", "rimraf", "shred", "srm", "trash"}
)
_DISK_WIPES = frozenset({"mkfs", "wipefs", "clear-disk", "format-volume", "initialize-disk", "blkdiscard"})
_PARTITIONERS = frozenset({"fdisk", "sfdisk", "parted", "gdisk", "sgdisk", "diskpart", "cfdisk"})
_COPIERS = frozenset(
    {"cp", "mv", "install", "ln", "rsync", "copy", "move", "copy-item", "move-item", "xcopy"}
)
_EDITORS = frozenset(
    {
        "tee",
        "touch",
        "chmod",
        "chown",
        "chgrp",
        "chattr",
        "truncate",
        "set-content",
        "add-content",
        "out-file",
    }
)
_CREDENTIAL_DUMPERS: dict[str, tuple[str, ...]] = {
    "security": ("find-generic-password", "find-internet-password", "dump-keychain", "export"),
    "gpg": ("--export-secret-keys", "--export-secret-subkeys"),
    "mimikatz": ("",),
    "secretsdump.py": ("",),
    "lazagne": ("",),
    "cmdkey": ("/list",),
    "vaultcmd": ("/listcreds",),
    "reg": ("hklm\\sam", "hklm/sam", "hklm\\security", "hklm/security"),
}
_METADATA_ONLY = frozenset(
    {
        "ls",
        "dir",
        "stat",
        "du",
        "tree",
        "file",
        "test",
        "[",
        "mkdir",
        "chmod",
        "chown",
        "chgrp",
        "ssh-add",
        "ssh-keygen",
        "wc",
        "exa",
        "eza",
        "get-childitem",
        "gci",
        "realpath",
        "dirname",
        "basename",
    }
)
_RECURSIVE_FLAGS = frozenset({"-r", "-R", "--recursive", "/s", "-recurse"})
_FORK_BOMB = re.compile(r"(\w+|:)\(\)\{\1\|\1&\};\1")
_SOCKETS = ("socket", "fsockopen", "tcpsocket", "net.connect", "net.socket", "io::socket")
_SHELL_HOOKS = (
    "connect",
    "dup2",
    "pty.spawn",
    "fsockopen",
    "exec",
    "spawn",
    "/bin/sh",
    "/bin/bash",
    "cmd.exe",
)
_METADATA_HOSTS = frozenset(
    {
        "169.254.169.254",
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "100.100.100.200",
        "fd00:ec2::254",
        "169.254.170.2",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
    }
)
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_BUILD_SUFFIXES = (".o", ".obj", ".pyc", ".class", ".log", ".tmp", ".bak", ".orig", ".swp")
_MAX_COMMAND_CHARS = 16_384
_MAX_CACHED_CHARS = 2048
"""Characters of a command line parsed (a longer one is judged by its beginning)."""


def metadata_host(url: str) -> bool:
    """The URL is a cloud instance metadata endpoint (which hands out the machine's credentials)."""
    try:
        host = urlsplit(url if "://" in url else "http://" + url).hostname or ""
    except ValueError:
        return False
    return host.rstrip(".") in _METADATA_HOSTS


def judge(text: str) -> tuple[Verdict, ...]:
    """The verdicts for one command line, worst first per rule (one per rule).

    Short lines are cached: agents run the same commands (``npm test``, ``git status``) often.
    """
    return _cached(text) if len(text) <= _MAX_CACHED_CHARS else _judge(text)


@lru_cache(maxsize=2048)
def _cached(text: str) -> tuple[Verdict, ...]:
    return _judge(text)


def _judge(text: str) -> tuple[Verdict, ...]:
    text = text[:_MAX_COMMAND_CHARS]
    script = parse(text)
    found: dict[str, Verdict] = {}

    def add(rule: str, severity: Severity, label: str) -> None:
        old = found.get(rule)
        if old is None or SEVERITY_RANK[severity] > SEVERITY_RANK[old.severity]:
            found[rule] = Verdict(rule, severity, label)

    compact = "".join(text.split())
    if _FORK_BOMB.search(compact):
        add("danger.destructive_command", "critical", "fork bomb")
    for sub in script.scripts():
        for verdict in _script(sub):
            add(*verdict)
    for command in script.commands():
        for verdict in _command(command):
            add(*verdict)
    return tuple(sorted(found.values(), key=lambda v: -SEVERITY_RANK[v.severity]))


# -- whole scripts: pipelines and sequences ------------------------------------------------------


def _script(script: Script) -> Iterator[Verdict]:
    downloaded: set[str] = set()
    names = {c.name for c in script.commands()}
    words = " ".join(" ".join(c.argv).lower() for c in script.commands())
    if names & {"iex", "invoke-expression"} and any(
        w in words for w in ("downloadstring", "net.webclient", "iwr ", "invoke-webrequest", "downloadfile")
    ):
        yield Verdict("danger.remote_code", "critical", "runs a downloaded PowerShell script")
    if "mkfifo" in names and names & {"nc", "ncat", "netcat", "telnet", "openssl"} and names & _INTERPRETERS:
        yield Verdict("danger.remote_code", "critical", "reverse shell (mkfifo relay)")
    for pipeline in script.pipelines:
        yield from _pipeline(pipeline)
        for command in pipeline:
            target = _download_target(command)
            if target:
                downloaded.add(target)
            elif downloaded and _runs_one_of(command, downloaded):
                yield Verdict("danger.remote_code", "critical", "downloads and runs a program")


def _pipeline(pipeline: list[Command]) -> Iterator[Verdict]:
    source: str | None = None
    decoded = False
    for i, command in enumerate(pipeline):
        name = command.name
        if i > 0 and name in _INTERPRETERS and not _has_script_file(command):
            if any(p.name in _DOWNLOADERS for p in pipeline[:i]):
                yield Verdict("danger.remote_code", "critical", "pipes a download into an interpreter")
            elif decoded:
                yield Verdict("danger.remote_code", "critical", "runs decoded code")
        if i > 0 and source is not None and name in _NETWORK_SINKS and not _local_only(command):
            yield Verdict("danger.exfiltration", "high", f"sends {source} to the network")
        if name in ("base64", "base32", "xxd", "openssl") and any(
            a in ("-d", "--decode", "-D", "-r", "-decode") for a in command.args
        ):
            decoded = True
        if source is None:
            source = _source(command)


def _source(command: Command) -> str | None:
    """What a command feeds into a pipe when that is worth not sending: files, secrets, env."""
    name = command.name
    if name in _ENV_DUMPS and not command.args:
        return "the environment"
    if name in _READERS or name in _DOWNLOADERS:
        for arg in _operands(command):
            if locations.credential(arg) or locations.credential(arg.replace("~", "/~")):
                return "a credential file"
        if name in _READERS and name not in ("find", "dd", "cp"):
            operands = _operands(command)
            if any(o in locations.BROAD or locations.normalise(o) in locations.BROAD for o in operands):
                return "the home or root directory"
            if operands:
                return "local files"
    if _dumps_credentials(command):
        return "credentials"
    for target in command.redirects:
        if target[0] == "<" and locations.credential(target[1]):
            return "a credential file"
    return None


# -- single commands -----------------------------------------------------------------------------


def _command(command: Command) -> Iterator[Verdict]:
    name = command.name
    args = command.args
    if command.privileged:
        yield Verdict("danger.shell_exec", "medium", "runs a command with elevated privileges")
    yield from _redirects(command)
    if name in _DELETERS:
        yield from _delete(command)
    elif name.startswith("mkfs") or name in _DISK_WIPES:
        yield Verdict("danger.destructive_command", "critical", "disk wipe")
    elif name == "format" and args and re.fullmatch(r"[a-z]:", args[0].lower()):
        yield Verdict("danger.destructive_command", "critical", "formats a drive")
    elif name in _PARTITIONERS and not {"-l", "--list", "print", "-s"} & set(args):
        yield Verdict("danger.destructive_command", "high", "repartitions a disk")
    elif name == "dd":
        yield from _dd(command)
    elif name == "git":
        yield from _git(args)
    elif name == "find" and ("-delete" in args or _find_exec_rm(args)):
        start = next((a for a in args if not a.startswith("-")), ".")
        # find deletes what matches beneath its start (named by -name when given)
        pattern = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-name", "-iname")), None)
        target = start.rstrip("/") + "/" + pattern if pattern else start
        yield from _delete_targets([target], recursive=True, label="find -delete")
    elif name == "truncate" and _shrinks(args):
        size = {a for i, a in enumerate(args) if i > 0 and args[i - 1] in ("-s", "--size")}
        targets = [a for a in _operands(command) if a not in size]
        yield from _delete_targets(targets, recursive=False, label="truncation")
    elif name in _COPIERS or name in _EDITORS or name == "sed":
        yield from _writes(command)
    elif name == "crontab" and args and not set(args) & {"-l", "-r"}:
        yield Verdict("danger.system_write", "high", "installs a crontab (runs on a schedule)")
    elif name == "crontab" and "-r" in args:
        yield Verdict("danger.destructive_command", "medium", "removes the crontab")
    elif name == "launchctl" and args and args[0] in ("load", "bootstrap", "submit", "enable"):
        yield Verdict("danger.system_write", "high", "registers a launch agent/daemon")
    elif name == "schtasks" and any(a.lower() == "/create" for a in args):
        yield Verdict("danger.system_write", "high", "creates a scheduled task")
    elif name == "reg" or name in ("new-itemproperty", "set-itemproperty"):
        yield from _registry(command)
    elif name == "systemctl" and args:
        yield from _systemctl(args)
    elif name in ("shutdown", "reboot", "poweroff", "halt") or (
        name == "init" and args[:1] in (["0"], ["6"])
    ):
        yield Verdict("danger.destructive_command", "medium", "shuts the machine down")
    elif name == "killall5" or (
        name in ("kill", "pkill") and "-1" in args and {"-9", "-kill", "-KILL"} & set(args)
    ):
        yield Verdict("danger.destructive_command", "high", "kills all processes")
    elif (name == "iptables" and set(args) & {"-F", "--flush"}) or (name == "ufw" and "disable" in args):
        yield Verdict("danger.destructive_command", "high", "disables the firewall")
    elif name == "setenforce" and args[:1] == ["0"]:
        yield Verdict("danger.destructive_command", "high", "disables SELinux")
    elif (name == "history" and "-c" in args) or (
        name == "unset" and any(a.lower() == "histfile" for a in args)
    ):
        yield Verdict("danger.destructive_command", "high", "clears shell history")
    elif name == "terraform" and args and (args[0] == "destroy" or "-destroy" in args):
        yield Verdict("danger.destructive_command", "high", "terraform destroy")
    elif name == "kubectl" and args[:1] == ["delete"]:
        broad = bool({"--all", "-A", "--all-namespaces", "namespace", "ns", "namespaces"} & set(args))
        yield Verdict("danger.destructive_command", "high" if broad else "medium", "kubectl delete")
    elif name in ("docker", "podman") and args:
        yield from _docker(args)
    elif name in ("aws", "gcloud", "az", "gsutil"):
        yield from _cloud(name, args)
    yield from _network(command)
    yield from _remote_shell(command)
    yield from _sensitive_reads(command)
    yield from _inline_sql(command)


def _shrinks(args: list[str]) -> bool:
    """``truncate -s 0`` / ``--size=-10K``: the size empties or shrinks the files."""
    for i, a in enumerate(args):
        size = args[i + 1] if a in ("-s", "--size") and i + 1 < len(args) else None
        if a.startswith("--size="):
            size = a[7:]
        elif a.startswith("-s") and len(a) > 2:
            size = a[2:]
        if size is not None and size.startswith(("0", "-", "<", "/")):
            return True
    return False


def _operands(command: Command) -> list[str]:
    return [a for a in command.args if a and not a.startswith("-") and SUB not in a]


def _redirects(command: Command) -> Iterator[Verdict]:
    for op, target in command.redirects:
        low = target.lower()
        if "/dev/tcp/" in low or "/dev/udp/" in low:
            yield Verdict("danger.remote_code", "critical", "reverse shell (/dev/tcp)")
        elif op.startswith((">", "&")) or op == "<>":
            if re.match(r"/dev/(?:sd[a-z]|nvme|hd[a-z]|disk\d|xvd|mmcblk)", low):
                yield Verdict("danger.destructive_command", "critical", "raw write to a device")
            else:
                yield from _write_target(target)


def _write_target(path: str) -> Iterator[Verdict]:
    place = locations.credential(path)
    if place is not None and place.severity == "high" and not locations.is_project(path):
        yield Verdict("danger.system_write", "high", f"writes to {place.label}")
        return
    label = locations.startup(path) or locations.system(path)
    if label is not None:
        yield Verdict("danger.system_write", "high", f"writes to a {label}: {path[:60]}")


def _delete(command: Command) -> Iterator[Verdict]:
    args = command.args
    flags = {a.lower() for a in args if a.startswith("-") or re.fullmatch(r"/[a-zA-Z?]", a)}
    recursive = bool(
        {
            f
            for f in flags
            if f in _RECURSIVE_FLAGS or (f.startswith("-") and not f.startswith("--") and "r" in f.lower())
        }
    ) or command.name in ("rd", "rimraf")
    if "--no-preserve-root" in flags:
        yield Verdict("danger.destructive_command", "critical", "recursive delete of /")
        return
    targets = [a for a in args if a.lower() not in flags and a != "--"]
    label = "shredding" if command.name in ("shred", "srm") else "deletion"
    yield from _delete_targets(targets, recursive=recursive, label=label)


def _delete_targets(targets: list[str], *, recursive: bool, label: str) -> Iterator[Verdict]:
    worst: Severity | None = None
    what = ""
    severity: Severity
    for target in targets or ["."]:
        severity, reason = (
            ("high", "a computed path") if SUB in target else deletion_severity(target, recursive)
        )
        if worst is None or SEVERITY_RANK[severity] > SEVERITY_RANK[worst]:
            worst, what = severity, reason
    if worst is not None and worst != "info":
        kind = "recursive delete" if recursive else label
        yield Verdict("danger.destructive_command", worst, f"{kind} of {what}")


def deletion_severity(target: str, recursive: bool) -> tuple[Severity, str]:
    """(severity, what) of deleting ``target``: ``/`` and ``~`` critical; system files, credentials and
    folders outside a project high; files in a project low; build output and temporary files
    ``info`` (not a finding)."""
    p = locations.normalise(target).rstrip("/") or "/"
    if (
        p in locations.BROAD
        or p in ("/", "~", "$home", "${home}", "c:")
        or (p.startswith(("/", "~")) and p.rstrip("/*") in ("", "~"))
    ):
        return "critical", "/, ~ or everything"
    if p in ("*", ".", "./*", "..", "../*"):
        return ("high" if recursive else "medium"), "the whole working directory"
    if locations.credential(target):
        return "high", "credentials"
    if locations.system(target) or locations.startup(target):
        return "high", "system files"
    if any(part in locations.CACHE_DIRS for part in p.split("/")[1:]):
        return "info", "caches"
    if "$" in p and not p.startswith(("$tmpdir", "${tmpdir}")):
        return ("high" if recursive else "medium"), "a path built from a variable"
    if locations.is_temporary(target):
        return "info", "temporary files"
    if locations.is_project(target):
        parts = p.split("/")
        if any(part in locations.BUILD_DIRS for part in parts) or parts[-1].endswith(_BUILD_SUFFIXES):
            return "info", "build output in the project"
        return "low", "files in the project"
    return ("high" if recursive else "medium"), "files outside the project"


def _dd(command: Command) -> Iterator[Verdict]:
    for arg in command.args:
        if arg.startswith("of="):
            target = arg[3:]
            if re.match(r"/dev/(?:sd[a-z]|nvme|hd[a-z]|disk\d|xvd|mmcblk|rdisk)", target.lower()):
                yield Verdict("danger.destructive_command", "critical", "raw write to a device (dd)")
            else:
                yield from _write_target(target)


def _git(args: list[str]) -> Iterator[Verdict]:
    sub = args[0] if args else ""
    rest = set(args[1:])
    if sub == "push" and (
        rest & {"--force", "-f", "--force-with-lease", "--delete", "-d", "--mirror", "--prune"}
        or any(a.startswith((":", "+")) for a in args[1:])
    ):
        yield Verdict("danger.destructive_command", "high", "forced git push (rewrites shared history)")
    elif (
        (sub == "reset" and "--hard" in rest)
        or (sub == "clean" and any(a.startswith("-") and "f" in a for a in rest))
        or (sub == "branch" and rest & {"-D", "--delete"})
        or (sub in ("checkout", "restore") and "." in rest)
    ):
        yield Verdict("danger.destructive_command", "medium", f"discards local git work (git {sub})")
    elif sub == "filter-branch" or (sub == "update-ref" and "-d" in rest):
        yield Verdict("danger.destructive_command", "medium", f"rewrites git history (git {sub})")


def _find_exec_rm(args: list[str]) -> bool:
    for i, a in enumerate(args):
        if (
            a in ("-exec", "-execdir", "-ok")
            and i + 1 < len(args)
            and args[i + 1].rsplit("/", 1)[-1] in ("rm", "shred")
        ):
            return True
    return False


def _writes(command: Command) -> Iterator[Verdict]:
    name = command.name
    operands = _operands(command)
    if name == "sed":
        if not any(a.startswith("-i") or a == "--in-place" for a in command.args):
            return
        operands = operands[1:]
    elif name in _COPIERS:
        target_dir = next(
            (
                command.args[i + 1]
                for i, a in enumerate(command.args[:-1])
                if a in ("-t", "--target-directory")
            ),
            None,
        )
        operands = [target_dir] if target_dir else operands[-1:] if len(operands) >= 2 else []
    elif name in ("chmod", "chown", "chgrp"):
        mode = operands[0] if operands else ""
        targets = operands[1:]
        recursive = any(a in ("-R", "--recursive") or (a.startswith("-") and "R" in a) for a in command.args)
        if name == "chmod" and re.fullmatch(r"0?777|a\+rwx|o\+w", mode):
            broad = any(deletion_severity(t, recursive)[0] in ("high", "critical") for t in targets)
            yield Verdict(
                "danger.destructive_command",
                "high" if broad else "low",
                "makes files world-writable" + (" outside the project" if broad else ""),
            )
        elif recursive and any(locations.normalise(t).rstrip("/") in ("", "/", "~") for t in targets):
            yield Verdict("danger.destructive_command", "high", f"recursive {name} of / or ~")
        operands = targets
    elif name in ("set-content", "add-content", "out-file"):
        operands = [
            command.args[i + 1]
            for i, a in enumerate(command.args[:-1])
            if a.lower() in ("-path", "-filepath")
        ] or operands[:1]
    for target in operands:
        yield from _write_target(target)


def _registry(command: Command) -> Iterator[Verdict]:
    words = " ".join(command.args).lower().replace("/", "\\")
    adds = command.name != "reg" or (
        command.args[:1] and command.args[0].lower() in ("add", "import", "copy")
    )
    if command.name == "reg" and command.args[:1] and command.args[0].lower() in ("save", "export"):
        if any(h in words for h in ("hklm\\sam", "hklm\\security", "hklm\\system")):
            yield Verdict("danger.sensitive_path", "high", "dumps a Windows credential hive")
        return
    if adds and re.search(
        r"\\currentversion\\(?:run|runonce|runservices)\b|\\winlogon\b|\\image file execution", words
    ):
        yield Verdict("danger.system_write", "high", "writes a registry autostart key (Run)")
    elif (
        command.name == "reg" and command.args[:1] and command.args[0].lower() == "delete" and "hklm" in words
    ):
        yield Verdict("danger.destructive_command", "high", "deletes machine registry keys")


def _systemctl(args: list[str]) -> Iterator[Verdict]:
    if args[0] in ("poweroff", "reboot", "halt"):
        yield Verdict("danger.destructive_command", "medium", "shuts the machine down")
    elif args[0] in ("stop", "disable", "mask") and any(
        s.startswith(("firewalld", "ufw", "auditd", "apparmor", "iptables")) for s in args[1:]
    ):
        yield Verdict("danger.destructive_command", "high", "disables a security service")


def _docker(args: list[str]) -> Iterator[Verdict]:
    sub = args[0]
    rest = set(args[1:])
    if (sub == "system" and "prune" in rest) or (sub == "volume" and rest & {"rm", "prune"}):
        yield Verdict("danger.destructive_command", "high", "deletes docker volumes/data")
    elif sub in ("rm", "rmi") and rest & {"-f", "--force"}:
        yield Verdict(
            "danger.destructive_command",
            "medium",
            f"force-removes docker {'images' if sub == 'rmi' else 'containers'}",
        )
    elif sub == "run" and any(a.startswith(("/:/", "/:")) or a in ("--privileged",) for a in args[1:]):
        yield Verdict("danger.shell_exec", "medium", "runs a privileged container or mounts /")


def _cloud(name: str, args: list[str]) -> Iterator[Verdict]:
    words = set(args)
    if name in ("aws", "gsutil") and (words & {"rm", "rb"}):
        broad = bool(words & {"--recursive", "-r", "rb", "--force"})
        yield Verdict(
            "danger.destructive_command", "high" if broad else "medium", f"deletes cloud storage ({name})"
        )
    elif any(a == "delete" or a.startswith(("delete-", "terminate-")) for a in args):
        yield Verdict("danger.destructive_command", "high", f"deletes cloud resources ({name})")
    if (
        name == "aws"
        and args[:2] == ["configure", "get"]
        and any("secret" in a or "token" in a for a in args)
    ):
        yield Verdict("danger.sensitive_path", "high", "prints AWS credentials")
    if name == "gcloud" and "print-access-token" in words:
        yield Verdict("danger.sensitive_path", "high", "prints a cloud access token")


def _network(command: Command) -> Iterator[Verdict]:
    """Uploads of credentials and env dumps by a single network command; metadata endpoints."""
    name = command.name
    if name not in _NETWORK_SINKS and name not in _DOWNLOADERS:
        return
    args = command.args
    for arg in args:
        if ("://" in arg or (name in _DOWNLOADERS and not arg.startswith("-"))) and metadata_host(arg):
            yield Verdict(
                "danger.sensitive_path", "high", "reads the cloud instance metadata endpoint (credentials)"
            )
            break
    uploads: list[str] = [t for op, t in command.redirects if op == "<" and SUB not in t]
    for i, arg in enumerate(args):
        value = arg
        if i > 0 and args[i - 1] in (
            "-d",
            "--data",
            "--data-binary",
            "--data-raw",
            "--data-urlencode",
            "-F",
            "--form",
            "-T",
            "--upload-file",
            "--post-file",
            "--body-file",
            "-InFile",
            "-Body",
        ):
            uploads.append(value)
        elif arg.startswith(("--post-file=", "--body-file=", "--data=", "--data-binary=", "--upload-file=")):
            uploads.append(arg.split("=", 1)[1])
    if (
        name in ("scp", "rsync", "sftp")
        or (name == "aws" and "cp" in args)
        or (name in ("gsutil", "rclone") and "cp" in args)
    ):
        uploads.extend(_operands(command)[:-1])
    for value in uploads:
        file = value.split("@", 1)[1] if "@" in value else value
        file = file.split(";", 1)[0]
        if locations.credential(file) or locations.credential(value):
            yield Verdict("danger.exfiltration", "high", "uploads a credential file")
            return
        if locations.normalise(file).rstrip("/") in ("~", "/", ""):
            yield Verdict("danger.exfiltration", "high", "uploads the home or root directory")
            return
    for word in args:
        for var in _VARIABLE.findall(word):
            if credential_key_kind(var):
                yield Verdict(
                    "danger.exfiltration", "high", f"sends the credential variable ${var} to the network"
                )
                return
        if SUB in word:
            for sub in command.subs:
                for inner in sub.commands():
                    if (inner.name in _ENV_DUMPS and not inner.args) or _source(inner) == "a credential file":
                        yield Verdict(
                            "danger.exfiltration",
                            "high",
                            "sends credentials or the environment to the network",
                        )
                        return


def _remote_shell(command: Command) -> Iterator[Verdict]:
    name = command.name
    args = command.args
    low = [a.lower() for a in args]
    if name in ("nc", "ncat", "netcat") and any(
        a.startswith("-") and not a.startswith("--") and ("e" in a or "c" in a) for a in args
    ):
        yield Verdict("danger.remote_code", "critical", "reverse shell (nc -e)")
    elif name == "socat" and any(
        a.startswith(("exec:", "system:")) or ",exec:" in a or "exec:" in a for a in low
    ):
        yield Verdict("danger.remote_code", "critical", "reverse shell (socat exec)")
    elif name.startswith(("python", "perl", "ruby", "php")) and (
        "-c" in args or "-e" in args or "-r" in args
    ):
        code = " ".join(low)
        if any(w in code for w in _SOCKETS) and any(w in code for w in _SHELL_HOOKS):
            yield Verdict("danger.remote_code", "critical", "reverse shell (socket one-liner)")
        elif any(w in code for w in ("urlopen", "urllib.request", "requests.get")) and (
            "exec(" in code or "eval(" in code
        ):
            yield Verdict("danger.remote_code", "critical", "runs downloaded code")
    elif name in ("powershell", "pwsh") and any(
        a in ("-e", "-ec", "-enc", "-encodedcommand", "-en", "-enco") for a in low
    ):
        yield Verdict("danger.remote_code", "critical", "encoded PowerShell command")
    elif (
        (name == "certutil" and "-urlcache" in low)
        or (name == "bitsadmin" and "/transfer" in low)
        or (name == "mshta" and any(a.startswith(("http:", "https:")) for a in low))
    ):
        yield Verdict("danger.remote_code", "critical", "Windows download-and-execute")
    if name in _INTERPRETERS or name == "" or (name.startswith(SUB)):
        for sub in command.subs:
            if any(c.name in _DOWNLOADERS for c in sub.commands()):
                yield Verdict("danger.remote_code", "critical", "runs a downloaded script")
                break
            if any(
                c.name in ("base64", "xxd") and {"-d", "--decode", "-D", "-r"} & set(c.args)
                for c in sub.commands()
            ):
                yield Verdict("danger.remote_code", "critical", "runs decoded code")
                break


def _dumps_credentials(command: Command) -> bool:
    patterns = _CREDENTIAL_DUMPERS.get(command.name)
    if patterns is None:
        return False
    low = [a.lower() for a in command.args]
    return any(p == "" or any(p in a for a in low) for p in patterns)


def _sensitive_reads(command: Command) -> Iterator[Verdict]:
    name = command.name
    args = command.args
    if _dumps_credentials(command):
        yield Verdict("danger.sensitive_path", "high", f"reads a key store or credentials ({name})")
        return
    if name in _METADATA_ONLY:
        return  # lists, stats or sets permissions: reads no contents
    if name in _COPIERS or name in _EDITORS or name == "sed":
        candidates = _operands(command)[:-1] if name in _COPIERS else []
    else:
        candidates = [a for a in args if SUB not in a]
        candidates += [t for op, t in command.redirects if op.startswith("<")]
    if name == "ssh":
        candidates = [
            a
            for a in candidates
            if not a.endswith(tuple(f"id_{k}" for k in ("rsa", "dsa", "ecdsa", "ed25519")))
        ]
        candidates = [a for i, a in enumerate(candidates) if not (i > 0 and candidates[i - 1] == "-i")]
    for arg in candidates:
        for word in (arg, *arg.split("=", 1)[1:]):
            place = locations.credential(word)
            if place is not None:
                yield Verdict("danger.sensitive_path", place.severity, f"accesses {place.label}")
                return


_SQL_CLIENTS = frozenset(
    {
        "psql",
        "mysql",
        "mariadb",
        "sqlite3",
        "sqlcmd",
        "duckdb",
        "clickhouse-client",
        "cockroach",
        "mongo",
        "mongosh",
        "redis-cli",
    }
)


def _inline_sql(command: Command) -> Iterator[Verdict]:
    if command.name not in _SQL_CLIENTS:
        return
    from .sql import judge_sql  # only for database clients

    args = command.args
    texts = [
        args[i + 1]
        for i, a in enumerate(args[:-1])
        if a in ("-c", "-e", "--command", "--execute", "-Q", "-q", "--eval")
    ]
    if command.name in ("sqlite3", "duckdb", "redis-cli"):
        texts += [" ".join(_operands(command)[1:] if command.name != "redis-cli" else _operands(command))]
    for text in texts:
        for verdict in judge_sql(text):
            yield Verdict(verdict.rule, verdict.severity, verdict.label)


def _has_script_file(command: Command) -> bool:
    """``python script.py`` runs a file, not its stdin (``sh -s``, ``python -`` read stdin)."""
    ops = [a for a in command.args if not a.startswith("-")]
    return bool(ops) and ops[0] != "-"


def _local_only(command: Command) -> bool:
    hosts = [a for a in command.args if "://" in a or re.match(r"^[\w.-]+(?::\d+)?(?:/|$)", a)]
    return bool(hosts) and all(
        re.search(r"(?:^|//)(?:localhost|127\.0\.0\.1|\[::1\])(?:[:/]|$)", h) for h in hosts
    )


def _download_target(command: Command) -> str | None:
    if command.name not in _DOWNLOADERS:
        return None
    args = command.args
    for i, a in enumerate(args[:-1]):
        if a in ("-o", "-O", "--output", "--output-document", "-OutFile", "-outfile"):
            return args[i + 1]
    for op, target in command.redirects:
        if op in (">", ">>"):
            return target
    if command.name == "wget":
        url = next((a for a in args if "://" in a), None)
        if url:
            return url.rstrip("/").rsplit("/", 1)[-1]
    return None


def _runs_one_of(command: Command, files: set[str]) -> bool:
    def same(a: str, b: str) -> bool:
        return a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1] and bool(b)

    if any(same(command.name, f) for f in files) and command.argv:
        return True
    if command.name in _INTERPRETERS or command.name in ("chmod",):
        return any(same(a, f) for a in command.args for f in files) and (
            command.name != "chmod" or any("x" in a for a in command.args)
        )
    return False
