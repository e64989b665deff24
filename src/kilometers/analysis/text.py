"""Small text helpers shared by the detectors: key-name classes, entropy, placeholders."""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import Counter

_NON_ALNUM = re.compile(r"[^a-z0-9]")

PASSWORD_KIND = "password"
SECRET_KIND = "secret"
AWS_SECRET_KIND = "aws_secret"

_PASSWORD_SUFFIXES = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "pass",
    "pw",
    # the word in other languages (accents folded): de, es, fr, pt, it/tr, nl, sv, pl, fi, cs, ru
    "passwort",
    "kennwort",
    "contrasena",
    "motdepasse",
    "senha",
    "parola",
    "wachtwoord",
    "losenord",
    "haslo",
    "salasana",
    "heslo",
    "sifre",
    "пароль",
)
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
    "subscriptionkey",
    "privkey",
    "authkey",
    "sessionkey",
    "clientkey",
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
_PW_WORD = re.compile(r"(?:^|[_\-.\s])(?:pw|PW|Pw)$|(?<=[a-z0-9])Pw$")
_ENCODING_SUFFIXES = ("base64", "b64", "pem", "hex", "value", "string", "str", "plaintext", "raw")
_NOT_PASSWORD_PARTS = ("hash", "digest", "salt", "policy", "length", "hint", "strength")
"""A password's hash, salt or policy is not the password (``hashedPassword``, ``passwordSalt``)."""


def normal_key(key: str) -> str:
    """A key or variable name lower-cased, accents folded and separators dropped
    (``DB_PASSWORD``, ``dbPassword``, ``db.password`` -> ``dbpassword``; ``contraseña`` ->
    ``contrasena``)."""
    low = key.lower()
    if not low.isascii():
        low = "".join(c for c in unicodedata.normalize("NFKD", low) if not unicodedata.combining(c))
        low = low.replace("ł", "l").replace("ş", "s")
        return "".join(c for c in low if c.isalnum())
    return _NON_ALNUM.sub("", low)


_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_LIMIT = 4096


def _classify_key(key: str) -> str:
    k = normal_key(key)
    if len(k) > 64:
        return ""
    if k.endswith(_ENCODING_SUFFIXES):  # privateKeyBase64, SECRET_KEY_B64, tokenValue
        k = k.removesuffix(next(x for x in _ENCODING_SUFFIXES if k.endswith(x)))
    if ("aws" in k and "secret" in k) or k.endswith("secretaccesskey"):
        return AWS_SECRET_KIND
    if k in _SECRET_EXACT:
        return SECRET_KIND
    password = k.endswith(_PASSWORD_SUFFIXES)
    if password and k.endswith("pass") and not _PASS_WORD.search(key):
        return ""  # "minipass", "userpass", "bypass": "pass" must be a word of its own (DB_PASS, smtpPass)
    if password and k.endswith("pw") and not _PW_WORD.search(key):
        return ""  # "admin_pw", "DB_PW", "smtpPw"; not "kpw"
    if password and any(part in k for part in _NOT_PASSWORD_PARTS):
        return ""
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

    Matches by suffix of the normalised name (:func:`normal_key`: ``DB_PASSWORD``, ``apiKey``,
    ``x-api-key``, ``spring.datasource.password``, ``client_secret``, ``access_token``; an
    encoding suffix is ignored: ``privateKeyBase64``), "password" also in German, Spanish,
    French, Portuguese, Italian/Turkish, Dutch, Swedish, Polish, Finnish, Czech and Russian
    (``Passwort``, ``contraseña``, ``mot_de_passe``, ``senha``, ``parola``, ``пароль``...),
    and excludes look-alikes that hold no secret (``nextPageToken``, ``progressToken``,
    ``max_tokens``, ``token_type``, ``secret_name``, ``password_hash``, ``passwordPolicy``).
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
)


_PLACEHOLDER = re.compile(
    "|".join(re.escape(w) for w in _PLACEHOLDER_WORDS)
    + r"|%\(\w+\)[sd]|%[sd](?![a-z])"  # printf formats: "%(password)s", "%s"; not "350%server"
)


def is_placeholder(value: str) -> bool:
    """Template variables, masks and the usual ``your-api-key-here`` texts."""
    low = value.lower()
    if _PLACEHOLDER.search(low):
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
