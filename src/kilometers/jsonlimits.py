"""The JSON limits km applies at every boundary: capture, store, export, upload and ingest.

A message can be valid JSON and still be nested so deeply that a library refuses it later
(``orjson.dumps`` stops at 254 levels, ``orjson.loads`` at 1,024): a payload that was
accepted once must never make a later step fail (the uploader retrying forever, an export
stopping halfway, a server batch answered 500). So there is one limit, :data:`MAX_DEPTH`,
checked with :func:`too_deep` wherever JSON enters km. A message over it is still forwarded
untouched by the proxy; what km *keeps* is :func:`too_deep_marker` in place of the payload,
and the finding :data:`TOO_DEEP_RULE`.

:func:`loads` and :func:`dumps` apply the same limit in both directions, so anything km
decodes it can encode again.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_DEPTH = 128
"""Deepest nesting of arrays/objects km keeps. Well above any real MCP message, and low
enough that an event (+2 levels) inside a batch (+2 levels) stays far below orjson's 254."""

TOO_DEEP_RULE = "payload.too_deep"

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_KEEP_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonLimitError(ValueError):
    """JSON nested deeper than :data:`MAX_DEPTH` (or not encodable at all)."""


def depth(data: bytes | str, stop: int = 1 << 30) -> int:
    """How deeply arrays and objects nest in the JSON text ``data`` (0 for a scalar); counting
    stops past ``stop``. Text that is not balanced JSON counts as infinitely deep."""
    raw = data.encode() if isinstance(data, str) else data
    # brackets outside strings only, as one byte string of '[' and ']' (all C-speed steps)
    outside = _STRING.sub(b"", raw) if b"\\" in raw else b"".join(raw.split(b'"')[0::2])
    brackets = outside.translate(_KEEP_BRACKETS, _NOT_BRACKETS)
    level = 0
    while brackets and level <= stop:
        inner = brackets.replace(b"[]", b"")  # peels one level of nesting
        if len(inner) == len(brackets):
            return 1 << 30
        brackets, level = inner, level + 1
    return level


def too_deep(data: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text ``data`` nests deeper than ``limit``. Cheap for ordinary text:
    the exact scan runs only when there are more brackets than the limit."""
    raw = data.encode() if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return depth(raw, stop=limit) > limit


def value_too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when a decoded value nests deeper than ``limit`` (stops at the first such path)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level + 1 > limit:
            return True
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return False


def prune(data: bytes, keep: int = 2 * MAX_DEPTH) -> bytes:
    """The JSON text ``data`` with every array and object nested deeper than ``keep`` replaced by
    ``null``, so that its shallow fields (a message's method, id, tool...) can be read even past
    orjson's own limit. A value that lost a part keeps more than ``keep - level`` levels, so with
    the default ``keep`` it still counts as too deep where it sits up to :data:`MAX_DEPTH` down."""
    parts: list[bytes] = []
    level = start = 0
    for token in _TOKEN.finditer(data):
        char = data[token.start()]
        if char == 0x22:  # a string: its brackets do not count
            continue
        if char in b"[{":
            level += 1
            if level == keep + 1:
                parts.append(data[start : token.start()])
        else:
            if level == keep + 1:
                parts.append(b"null")
                start = token.end()
            level -= 1
    parts.append(data[start:])
    return b"".join(parts)


def loads(data: bytes | str) -> Any:
    """``orjson.loads`` that refuses text nested deeper than :data:`MAX_DEPTH`
    (:class:`JsonLimitError`, a ``ValueError``; invalid JSON raises ``orjson.JSONDecodeError``)."""
    if too_deep(data):
        raise JsonLimitError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return orjson.loads(data)


def dumps(value: Any, option: int | None = None) -> bytes:
    """``orjson.dumps`` that refuses values nested deeper than :data:`MAX_DEPTH`."""
    if value_too_deep(value):
        raise JsonLimitError(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError as exc:
        raise JsonLimitError(str(exc)) from None


def too_deep_marker(size_bytes: int) -> dict[str, Any]:
    """What km keeps in place of a payload over the limit (the original was forwarded as is)."""
    return {
        "km_omitted": f"payload nested deeper than {MAX_DEPTH} levels",
        "size_bytes": size_bytes,
    }


def too_deep_finding() -> dict[str, Any]:
    """The finding recorded with :func:`too_deep_marker`."""
    return {
        "rule": TOO_DEEP_RULE,
        "severity": "medium",
        "path": "",
        "message": f"payload nested deeper than {MAX_DEPTH} levels was not stored or analysed",
    }
