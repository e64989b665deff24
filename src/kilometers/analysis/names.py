"""Tool names as a deny list compares them: immune to case, width and look-alike letters.

A deny pattern ``delete_*`` must also catch ``DELETE_ALL``, ``ｄｅｌｅｔｅ_all`` (fullwidth) and
``dеlete_all`` (a Cyrillic ``е``): a server may list such a name, and a lenient server may run
it. :func:`name_key` maps a name (or a glob pattern) to a key: NFKC, the common Cyrillic,
Greek and Latin look-alikes of ASCII letters (:data:`LOOKALIKES`, after Unicode TR39's
confusables), case folding, then without combining marks and invisible format characters
(zero-width spaces, joiners, bidi controls). Glob characters (``*?[]!``) are ASCII and kept.
"""

from __future__ import annotations

import fnmatch
import unicodedata
from collections.abc import Iterable

LOOKALIKES = str.maketrans(
    # Cyrillic
    "АВЕКМНОРСТХЅІЈҮӀԚԜ"
    "аеорсухѕіјһԁԛԝӏү"
    # Greek
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"
    "αικνορυ"
    # Latin letters that look like other ones, Armenian
    "ıȷɑɡɩʏօսհ",
    "ABEKMHOPCTXSIJYIQWaeopcyxsijhdqwlyABEZHIKMNOPTYXaikvopuijagiyouh",
)
"""Letters that look like ASCII ones, mapped to them (case is folded afterwards)."""


_KEYS: dict[str, str] = {}
"""Keys of short names seen (tool names and deny patterns repeat on every call)."""


def name_key(name: str) -> str:
    """The form in which tool names and deny patterns are compared."""
    key = _KEYS.get(name)
    if key is None:
        key = _name_key(name)
        if len(name) <= 256:
            if len(_KEYS) >= 4096:
                _KEYS.clear()
            _KEYS[name] = key
    return key


def _name_key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", name).translate(LOOKALIKES).casefold()
    return "".join(
        c for c in unicodedata.normalize("NFKD", folded) if unicodedata.category(c) not in ("Mn", "Cf")
    )


def first_match(names: Iterable[str], patterns: Iterable[str]) -> str | None:
    """The first pattern that one of ``names`` matches, both compared by :func:`name_key`."""
    keys: list[str] | None = None
    for pattern in patterns:
        if keys is None:
            keys = [name_key(n) for n in names]
        key = name_key(pattern)
        if any(fnmatch.fnmatchcase(k, key) for k in keys):
            return pattern
    return None
