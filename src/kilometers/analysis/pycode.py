"""Python code sent to a code-execution tool, judged by what its calls do (parsed with :mod:`ast`).

``os.system``/``subprocess.*``/``os.popen`` commands are judged as shell commands
(:func:`kilometers.analysis.commands.judge`); ``shutil.rmtree``/``os.remove`` by what they
delete; ``open(path, "w")`` by where it writes; ``open(path)`` of a credential file and requests
to cloud metadata endpoints are reads of sensitive resources; a socket wired to a shell
(``socket`` + ``dup2``/``pty.spawn``) and ``exec`` of downloaded code are remote code. Only
constant arguments are judged (``os.path.expanduser("~/.ssh/id_rsa")``, ``Path("/etc") / "x"``
included). Ordinary code (``print(sum(range(10)))``, reading project files) gives nothing.
"""

from __future__ import annotations

import ast
import shlex

from . import locations
from .commands import Verdict, deletion_severity, judge, metadata_host

_SHELL_CALLS = frozenset(
    {
        "os.system",
        "os.popen",
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.popen",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "pty.spawn",
        "os.execv",
        "os.execvp",
        "os.spawnv",
    }
)
_DELETE_TREE = frozenset({"shutil.rmtree"})
_DELETE_FILE = frozenset({"os.remove", "os.unlink", "os.rmdir", "os.removedirs"})
_FETCH = frozenset(
    {
        "requests.get",
        "requests.post",
        "requests.request",
        "httpx.get",
        "httpx.post",
        "urllib.request.urlopen",
        "urlopen",
        "urllib.request.request",
        "urllib.request.urlretrieve",
    }
)
_MAX_CODE_CHARS = 65_536


def judge_python(source: str) -> list[Verdict] | None:
    """Verdicts for Python source, or None when the text is not Python (then judge it as a command)."""
    try:
        tree = ast.parse(source[:_MAX_CODE_CHARS])
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    out: list[Verdict] = []
    names: set[str] = set()
    try:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _dotted(node.func)
                names.add(name)
                out.extend(_call(name, node))
    except RecursionError:
        pass
    if "socket.socket" in names and names & {"os.dup2", "pty.spawn", "subprocess.call", "subprocess.popen"}:
        out.append(Verdict("danger.remote_code", "critical", "reverse shell (Python socket)"))
    if names & {"exec", "eval"} and names & _FETCH:
        out.append(Verdict("danger.remote_code", "critical", "runs downloaded Python code"))
    return out


def _call(name: str, node: ast.Call) -> list[Verdict]:
    first = node.args[0] if node.args else None
    if name in _SHELL_CALLS and first is not None:
        command = _command(first)
        return list(judge(command)) if command else []
    if name in _DELETE_TREE | _DELETE_FILE:
        path = _string(first)
        if path is None:
            return []
        severity, what = deletion_severity(path, name in _DELETE_TREE)
        if severity == "info":
            return []
        return [Verdict("danger.destructive_command", severity, f"{name} of {what}")]
    if name in ("open", "io.open", "builtins.open"):
        return _open(node)
    if isinstance(node.func, ast.Attribute) and node.func.attr in ("read_text", "read_bytes"):
        path = _string(node.func.value)
        place = locations.credential(path) if path else None
        return [Verdict("danger.sensitive_path", place.severity, f"reads {place.label}")] if place else []
    if name in _FETCH:
        url = _string(first) or next((_string(k.value) for k in node.keywords if k.arg == "url"), None)
        if url and metadata_host(url):
            return [Verdict("danger.sensitive_path", "high", "reads the cloud instance metadata endpoint")]
    return []


def _open(node: ast.Call) -> list[Verdict]:
    path = _string(node.args[0]) if node.args else None
    if path is None:
        return []
    mode = _string(node.args[1]) if len(node.args) > 1 else None
    mode = mode or next((_string(k.value) for k in node.keywords if k.arg == "mode"), None) or "r"
    if any(c in mode for c in "wax+"):
        place = locations.credential(path)
        if place is not None and place.severity == "high" and not locations.is_project(path):
            return [Verdict("danger.system_write", "high", f"writes to {place.label}")]
        label = locations.startup(path) or locations.system(path)
        return [Verdict("danger.system_write", "high", f"writes to a {label}")] if label else []
    place = locations.credential(path)
    if place is not None:
        return [Verdict("danger.sensitive_path", place.severity, f"reads {place.label}")]
    return []


def _dotted(func: ast.expr) -> str:
    """``os.path.join`` for an attribute chain, ``open`` for a name; lower case."""
    parts: list[str] = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts)).lower()


def _string(node: ast.expr | None) -> str | None:
    """A constant string argument, looking through ``expanduser``/``Path``/``join`` and ``/``."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _string(node.left), _string(node.right)
        return f"{left}/{right}" if left is not None and right is not None else left
    if isinstance(node, ast.Call) and not node.args and _dotted(node.func).endswith(("home", "gethomedir")):
        return "~"
    if isinstance(node, ast.Call) and node.args:
        name = _dotted(node.func)
        if name.endswith(("expanduser", "path", "join", "abspath", "realpath", "expandvars", "resolve")):
            parts = [_string(a) for a in node.args]
            if all(p is not None for p in parts):
                return "/".join(p for p in parts if p is not None)
    return None


def _command(node: ast.expr) -> str | None:
    if isinstance(node, (ast.List, ast.Tuple)):
        words = [_string(e) for e in node.elts]
        if words and all(w is not None for w in words):
            return shlex.join(w for w in words if w is not None)
        return None
    return _string(node)
