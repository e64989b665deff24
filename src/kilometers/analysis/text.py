"""Small text helpers shared by the detectors: key-name classes, entropy, placeholders."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter

_NON_ALNUM = re.compile(r"[^a-z0-9]")

PASSWORD_KIND = "password"
SECRET_KIND = "secret"
AWS_SECRET_KIND = "aws_secret"

_PASSWORD_SUFFIXES = ("password", "passwd", "passphrase", "pwd", "pass")
_SECRET_SUFFIXES = (
    "secret",
    "token",
    "apikey",
    "accesskey",
    "secretkey",
    "privatekey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "credential",
    "credentials",
    "authorization",
)
_SECRET_EXACT = frozenset({"auth", "bearer", "xapikey", "apikeys"})
_NOT_CREDENTIAL_PARTS = (
    "page",
    "next",
    "cursor",
    "continu",
    "sync",
    "resume",
    "progress",
    "idempotency",
    "client",
    "start",
    "cancel",
    "csrf",
    "xsrf",
    "notification",
    "max",
    "count",
    "bypass",
    "compass",
    "public",
)

_PASS_WORD = re.compile(r"(?:^|[_\-.\s])(?:pass|PASS|Pass)$|(?<=[a-z0-9])Pass$")

_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_LIMIT = 4096


def _classify_key(key: str) -> str:
    k = _NON_ALNUM.sub("", key.lower())
    if len(k) > 64:
        return ""
    if ("aws" in k and "secret" in k) or k.endswith("secretaccesskey"):
        return AWS_SECRET_KIND
    if k in _SECRET_EXACT:
        return SECRET_KIND
    password = k.endswith(_PASSWORD_SUFFIXES)
    if password and k.endswith("pass") and not _PASS_WORD.search(key):
        return ""  # "minipass", "userpass", "bypass": "pass" must be a word of its own (DB_PASS, smtpPass)
    secret = not password and k.endswith(_SECRET_SUFFIXES)
    if not (password or secret):
        return ""
    if any(part in k for part in _NOT_CREDENTIAL_PARTS) and not k.endswith(
        ("clientsecret", "apikey", "accesskey", "privatekey")
    ):
        return ""  # pagination cursors, MCP progress tokens, token counts, CSRF tokens...
    return PASSWORD_KIND if password else SECRET_KIND


def credential_key_kind(key: str) -> str:
    """``"password"``, ``"secret"`` or ``"aws_secret"`` when a key or variable name names a credential.

    ``""`` otherwise.

    Matches by suffix of the normalised name (``DB_PASSWORD``, ``apiKey``, ``x-api-key``,
    ``client_secret``, ``access_token``) and excludes look-alikes that hold no secret
    (``nextPageToken``, ``progressToken``, ``max_tokens``, ``token_type``, ``secret_name``).
    """
    kind = _KEY_CACHE.get(key)
    if kind is None:
        kind = _classify_key(key)
        if len(_KEY_CACHE) >= _KEY_CACHE_LIMIT:
            _KEY_CACHE.clear()
        _KEY_CACHE[key] = kind
    return kind


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_PLACEHOLDER_WORDS = (
    "xxxx",
    "****",
    "....",
    "…",
    "####",
    "0000000",
    "your",
    "placeholder",
    "changeme",
    "change_me",
    "change-me",
    "redacted",
    "dummy",
    "example",
    "sample",
    "insert",
    "replace",
    "todo",
    "fixme",
    "here",
    "secret",
    "password",
    "passwd",
    "token",
    "mytoken",
    "api_key",
    "apikey",
    "undefined",
    "null",
    "none",
    "test1234",
    "abcdef123",
    "123456789",
    "abcdefgh",
    "qwerty",
    "masked",
    "hidden",
    "not_set",
    "notset",
    "<",
    ">",
    "${",
    "$(",
    "{{",
    "%(",
    "%s",
)


def is_placeholder(value: str) -> bool:
    """Template variables, masks and the usual ``your-api-key-here`` texts."""
    low = value.lower()
    if any(w in low for w in _PLACEHOLDER_WORDS):
        return True
    if low.startswith(("$", "%", "{", "[", "process.env", "os.environ", "env.", "env[")):
        return True
    return len(set(low)) <= 2


def is_sequential(value: str) -> bool:
    """Mostly runs like ``abcdef`` / ``123456``: typed by a human writing an example."""
    if len(value) < 8:
        return False
    steps = sum(1 for a, b in itertools.pairwise(value) if ord(b) - ord(a) == 1)
    return steps >= (len(value) - 1) * 0.5


def looks_random(value: str, min_entropy: float = 3.0) -> bool:
    """Random enough to be a generated credential rather than a word, a mask or an example."""
    if len(value) < 8 or is_sequential(value):
        return False
    low = value.lower()
    if "xxxx" in low or "****" in low or "...." in low or "0000000" in low:
        return False
    return entropy(value) >= min_entropy


def char_classes(value: str) -> int:
    """How many of lowercase, uppercase, digits and other characters occur."""
    lower = upper = digit = other = 0
    for c in value:
        if c.islower():
            lower = 1
        elif c.isupper():
            upper = 1
        elif c.isdigit():
            digit = 1
        else:
            other = 1
    return lower + upper + digit + other
