"""Walking the string leaves of a decoded JSON message, cheaply.

Detectors never recurse themselves: :class:`Leaves` collects every string value (not keys,
numbers or booleans; keys that may be values are listed apart) once, in a fixed depth-first
order, joined into one ``blob`` so that a detector can reject a whole message with a single
substring test or one regex scan. JSON pointers are only computed for the few leaves that produced a hit
(:meth:`Leaves.pointers`), by a second walk in the same order.

Skipped while collecting (so also never redacted): strings shorter than ``min_len``
and the base64 ``data``/``blob`` of MCP media content (an object with a ``mimeType``):
an image is not text and would only cost time and false positives. Only strict base64 is
skipped (:func:`is_base64`); any other ``data``/``blob`` is scanned like text.

While collecting, leaves that a name labels as a credential are marked in :attr:`Leaves.cred`:
by their key, by the sibling name of a ``value`` field (``{"name": "DB_PASSWORD", "value": ...}``),
by the flag before them in a list (``["--password", ...]``) or as the second of a pair inside a
list of pairs (``[["Authorization", "Bearer ..."]]``).

At most ``max_chars`` characters are scanned; what lies past them is listed in
:attr:`Leaves.omitted`, so that the caller can say so and not keep it unscanned.

With ``dedupe`` (the analyzer's), a text of :data:`DEDUPE_MIN` characters or more that an earlier
leaf already holds is scanned as empty, and :meth:`Leaves.expand` gives it the hits of the first:
so no detector may judge a leaf by the text of the leaves beside it (none reads across ``SEP``).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from .findings import Severity
from .text import credential_key_kind

SEP = "\x00"
"""Joins the leaves in the blob. No detector pattern matches it, so no match spans two leaves."""

PathPart = str | int

DEDUPE_MIN = 64
"""Leaves at least this long are scanned once per message when they repeat (see ``dedupe``)."""
KEY_WORD_MAX = 20
"""Object keys are names (``inputSchema``), but a map may be keyed by values (``{"ghp_…": "ci"}``,
an e-mail address): a key at least this long, or one that is not an identifier, is kept in
:attr:`Leaves.keys` for the secret and personal-data scans (see :mod:`.redact`)."""

_TOKEN_TAIL = re.compile(r"[\w+/=.~-]+\Z")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def is_base64(value: str) -> bool:
    """True for strict base64 (RFC 4648 alphabet, padded to a multiple of 4, no whitespace)."""
    return len(value) % 4 == 0 and _BASE64.fullmatch(value) is not None


def _binary(obj: dict[str, Any], key: str, value: str) -> bool:
    """The base64 ``data``/``blob`` of media content (never scanned)."""
    return (key == "data" or key == "blob") and "mimeType" in obj and is_base64(value)


@dataclass(slots=True)
class Hit:
    """One raw detection, before it becomes a :class:`~kilometers.analysis.findings.Finding`."""

    rule: str
    severity: Severity
    message: str
    leaf: int = -1
    """Index into :attr:`Leaves.values`; -1 when :attr:`path` is given instead."""
    start: int = 0
    end: int = 0
    """The detected value's span inside the leaf (redaction replaces exactly this span)."""
    path: str | None = None
    redact: bool = False
    """Whether redaction replaces the span (secrets and PII; not e.g. dangerous paths)."""


_NAME_KEYS = frozenset({"name", "Name", "key", "Key", "header", "variable", "ParameterKey", "OptionName"})
_VALUE_KEYS = frozenset({"value", "Value", "val", "ParameterValue"})
"""``{"name": "DB_PASSWORD", "value": "..."}``: env lists (Kubernetes, ECS, CloudFormation), header
lists (Postman, HAR), settings lists (``<add key=... value=...>`` as JSON)."""


def _sibling_kind(obj: dict[str, Any]) -> str:
    """The credential kind a dict's name field gives its value field (``""``: none)."""
    for name_key, name in obj.items():
        if name_key in _NAME_KEYS and isinstance(name, str) and 0 < len(name) <= 128:
            kind = credential_key_kind(name)
            if kind:
                return kind
    return ""


def _flag_kind(arg: str) -> str:
    """The credential kind of a command-line flag that takes the next argument (``--password``)."""
    if len(arg) > 64 or "=" in arg or " " in arg or arg.startswith(("--no-", "--without-")):
        return ""
    return credential_key_kind(arg.lstrip("-"))


def _collect(
    obj: Any,
    out: list[str],
    cred: list[tuple[int, str]],
    keys: list[str],
    min_len: int,
    in_list: bool = False,
) -> None:
    if isinstance(obj, dict):
        valued = "value" in obj or "Value" in obj or "val" in obj or "ParameterValue" in obj
        sibling = _sibling_kind(obj) if valued else ""
        for k, v in obj.items():
            if len(k) >= min_len and (len(k) >= KEY_WORD_MAX or not k.isidentifier()):
                keys.append(k)
            if isinstance(v, str):
                if len(v) < min_len or _binary(obj, k, v):
                    continue
                kind = credential_key_kind(k) or (sibling if k in _VALUE_KEYS else "")
                if kind:
                    cred.append((len(out), kind))
                out.append(v)
            elif isinstance(v, dict | list):
                _collect(v, out, cred, keys, min_len)
    elif isinstance(obj, list):
        # ["--password", "..."] (a command line); [["Authorization", "Bearer ..."], ...] (pairs in a
        # list: headers, env): not a lone pair, which may be two unrelated strings
        pair = (
            in_list
            and len(obj) == 2
            and isinstance(obj[0], str)
            and isinstance(obj[1], str)
            and len(obj[0]) <= 64
        )
        kind = ""
        for v in obj:
            if isinstance(v, str):
                if len(v) >= min_len:
                    if kind and v[0] != "-":
                        cred.append((len(out), kind))
                    out.append(v)
                if pair:
                    kind, pair = credential_key_kind(v), False
                else:
                    kind = _flag_kind(v) if v[:1] == "-" else ""
            else:
                kind = ""
                if isinstance(v, dict | list):
                    _collect(v, out, cred, keys, min_len, True)


def _collect_paths(
    obj: Any, path: list[PathPart], out: list[tuple[PathPart, ...]], min_len: int, wanted: set[int], stop: int
) -> bool:
    """Same order and skips as :func:`_collect`; records the path of every wanted leaf.

    Returns True once the leaf numbered ``stop`` has been passed (nothing more is needed).
    """
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str):
                if len(v) < min_len or _binary(obj, k, v):
                    continue
                n = len(out)
                out.append((*path, k) if n in wanted else ())
                if n >= stop:
                    return True
            elif isinstance(v, dict | list):
                path.append(k)
                done = _collect_paths(v, path, out, min_len, wanted, stop)
                path.pop()
                if done:
                    return True
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, str):
                if len(v) < min_len:
                    continue
                n = len(out)
                out.append((*path, i) if n in wanted else ())
                if n >= stop:
                    return True
            elif isinstance(v, dict | list):
                path.append(i)
                done = _collect_paths(v, path, out, min_len, wanted, stop)
                path.pop()
                if done:
                    return True
    return False


def escape_token(part: PathPart) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(parts: tuple[PathPart, ...] | list[PathPart]) -> str:
    """RFC 6901 JSON pointer for a sequence of keys and indexes."""
    return "".join("/" + escape_token(p) for p in parts)


class Leaves:
    """The string leaves of one decoded message."""

    __slots__ = (
        "_all",
        "_lower",
        "_starts",
        "blob",
        "copies",
        "cred",
        "keys",
        "min_len",
        "omitted",
        "root",
        "values",
    )

    def __init__(self, root: Any, *, min_len: int = 6, max_chars: int = 0, dedupe: bool = False) -> None:
        self.root = root
        self.min_len = min_len
        values: list[str] = []
        cred: list[tuple[int, str]] = []
        keys: list[str] = []
        if isinstance(root, str):
            if len(root) >= min_len:
                values.append(root)
        else:
            _collect(root, values, cred, keys, min_len)
        self.keys = keys
        """Object keys that could hold a value (see :data:`KEY_WORD_MAX`), in walking order."""
        self._all = values
        self.omitted: list[tuple[int, int]] = []
        """``(leaf index, offset)`` of the text past ``max_chars``: not scanned, from the offset on."""
        self.copies: dict[int, list[int]] = {}
        """``leaf -> later leaves with the same text`` (``dedupe``): those are scanned as empty, and
        :meth:`expand` gives them the hits of the first."""
        blob = SEP.join(values)
        if max_chars and len(blob) > max_chars:
            values, blob, self.omitted = self._clip(values, max_chars)
            cred = [(i, k) for i, k in cred if i < len(values)]
        elif dedupe and len(values) > 1:
            values, blob = self._dedupe(values, cred)
        self.values = values
        """The scanned leaves (the last one may be cut at ``max_chars``; with ``dedupe``, a repeat
        is empty here: :meth:`text` has its whole string)."""
        self.cred = cred
        """``(leaf index, kind)`` of leaves whose key names a credential (see ``credential_key_kind``)."""
        self.blob = blob
        self._starts: list[int] | None = None
        self._lower: str | None = None

    def _dedupe(self, values: list[str], cred: list[tuple[int, str]]) -> tuple[list[str], str]:
        """The leaves to scan, a long text that repeats an earlier leaf's left empty (an MCP tool
        result's ``structuredContent`` repeats its text content: scanned twice, it doubled the
        cost of every SDK server's answers). Leaves a name marks as credentials stay apart."""
        first: dict[str, int] = {}
        named = {i for i, _ in cred}
        for i, v in enumerate(values):
            if len(v) >= DEDUPE_MIN and i not in named:
                j = first.setdefault(v, i)
                if j != i:
                    self.copies.setdefault(j, []).append(i)
        if not self.copies:
            return values, SEP.join(values)
        repeats = {i for later in self.copies.values() for i in later}
        scanned = ["" if i in repeats else v for i, v in enumerate(values)]
        return scanned, SEP.join(scanned)

    def expand(self, hits: list[Hit]) -> list[Hit]:
        """``hits`` and, for each hit in a leaf that others repeat, the same hit in each of them
        (the same span of the same text): what scanning every copy would have found."""
        if not self.copies:
            return hits
        copies = self.copies
        out = list(hits)
        for h in hits:
            for leaf in copies.get(h.leaf, ()):
                out.append(replace(h, leaf=leaf))
        return out

    @staticmethod
    def _clip(values: list[str], max_chars: int) -> tuple[list[str], str, list[tuple[int, int]]]:
        kept: list[str] = []
        omitted: list[tuple[int, int]] = []
        total = 0
        for i, v in enumerate(values):
            room = max_chars - total
            if room <= 0:
                omitted.append((i, 0))
                continue
            kept.append(v[:room])
            if room < len(v):
                # a token cut by the bound (half a key) is not kept either
                tail = _TOKEN_TAIL.search(v, max(0, room - 1024), room)
                omitted.append((i, tail.start() if tail else room))
            total += len(kept[-1]) + 1
        return kept, SEP.join(kept), omitted

    def text(self, index: int) -> str:
        """The whole string of a leaf (also past ``max_chars``)."""
        return self._all[index]

    def omitted_chars(self) -> int:
        """How many characters were not scanned."""
        return sum(len(self._all[i]) - start for i, start in self.omitted)

    @property
    def lower(self) -> str:
        """``blob.lower()`` with the same offsets (characters whose lowercase is longer are kept)."""
        if self._lower is None:
            low = self.blob.lower()
            if len(low) != len(self.blob):
                low = "".join(c if len(c.lower()) != 1 else c.lower() for c in self.blob)
            self._lower = low
        return self._lower

    def locate(self, offset: int) -> tuple[int, int]:
        """Leaf index and offset inside that leaf of a blob offset."""
        starts = self._starts
        if starts is None:
            starts = []
            pos = 0
            for v in self.values:
                starts.append(pos)
                pos += len(v) + 1
            self._starts = starts
        i = bisect_right(starts, offset) - 1
        return i, offset - starts[i]

    def hit(
        self, rule: str, severity: Severity, message: str, start: int, end: int, *, redact: bool = True
    ) -> Hit:
        """A hit for the blob span ``[start, end)`` (which lies inside one leaf)."""
        leaf, local = self.locate(start)
        return Hit(rule, severity, message, leaf, local, local + (end - start), redact=redact)

    def paths(self, indices: Collection[int]) -> dict[int, tuple[PathPart, ...]]:
        """Path (keys and indexes from the root) of each requested leaf."""
        if not indices:
            return {}
        if isinstance(self.root, str):
            return {i: () for i in indices}
        wanted = set(indices)
        found: list[tuple[PathPart, ...]] = []
        _collect_paths(self.root, [], found, self.min_len, wanted, max(wanted))
        return {i: found[i] for i in wanted if i < len(found)}

    def pointers(self, indices: Collection[int]) -> dict[int, str]:
        return {i: pointer(p) for i, p in self.paths(indices).items()}
