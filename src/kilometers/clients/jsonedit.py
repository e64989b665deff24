"""Edit a JSON document in place: parse it with the text span of every value, then splice new text
over a few values and leave every other byte of the file as it was.

Rewriting a client's config by ``json.loads`` + ``json.dumps`` would reflow the whole file (array
layout, escapes, spacing). Here only the server entries that km changes get new text, serialised
with the file's own indentation and line endings; the rest (other settings, key order, comments in
VS Code's JSONC files) stays byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_WS = " \t\n\r"
_SPACE = re.compile(r"[ \t\n\r]*")
_PLAIN_STRING = re.compile(r'"([^"\\\x00-\x1f]*)"')
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_LITERALS = {"true": True, "false": False, "null": None}


class JSONEditError(ValueError):
    """The text is not JSON (or JSONC) that km can edit; the message says where."""


@dataclass
class Node:
    """A parsed value with its span ``text[start:end]``; objects keep their members in file order."""

    start: int
    end: int
    value: Any
    members: list[Member] = field(default_factory=list)
    items: list[Node] = field(default_factory=list)

    def member(self, key: str) -> Member | None:
        """The last member named ``key`` (the one a JSON reader keeps), if any."""
        for member in reversed(self.members):
            if member.key == key:
                return member
        return None

    def find(self, path: tuple[str, ...]) -> Node | None:
        node: Node | None = self
        for key in path:
            member = node.member(key) if node is not None and isinstance(node.value, dict) else None
            node = member.node if member else None
        return node


@dataclass
class Member:
    key: str
    key_start: int
    node: Node


class _Parser:
    def __init__(self, text: str, jsonc: bool) -> None:
        self.text = text
        self.jsonc = jsonc
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> JSONEditError:
        pos = self.pos if pos is None else pos
        line = self.text.count("\n", 0, pos) + 1
        column = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return JSONEditError(f"line {line} column {column}: {message}")

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            self.pos = _SPACE.match(text, self.pos).end()  # type: ignore[union-attr]
            if self.pos >= n:
                return
            char = text[self.pos]
            if char in _WS:  # pragma: no cover - consumed above
                self.pos += 1
            elif char == "/" and text.startswith("//", self.pos):
                if not self.jsonc:
                    raise self.error("comments are not allowed in this file")
                newline = text.find("\n", self.pos)
                self.pos = n if newline < 0 else newline + 1
            elif char == "/" and text.startswith("/*", self.pos):
                if not self.jsonc:
                    raise self.error("comments are not allowed in this file")
                close = text.find("*/", self.pos + 2)
                if close < 0:
                    raise self.error("unterminated /* comment")
                self.pos = close + 2
            else:
                return

    def document(self) -> Node:
        if self.text.startswith("\ufeff"):
            self.pos = 1
        self.skip()
        if self.pos >= len(self.text):
            raise self.error("the file is empty")
        node = self.value(0)
        self.skip()
        if self.pos < len(self.text):
            raise self.error("unexpected text after the JSON value")
        return node

    def value(self, depth: int) -> Node:
        if depth > 500:
            raise self.error("nested too deeply")
        text, start = self.text, self.pos
        if start >= len(text):
            raise self.error("unexpected end of file")
        char = text[start]
        if char == "{":
            return self.obj(depth)
        if char == "[":
            return self.fast_array() if not self.jsonc else self.array(depth)
        if char == '"':
            value = self.string()
            return Node(start, self.pos, value)
        match = _NUMBER.match(text, start)
        if match and match.end() > start:
            self.pos = match.end()
            return Node(start, self.pos, json.loads(match.group()))
        for word, literal in _LITERALS.items():
            if text.startswith(word, start):
                self.pos = start + len(word)
                return Node(start, self.pos, literal)
        raise self.error(f"expected a value, found {text[start : start + 10]!r}")

    def string(self) -> str:
        plain = _PLAIN_STRING.match(self.text, self.pos)
        if plain:  # no escapes: the common case, and much faster than scanstring
            self.pos = plain.end()
            return plain.group(1)
        try:
            value, end = _scanstring(self.text, self.pos + 1, True)
        except json.JSONDecodeError as exc:
            raise self.error(exc.msg, exc.pos) from None
        self.pos = end
        return value

    def close_or_comma(self, closer: str, what: str) -> bool:
        """After an element: True at the closing bracket (consumed), False after a comma."""
        self.skip()
        if self.text.startswith(closer, self.pos):
            self.pos += 1
            return True
        if not self.text.startswith(",", self.pos):
            raise self.error(f"expected ',' or '{closer}' in {what}")
        self.pos += 1
        self.skip()
        if self.text.startswith(closer, self.pos):
            if not self.jsonc:
                raise self.error(f"trailing comma in {what}")
            self.pos += 1
            return True
        return False

    def obj(self, depth: int) -> Node:
        node = Node(self.pos, self.pos, {})
        self.pos += 1
        self.skip()
        if self.text.startswith("}", self.pos):
            self.pos += 1
        else:
            while True:
                if not self.text.startswith('"', self.pos):
                    raise self.error("expected a key in double quotes")
                key_start = self.pos
                key = self.string()
                self.skip()
                if not self.text.startswith(":", self.pos):
                    raise self.error("expected ':' after the key")
                self.pos += 1
                self.skip()
                child = self.value(depth + 1)
                node.members.append(Member(key, key_start, child))
                node.value[key] = child.value
                if self.close_or_comma("}", "an object"):
                    break
        node.end = self.pos
        return node

    def fast_array(self) -> Node:
        """A strict-JSON array by the C decoder: its span and value, without spans of its items.

        Server maps and entries are objects, never inside arrays, so item spans are never needed,
        and big arrays (Claude Code's per-project history) parse many times faster this way.
        """
        start = self.pos
        try:
            value, end = _DECODER.raw_decode(self.text, start)
        except json.JSONDecodeError as exc:
            raise self.error(exc.msg, exc.pos) from None
        except ValueError as exc:  # NaN, Infinity
            raise self.error(str(exc)) from None
        self.pos = end
        return Node(start, end, value)

    def array(self, depth: int) -> Node:
        node = Node(self.pos, self.pos, [])
        self.pos += 1
        self.skip()
        if self.text.startswith("]", self.pos):
            self.pos += 1
        else:
            while True:
                child = self.value(depth + 1)
                node.items.append(child)
                node.value.append(child.value)
                if self.close_or_comma("]", "an array"):
                    break
        node.end = self.pos
        return node


def parse(text: str, jsonc: bool = False) -> Node:
    """Parse strict JSON, or JSONC (``//`` and ``/* */`` comments, trailing commas) when ``jsonc``."""
    return _Parser(text, jsonc).document()


@dataclass(frozen=True)
class Style:
    """How a file is laid out: indentation unit (None: all on one line), line ending, separators."""

    indent: str | None = "  "
    newline: str = "\n"
    item_separator: str = ", "
    key_separator: str = ": "


def detect_style(text: str) -> Style:
    newline = "\r\n" if "\r\n" in text else "\n"
    body = text.strip()
    if "\n" not in body:
        spaced = '": ' in body or '":' not in body
        return Style(None, newline, ", " if spaced else ",", ": " if spaced else ":")
    widths: list[int] = []
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if not stripped:
            continue
        lead = line[: len(line) - len(stripped)]
        if lead.startswith("\t"):
            return Style("\t", newline)
        if lead:
            widths.append(len(lead))
    return Style(" " * min(widths) if widths else "  ", newline)


def line_indent(text: str, pos: int) -> str:
    """The leading whitespace of the line that ``pos`` is on."""
    start = text.rfind("\n", 0, pos) + 1
    end = start
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[start:end]


def dumps_at(value: Any, style: Style, base_indent: str) -> str:
    """``value`` as JSON text for a place whose line is indented by ``base_indent``."""
    if style.indent is None:
        separators = (style.item_separator, style.key_separator)
        return json.dumps(value, ensure_ascii=False, separators=separators)
    text = json.dumps(value, ensure_ascii=False, indent=style.indent)
    return (style.newline + base_indent).join(text.split("\n"))


def splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Replace each ``text[start:end]`` by its new text (spans must not overlap; insertions at the
    same place go in the order given)."""
    out: list[str] = []
    pos = 0
    for start, end, new in sorted(edits, key=lambda edit: (edit[0], edit[1])):
        if start < pos:
            raise ValueError("overlapping edits")
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)
