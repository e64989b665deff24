"""Shell command lines as simple commands: a small parser on top of :mod:`shlex`.

``parse("sudo rm -rf /tmp/x && curl -s https://a | sh")`` gives two pipelines: ``[rm -rf /tmp/x]``
(privileged) and ``[curl -s https://a] | [sh]``. Quoting, escapes, operators (``;``, ``&&``,
``||``, ``|``, ``&``, newlines), redirections (``>``, ``>>``, ``2>&1``, ``<``...), leading
variable assignments and wrappers (``sudo``, ``env``, ``nohup``, ``timeout 5``...) are handled;
command substitutions (``$(...)``, backticks, ``<(...)``) and the scripts of ``bash -c``,
``eval``, ``su -c``, ``cmd /c`` and ``powershell -Command`` are parsed as nested scripts.

Lines with Windows paths (``C:\\temp``) are split without POSIX escapes, so backslashes stay.
Malformed input (an unclosed quote, unbalanced parentheses) never raises: the parser closes what
is open and goes on. The input is bounded by the caller.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_OPERATORS: tuple[str, ...] = ("&>>", "<<<", ">>", "<<", "&&", "||", "|&", ">&", "<&", "&>", ">|", "<>")
_OPERATORS += (";;", ";", "&", "|", "<", ">", "(", ")", "\n")
_SEPARATORS = frozenset({";", ";;", "&&", "||", "&", "(", ")", "\n"})
_PIPES = frozenset({"|", "|&"})
_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", ">&", "<", "<<", "<<<", "<&", "<>"})
_KEYWORDS = frozenset(
    {
        "{",
        "}",
        "!",
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "time",
        "case",
        "esac",
    }
)
_WRAPPERS = frozenset(
    {"nohup", "exec", "command", "builtin", "stdbuf", "nice", "ionice", "unbuffer", "caffeinate", "chronic"}
)
_PRIVILEGE = frozenset({"sudo", "doas", "pkexec", "runas", "gsudo"})
_SUB_SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh", "fish", "ash", "su"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_WINDOWS_PATH = re.compile(r"(?:^|[\s\"'=])[A-Za-z]:\\|\\\\[A-Za-z]|%[A-Za-z]+%\\")
_MAX_DEPTH = 4
_MAX_WORDS = 4096
SUB = "\x00sub"
"""Marks a word that stood for a command substitution: ``SUB + index`` into :attr:`Command.subs`."""


@dataclass(slots=True)
class Command:
    """One simple command: ``argv[0]`` is the program (basename, lower case, no ``.exe``)."""

    argv: list[str]
    redirects: list[tuple[str, str]] = field(default_factory=list)
    """``(operator, target)``; file-descriptor duplications (``2>&1``) are left out."""
    privileged: bool = False
    subs: list[Script] = field(default_factory=list)
    """Scripts of command substitutions in its words and of ``bash -c``-style arguments."""

    @property
    def name(self) -> str:
        return self.argv[0] if self.argv else ""

    @property
    def args(self) -> list[str]:
        return self.argv[1:]


@dataclass(slots=True)
class Script:
    pipelines: list[list[Command]] = field(default_factory=list)

    def commands(self) -> list[Command]:
        """Every simple command, nested scripts included (depth first)."""
        out: list[Command] = []
        for pipeline in self.pipelines:
            for command in pipeline:
                out.append(command)
                for sub in command.subs:
                    out.extend(sub.commands())
        return out

    def scripts(self) -> list[Script]:
        """This script and every nested one."""
        out = [self]
        for pipeline in self.pipelines:
            for command in pipeline:
                for sub in command.subs:
                    out.extend(sub.scripts())
        return out


def program(word: str) -> str:
    """``/usr/bin/Curl.exe`` -> ``curl``."""
    name = word.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name[:-4] if name.endswith((".exe", ".com", ".cmd", ".bat")) else name


def parse(text: str, depth: int = 0, subs: list[str] | None = None) -> Script:
    """The pipelines of a command line (never raises).

    ``subs``: bodies of substitutions already cut out of an enclosing line (for ``bash -c``).
    """
    subs = [] if subs is None else subs
    text = _extract_substitutions(text, subs)
    windows = _WINDOWS_PATH.search(text) is not None
    tokens = _tokens(text, posix=not windows)
    script = Script()
    pipeline: list[Command] = []
    words: list[str] = []
    redirects: list[tuple[str, str]] = []
    pending: str | None = None

    def finish_command() -> None:
        nonlocal words, redirects
        if words or redirects:
            command = _command(words, redirects, subs, depth)
            if command is not None:
                pipeline.append(command)
        words, redirects = [], []

    def finish_pipeline() -> None:
        nonlocal pipeline
        finish_command()
        if pipeline:
            script.pipelines.append(pipeline)
        pipeline = []

    comment = False
    for token, is_operator in tokens:
        if comment:
            comment = token != "\n"
            if comment:
                continue
        if pending is not None and not is_operator:
            if not ((pending in (">&", "<&") and token.isdigit()) or token == "-"):
                redirects.append((pending, token))
            pending = None
            continue
        if is_operator:
            pending = None
            if token in _REDIRECTS:
                if words and words[-1].isdigit() and len(words[-1]) == 1:
                    words.pop()  # the "2" of "2>/dev/null"
                pending = token
            elif token in _PIPES:
                finish_command()
            elif token in _SEPARATORS:
                finish_pipeline()
            continue
        if token.startswith("#"):
            comment = True
            continue
        words.append(token)
    finish_pipeline()
    return script


def _tokens(text: str, *, posix: bool) -> list[tuple[str, bool]]:
    """(token, is operator) pairs; an unclosed quote is closed at the end of the text."""
    for suffix in ("", '"', "'"):
        lexer = shlex.shlex(text + suffix, posix=posix, punctuation_chars="();<>|&\n")
        lexer.whitespace = " \t\r"
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            raw = []
            for token in lexer:
                raw.append(token)
                if len(raw) >= _MAX_WORDS:
                    break
        except ValueError:
            continue
        break
    else:
        raw = text.split()
    out: list[tuple[str, bool]] = []
    for token in raw:
        if token and all(c in "();<>|&\n" for c in token):
            out.extend((op, True) for op in _split_operators(token))
        else:
            if not posix and len(token) >= 2 and token[0] == token[-1] and token[0] in "\"'":
                token = token[1:-1]
            out.append((token, False))
    return out


def _split_operators(token: str) -> list[str]:
    out = []
    i = 0
    while i < len(token):
        op = next((o for o in _OPERATORS if token.startswith(o, i)), token[i])
        out.append(op)
        i += len(op)
    return out


def _extract_substitutions(text: str, subs: list[str]) -> str:
    """Replace ``$(...)``, ``<(...)``, ``>(...)`` and backtick bodies by placeholder words."""
    if "(" not in text and "`" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    quote = ""
    while i < n:
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = ""
            out.append(c)
            i += 1
            continue
        if c == "'" and not quote:
            quote = "'"
        elif c == '"':
            quote = "" if quote == '"' else '"'
        if c == "`":
            end = text.find("`", i + 1)
            end = n if end == -1 else end
            subs.append(text[i + 1 : end])
            out.append(f"{SUB}{len(subs) - 1} ")
            i = end + 1
            continue
        if c in "$<>" and text.startswith("(", i + 1) and not text.startswith("((", i + 1):
            end = _closing(text, i + 2)
            subs.append(text[i + 2 : end])
            word = f"{SUB}{len(subs) - 1}"
            out.append(word if c == "$" else f"{c} {word}")
            i = end + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int:
    depth = 1
    quote = ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
    return len(text)


def _command(
    words: list[str], redirects: list[tuple[str, str]], subs: list[str], depth: int
) -> Command | None:
    privileged = False
    i = 0
    while i < len(words):
        word = words[i]
        name = program(word)
        if _ASSIGNMENT.match(word) or word in _KEYWORDS or name in _WRAPPERS:
            i += 1
        elif name in _PRIVILEGE:
            privileged = True
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in ("-u", "-g", "-U", "-C", "-p", "-h") else 1
        elif name == "env" and i + 1 < len(words):
            i += 1
            while i < len(words) and (words[i].startswith("-") or _ASSIGNMENT.match(words[i])):
                i += 1
        elif name == "timeout":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 1
            i += 1  # the duration
        elif name == "xargs":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in ("-I", "-n", "-P", "-d", "-L", "-s", "-E") else 1
        else:
            break
    argv = words[i:]
    if argv:
        argv = [program(argv[0]), *argv[1:]]
    command = Command(argv, redirects, privileged)
    if depth < _MAX_DEPTH:
        for word in (*words, *(t for _, t in redirects)):
            if SUB in word:
                for index in re.findall(r"\x00sub(\d+)", word):
                    command.subs.append(parse(subs[int(index)], depth + 1, subs))
        body = _inline_script(command.argv)
        if body is not None:
            command.subs.append(parse(body, depth + 1, subs))
    return command if argv or redirects or command.subs else None


def _inline_script(argv: list[str]) -> str | None:
    """The script of ``bash -c '...'``, ``eval ...``, ``cmd /c ...``, ``powershell -Command ...``."""
    name = argv[0] if argv else ""
    args = argv[1:]
    if name in _SUB_SHELLS:
        for j, a in enumerate(args):
            if a.startswith("-") and not a.startswith("--") and "c" in a[1:] and j + 1 < len(args):
                return args[j + 1]
        return None
    if name in ("eval", "watch") and args:
        return " ".join(a for a in args if not a.startswith("-"))
    if name == "cmd":
        for j, a in enumerate(args):
            if a.lower() in ("/c", "/k") and j + 1 < len(args):
                return " ".join(args[j + 1 :])
    if name in ("powershell", "pwsh"):
        for j, a in enumerate(args):
            if a.lower() in ("-command", "-c") and j + 1 < len(args):
                return " ".join(args[j + 1 :])
    return None
