"""The JSON limits km applies at every boundary: capture, store, export, upload and ingest.

A message can be valid JSON and still be nested so deeply that a library refuses it later
(``orjson.dumps`` stops at 254 levels, ``orjson.loads`` at 1,024): a payload that was
accepted once must never make a later step fail (the uploader retrying forever, an export
stopping halfway, a server batch answered 500). So there is one limit, :data:`MAX_DEPTH`,
checked wherever JSON enters km: :func:`too_deep` on text, :func:`value_too_deep` on a value,
:func:`loads_message` on a message to record. A message over it is still forwarded
untouched by the proxy; what km *keeps* is :func:`too_deep_marker` in place of the payload,
and the finding :data:`TOO_DEEP_RULE`.

:func:`loads` and :func:`dumps` apply the same limit in both directions, so anything km
decodes it can encode again.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import orjson

MAX_DEPTH = 128
"""Deepest nesting of arrays/objects km keeps. Well above any real MCP message, and low
enough that an event (+2 levels) inside a batch (+2 levels) stays far below orjson's 254."""

TOO_DEEP_RULE = "payload.too_deep"

_COUNT_BELOW = 4096
"""Up to this many bytes, counting brackets is cheaper than :func:`value_too_deep` (and nearly
always settles it)."""
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_KEEP_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_TOKENS = bytes(b for b in range(256) if b not in b'"[]{}')


class JsonLimitError(ValueError):
    """JSON nested deeper than :data:`MAX_DEPTH` (or not encodable at all)."""


def depth(data: bytes | str, stop: int = 1 << 30) -> int:
    """How deeply arrays and objects nest in the JSON text ``data`` (0 for a scalar); counting
    stops past ``stop``. Text that is not balanced JSON counts as infinitely deep."""
    raw = data.encode() if isinstance(data, str) else data
    # brackets outside strings only, as one byte string of '[' and ']', in C-speed steps:
    if b"\\" in raw:  # escaped backslashes, then escaped quotes: neither ends a string
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # quotes and brackets only; then drop '""' (an empty string, or two strings side by side:
    # nothing structural between them), which leaves the few strings holding brackets
    tokens = raw.translate(None, _NOT_TOKENS).replace(b'""', b"")
    if b'"' in tokens:
        tokens = b"".join(tokens.split(b'"')[0::2])
    brackets = tokens.translate(_KEEP_BRACKETS)
    level = 0
    while brackets and level <= stop:
        inner = brackets.replace(b"[]", b"")  # peels one level of nesting
        if len(inner) == len(brackets):
            return 1 << 30
        brackets, level = inner, level + 1
    return level


def may_be_too_deep(data: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """False when the JSON text ``data`` has too few brackets to nest deeper than ``limit`` (a
    cheap test that settles ordinary messages; True calls for an exact one)."""
    if isinstance(data, str):
        return data.count("[") + data.count("{") > limit
    return data.count(b"[") + data.count(b"{") > limit


def too_deep(data: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """True when the JSON text ``data`` nests deeper than ``limit``. Cheap for ordinary text:
    the exact scan runs only when there are more brackets than the limit."""
    return may_be_too_deep(data, limit) and depth(data, stop=limit) > limit


ORJSON_MAX_DEPTH = 254
"""The deepest nesting ``orjson.dumps`` encodes (checked by tests/security/test_json_depth.py)."""


class _Wrappers(threading.local):
    """Per thread, ``ORJSON_MAX_DEPTH - MAX_DEPTH`` nested lists, built once; the value to check
    goes into the innermost (:func:`value_too_deep`)."""

    def __init__(self) -> None:
        self.inner: list[Any] = [None]
        self.outer = self.inner
        for _ in range(ORJSON_MAX_DEPTH - MAX_DEPTH - 1):
            self.outer = [self.outer]


_wrappers = _Wrappers()


def value_too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when a decoded value nests deeper than ``limit``. At C speed for JSON values: inside
    ``ORJSON_MAX_DEPTH - limit`` lists, it is encodable exactly when it is within ``limit``;
    anything else is walked (stopping at the first path too deep)."""
    if limit == MAX_DEPTH:
        wrappers = _wrappers
        wrappers.inner[0] = value
        try:
            orjson.dumps(wrappers.outer)
            return False
        except orjson.JSONEncodeError:
            pass  # too deep, or not JSON (a set, a key not a string...): walk it
        finally:
            wrappers.inner[0] = None
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
    orjson's own limit. A value opened at level ``n`` that lost a part still nests
    ``keep - n + 1`` levels: with the default ``keep``, more than :data:`MAX_DEPTH` for any value
    opened within the first :data:`MAX_DEPTH` levels, so it still counts as too deep."""
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


def decoded_too_deep(data: bytes | str, value: Any) -> bool:
    """True when ``value``, decoded from the JSON text ``data``, nests deeper than
    :data:`MAX_DEPTH`. Short text is settled by counting its brackets (cheaper there than the
    exact :func:`value_too_deep`, and nearly always enough)."""
    if len(data) <= _COUNT_BELOW and not may_be_too_deep(data):
        return False
    return value_too_deep(value)


def loads_message(data: bytes) -> tuple[Any, bool]:
    """(value, whether it nests deeper than :data:`MAX_DEPTH`) of the JSON text ``data``, for
    reading a message's shallow fields whatever its depth: past orjson's own limit (1,024
    levels) they come from a pruned copy (:func:`prune`). Invalid JSON raises
    ``orjson.JSONDecodeError``."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        if not too_deep(data):
            raise
        return orjson.loads(prune(data)), True
    return value, decoded_too_deep(data, value)


def loads(data: bytes | str) -> Any:
    """``orjson.loads`` that refuses text nested deeper than :data:`MAX_DEPTH`
    (:class:`JsonLimitError`, a ``ValueError``; invalid JSON raises ``orjson.JSONDecodeError``)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        if too_deep(data):  # past orjson's own limit (1,024 levels)
            raise JsonLimitError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
        raise
    if decoded_too_deep(data, value):
        raise JsonLimitError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


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


def _omitted_finding(rule: str, what: str) -> dict[str, Any]:
    return {"rule": rule, "severity": "medium", "path": "", "message": f"{what} was not stored or analysed"}


def too_deep_finding() -> dict[str, Any]:
    """The finding recorded with :func:`too_deep_marker`."""
    return _omitted_finding(TOO_DEEP_RULE, f"payload nested deeper than {MAX_DEPTH} levels")


MAX_BODY_BYTES = 10 * 1024 * 1024
"""Largest message km decodes and keeps: the team server's default request-body limit
(``km serve --max-body-mb``), and the most ``km proxy`` inflates of a compressed answer (or
holds of one SSE event) for its records. The traffic itself is forwarded whatever its size."""

TOO_LARGE_RULE = "payload.too_large"


def too_large_marker(size_bytes: int) -> dict[str, Any]:
    """What km keeps in place of a message over :data:`MAX_BODY_BYTES` (forwarded as is);
    ``size_bytes`` is how much km read of it (at least the limit)."""
    return {"km_omitted": f"payload over {MAX_BODY_BYTES} bytes", "size_bytes": size_bytes}


def too_large_finding() -> dict[str, Any]:
    """The finding recorded with :func:`too_large_marker`."""
    return _omitted_finding(TOO_LARGE_RULE, f"payload over {MAX_BODY_BYTES} bytes (decoded)")
