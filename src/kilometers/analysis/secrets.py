"""Secrets, recognised by their value's format, or by the key, sibling name or flag holding it.

Specific formats (rule: what, usual severity). Formats sharing a literal prefix share one
regex, so a clean message costs about a dozen fast literal scans:

* ``secret.aws_access_key``: ``AKIA``/``ASIA``/``ABIA``/``ACCA`` + 16 (high)
* ``secret.aws_secret_key``: 40-character key next to an AWS-secret-like name (critical)
* ``secret.gcp_api_key``: ``AIza`` + 35 (high)
* ``secret.gcp_oauth_token``: ``ya29.`` access tokens (high)
* ``secret.gcp_client_secret``: ``GOCSPX-`` + 28 (high)
* ``secret.azure_storage_key``: ``AccountKey=``/``SharedAccessKey=`` of connection strings (critical)
* ``secret.azure_sas_token``: the ``sig=`` of a SAS URL that has ``sv=``/``se=``/``sr=`` (high)
* ``secret.azure_client_secret``: Entra ID client secrets (``abc8Q~...``) (high)
* ``secret.github_token``: ``ghp_ gho_ ghu_ ghs_ ghr_`` + 36, ``github_pat_`` (high)
* ``secret.gitlab_token``: ``glpat-`` and the other ``gl*-`` prefixes (high)
* ``secret.slack_token``: ``xoxb-``/``xoxp-``/... with numeric segments, ``xapp-`` (high)
* ``secret.slack_webhook``: ``hooks.slack.com/services/...`` (high)
* ``secret.stripe_key``: ``sk_live_``, ``rk_live_``, ``whsec_`` (high); ``*_test_`` (medium)
* ``secret.openai_api_key``: ``sk-...T3BlbkFJ...``, ``sk-proj-``/``svcacct-``/``admin-``,
  legacy ``sk-`` + 48 (high)
* ``secret.anthropic_api_key``: ``sk-ant-api03-...`` and other ``sk-ant-`` kinds (high)
* ``secret.generic_api_key``: other random ``sk-`` keys (DeepSeek, LLM proxies...) (medium)
* ``secret.huggingface_token`` ``hf_``, ``secret.npm_token`` ``npm_``, ``secret.pypi_token`` (high)
* ``secret.private_key``: ``-----BEGIN ... PRIVATE KEY-----`` with a key body (or cut off after
  the header), PuTTY keys; the whole block is the span (critical)
* ``secret.jwt``: three base64url parts whose header decodes to JSON with ``alg`` (high;
  unsigned: medium)
* ``secret.url_password``: ``scheme://user:password@host`` (high)
* ``secret.generic_credential``: a literal value of a credential-named field or assignment
  (``DB_PASSWORD=...``, ``"client_secret": "..."``, ``Authorization: Bearer ...``) (medium)

Decisions:

* Example keys published in documentation (``AKIAIOSFODNN7EXAMPLE``, anything containing
  ``EXAMPLE``, the jwt.io sample token) are not reported: they are public, not live keys.
  Other values known to be harmless go into ``AnalysisConfig.allow_values``.
* Obvious placeholders are not reported: ``ghp_xxxx...``, ``sk-...``, ``${TOKEN}``,
  ``your-api-key``, sequential ``abcdef123456``, single-character runs, and the classic
  documentation passwords in URLs (``scott:tiger``, ``user:password``; also percent-encoded).
* Where the name comes from (see :func:`kilometers.analysis.text.credential_key_kind` for the
  spellings and languages): the JSON key (``"DB_PASSWORD": ...``); the sibling name of a
  ``value`` (``{"name": "DB_PASSWORD", "value": ...}`` in env and header lists, and the same
  in text: ``- name: X`` / ``value: ...`` YAML, ``<add key="X" value="..."/>``); the flag
  before an argument (``["--password", ...]``, ``--token ...`` in a command line); the first
  of a pair (``["Authorization", "Bearer ..."]``); an assignment in text (below).
* Credential-named fields: ``password``-like names report any non-placeholder value of 6+
  characters that is not a path, a number under 8 digits, a duration or a one- or two-word
  setting (``required``, ``not_set``); ``token``/``secret``/``api_key``-like names need 16+
  characters, two character classes, no spaces and Shannon entropy >= 3 bits/char.
  Pagination and MCP progress tokens, ``max_tokens``, ``token_type``, CSRF tokens,
  ``secret_name`` are not credential names.
* Assignments inside text count only when the value is a literal (quoted; ``KEY=value``
  without spaces; ``key = value``/``key: value`` alone on its line, the value running to its
  end; ``Bearer ...``; ``"X-Api-Key: ..."`` in quotes; ``--password ...``), so
  source code such as ``password = resolve(config)`` or ``api_key: str`` is not reported.
* Matches must not be glued to a longer token (no key is found inside base64 blobs).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import orjson

from .findings import Severity, mask
from .leaves import Hit, Leaves
from .text import (
    AWS_SECRET_KIND,
    PASSWORD_KIND,
    char_classes,
    credential_key_kind,
    is_placeholder,
    looks_random,
)

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_WORD = _ALNUM | {"_"}
_URLSAFE = _WORD | {"-"}
_B64 = _ALNUM | {"+", "/"}

Check = Callable[[str, Leaves, int], "tuple[Severity, str] | None"]
"""(value, leaves, blob offset) -> (severity, note) or None to reject the match."""


@dataclass(frozen=True, slots=True)
class _Spec:
    """One secret format. Its regex lives in a scanner shared with formats of the same prefix."""

    rule: str
    label: str
    severity: Severity
    boundary: frozenset[str] = _URLSAFE
    """Characters that must not touch the match on either side (it would be part of a longer token)."""
    value_group: bool = False
    """The secret is the marker group's span (e.g. after ``AccountKey=``), not the whole match."""
    check: Check | None = None
    example_aware: bool = True
    extend: Callable[[str, int], int] | None = None
    """Blob, match end -> end of the whole secret (a PEM block runs to its END line)."""
    back: str = ""
    """Characters one of which must precede the match and belongs to the secret (``s`` of ``sk-``)."""


def _random_body(prefix_len: int, min_entropy: float = 3.0) -> Check:
    def check(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
        return ("high", "") if looks_random(value[prefix_len:], min_entropy) else None

    return check


_LETTER_PERCENT = dict(
    zip(
        "ETAOINSHRDLCUMWFGYPBVKJXQZ",
        (12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 1.9,
         1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07),
        strict=True,
    )
)  # fmt: skip
_ENGLISH_LETTER = {c: math.log(p / 100 * 26) for c, p in _LETTER_PERCENT.items()}
"""Per capital letter, log(its frequency in English text / a random letter's 1/26)."""


def _capital_words(body: str) -> bool:
    """Whether letters read as English words in capitals (``NCULTUREFESTIVAL``), not a random
    id: enough vowels, and letters more likely drawn from English than uniformly (log-likelihood
    ratio ≥ 1). Measured on 2 million random key ids: 4 in 10,000 are taken for words (25 in
    10,000 with the vowel count alone); and 4 % of 16-letter runs of common words for a key
    (10 % with the vowel count alone)."""
    return (
        body.isalpha()
        and sum(1 for c in body if c in "AEIOU") >= 5
        and sum(_ENGLISH_LETTER.get(c, 0.0) for c in body) >= 1.0
    )


def _aws_key(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
    body = value[4:]
    if len(set(body)) < 6:
        return None  # AKIAXXXXXXXXXXXXXXXX
    if _capital_words(body):
        return None  # "ASIANCULTUREFESTIVAL"
    return "high", ""


def _stripe(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
    body = value.split("_", 2)[-1]
    if not looks_random(body):
        return None
    if "_test_" in value[:8]:
        return "medium", " (test mode)"
    return "high", ""


_OPENAI = re.compile(
    r"sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{40,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{48})"
)
_ANTHROPIC = re.compile(r"sk-ant-(?:api|admin|oat|ort|sid)\d\d-[A-Za-z0-9_-]{32,}")
_OTHER_SK = re.compile(r"sk-[A-Za-z0-9]{32,47}")


def _sk_rule(value: str) -> tuple[str, str, Severity] | None:
    """(rule, label, severity) of an ``sk-`` key, or None."""
    if value.startswith("sk-ant-"):
        return (
            ("secret.anthropic_api_key", "Anthropic API key", "high") if _ANTHROPIC.fullmatch(value) else None
        )
    if _OPENAI.fullmatch(value):
        return "secret.openai_api_key", "OpenAI API key", "high"
    if _OTHER_SK.fullmatch(value):
        return "secret.generic_api_key", "API key", "medium"
    return None


_SLACK_BODY = re.compile(r"(?:[0-9]+-){1,3}[0-9A-Za-z-]{8,}")


def _slack(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
    """``xoxb-<team>-<bot>-<secret>``: numeric segments first ("xoxo-gossip-girl" is no token)."""
    body = value[5:]
    if not _SLACK_BODY.fullmatch(body) or not looks_random(body.replace("-", ""), 3.0):
        return None
    return "high", ""


def _sk_random(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
    return ("high", "") if looks_random(value[3:].replace("-", "").replace("_", ""), 3.2) else None


def _sas(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
    leaf, _ = leaves.locate(offset)
    text = leaves.values[leaf]
    if ("sv=" in text or "se=" in text or "sr=" in text) and looks_random(value):
        return "high", ""
    return None


_PEM_BODY = re.compile(r"(?:\\[nr]|\s)+")


def _private_key(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
    tail = leaves.blob[offset + len(value) : offset + len(value) + 400].split("\x00", 1)[0]
    body = _PEM_BODY.sub("", tail.split("-----END", 1)[0])
    if not body:
        return "critical", ""  # the header alone, e.g. a truncated payload
    b64 = sum(1 for c in body[:200] if c in _B64 or c == "=")
    if b64 >= 40 and b64 >= 0.9 * min(len(body), 200):
        return "critical", ""
    return None


def _pem_end(blob: str, end: int) -> int:
    leaf_end = blob.find("\x00", end)
    if leaf_end == -1:
        leaf_end = len(blob)
    footer = blob.find("-----END", end, leaf_end)
    if footer == -1:
        return leaf_end
    close = blob.find("-----", footer + 8, leaf_end)
    return leaf_end if close == -1 else close + 5


def _b64url_json(part: str) -> object:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        return orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None


def _jwt(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
    parts = value.split(".")
    if len(parts) != 3:
        return None
    header = _b64url_json(parts[0])
    if not isinstance(header, dict) or "alg" not in header:
        return None
    claims = _b64url_json(parts[1])
    if not isinstance(claims, dict):
        return None
    if claims.get("sub") == "1234567890" and claims.get("name") == "John Doe":
        return None  # the jwt.io documentation example
    if str(header.get("alg")).lower() == "none" or not parts[2]:
        return "medium", " (unsigned)"
    return "high", ""


def _putty(value: str, leaves: Leaves, offset: int) -> tuple[Severity, str] | None:
    leaf, _ = leaves.locate(offset)
    return ("critical", "") if "Private-Lines" in leaves.values[leaf] else None


SPECS: dict[str, _Spec] = {
    "aws": _Spec("secret.aws_access_key", "AWS access key ID", "high", _ALNUM, check=_aws_key),
    "gcp_key": _Spec("secret.gcp_api_key", "Google API key", "high", check=_random_body(4)),
    "gcp_token": _Spec("secret.gcp_oauth_token", "Google OAuth access token", "high"),
    "gcp_secret": _Spec("secret.gcp_client_secret", "Google OAuth client secret", "high"),
    "azure_account": _Spec("secret.azure_storage_key", "Azure storage account key", "critical", _B64,
                           value_group=True),
    "azure_shared": _Spec("secret.azure_storage_key", "Azure shared access key", "critical", _B64,
                          value_group=True),
    "azure_sas": _Spec("secret.azure_sas_token", "Azure SAS signature", "high", _B64, value_group=True,
                       check=_sas),
    "azure_client": _Spec("secret.azure_client_secret", "Azure AD client secret", "high",
                          _URLSAFE | {"~", "."},
                          check=_random_body(6)),
    "github": _Spec("secret.github_token", "GitHub token", "high", check=_random_body(4)),
    "gitlab": _Spec("secret.gitlab_token", "GitLab token", "high", check=_random_body(6)),
    "slack": _Spec("secret.slack_token", "Slack token", "high", check=_slack),
    "slack_app": _Spec("secret.slack_token", "Slack app token", "high"),
    "slack_webhook": _Spec("secret.slack_webhook", "Slack webhook URL", "high", value_group=True,
                           check=_random_body(0)),
    "stripe": _Spec("secret.stripe_key", "Stripe secret key", "high", check=_stripe, back="sr"),
    "stripe_webhook": _Spec("secret.stripe_key", "Stripe webhook secret", "high", check=_random_body(6)),
    "sk": _Spec("secret.openai_api_key", "OpenAI API key", "high", back="s", check=_sk_random),
    "hf": _Spec("secret.huggingface_token", "Hugging Face token", "high", check=_random_body(3)),
    "npm": _Spec("secret.npm_token", "npm token", "high", check=_random_body(4)),
    "pypi": _Spec("secret.pypi_token", "PyPI token", "high"),
    "pem": _Spec("secret.private_key", "private key block", "critical", frozenset(), check=_private_key,
                 example_aware=False, extend=_pem_end),
    "putty": _Spec("secret.private_key", "PuTTY private key", "critical", frozenset(), check=_putty,
                   example_aware=False, extend=_pem_end),
    "jwt": _Spec("secret.jwt", "JSON Web Token", "high", _URLSAFE | {"."}, check=_jwt),
}  # fmt: skip

_SCANNERS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(regex), gates)
    for regex, gates in (
        # one pass per literal prefix ("A" covers three formats); a common prefix keeps the scan a fast
        # literal search, while an alternation of different prefixes would try every position
        (
            r"A(?:(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?P<aws>)|Iza[0-9A-Za-z_-]{35}(?P<gcp_key>)"
            r"|ccountKey=(?P<azure_account>[A-Za-z0-9+/]{86}==))",
            (),
        ),
        (
            r"(?:GOCSPX-[0-9A-Za-z_-]{28}(?P<gcp_secret>)|PuTTY-User-Key-File-\d: [\w@.-]+(?P<putty>)"
            r"|SharedAccessKey=(?P<azure_shared>[A-Za-z0-9+/]{42,43}=))",
            # no common first character: without its literals, the search tries every position
            ("GOCSPX-", "PuTTY-User-Key-File-", "SharedAccessKey="),
        ),
        (
            r"g(?:(?:h[pousr]_[A-Za-z0-9]{36}|ithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59})(?P<github>)"
            r"|l(?:pat|dt|rt|ptt|cbt|oas|soat|ft|imt|agent|ffct|wt)-[0-9A-Za-z_-]{20,}(?P<gitlab>))",
            (),
        ),
        (
            r"x(?:ox[abposre]-[0-9A-Za-z-]{10,}(?P<slack>)|app-\d-[A-Z0-9]{9,}-\d+-[a-f0-9]{32,}(?P<slack_app>))",
            (),
        ),
        (r"k(?:_(?:live|test)_[0-9A-Za-z]{20,}(?P<stripe>)|-[A-Za-z0-9_-]{20,}(?P<sk>))", ()),
        (
            r"h(?:ooks\.slack\.com/(?:services|workflows|triggers)/(?P<slack_webhook>[A-Za-z0-9_/+-]{20,})"
            r"|f_[A-Za-z]{34}(?P<hf>))",
            (),
        ),
        (r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*(?P<jwt>)", ()),
        (r"-----BEGIN[ A-Z0-9]{0,20}PRIVATE KEY(?: BLOCK)?-----(?P<pem>)", ()),
        (r"ya29\.[0-9A-Za-z_-]{30,}(?P<gcp_token>)", ()),
        (r"sig=(?P<azure_sas>[A-Za-z0-9%+/]{40,}(?:%3D|=){0,2})", ()),
        (r"whsec_[A-Za-z0-9+/=]{32,}(?P<stripe_webhook>)", ()),
        (r"npm_[A-Za-z0-9]{36}(?P<npm>)", ()),
        (r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}(?P<pypi>)", ()),
        (r"[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?P<azure_client>)", ("Q~",)),
    )
)

_URL_CREDENTIALS = re.compile(r"://([^\s:/?#@\"'<>,\x00]{0,128}):([^\s:/?#@\"'<>,\x00]{1,256})@(?=[\w\[])")
_URL_PLACEHOLDERS = frozenset(
    # documentation classics ("scott:tiger", "guest:guest" is not one: it is RabbitMQ's real default)
    {
        "pass",
        "pwd",
        "passw0rd",
        "p@ss",
        "pw",
        "user",
        "username",
        "x",
        "xx",
        "xxx",
        "foo",
        "bar",
        "baz",
        "tiger",
        "test",
        "testing",
        "secret",
        "s3cret",
        "hunter2",
        "mypassword",
        "mysecretpassword",
        "pa$$word",
        "p@ssw0rd",
    }
)

_ASSIGN_KEYWORDS = (
    "pass",
    "pw",
    "secret",
    "token",
    "key",
    "credential",
    "auth",
    # "password" in other languages (see text._PASSWORD_SUFFIXES)
    "wort",
    "contrase",
    "senha",
    "parol",
    "woord",
    "haslo",
    "hasło",
    "salasana",
    "heslo",
    "sifre",
    "şifre",
    "senord",
    "пароль",
)
_IDENT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_IDENT_RUN = re.compile(r"[\w.-]*")
"""Characters of a key or variable name (letters of any language, digits, ``_``, ``.``, ``-``)."""
_SIBLING_NAME = re.compile(r"(?<![\w-])(?:name|key|Name|Key|NAME|KEY)[\"']?[ \t]*[:=][ \t]*[\"']?\Z")
_SIBLING_OTHER = re.compile(r"(?<![\w-])(?:name|key|Name|Key|NAME|KEY)[\"']?[ \t]*[:=]")
_SIBLING_VALUE = re.compile(r"(?<![\w-])(?:value|Value|VALUE)(?![\w-])")
_ENUM_WORD = r"(?:[a-z]+(?:[A-Z][a-z]+)*|[A-Z][a-z]+|[A-Z]+)"
_ENUM_LIKE = re.compile(rf"{_ENUM_WORD}(?:[_.-]{_ENUM_WORD})?")
_PATH = re.compile(r"(?:~|\.{1,2})?(?:/[\w.@%+-]+)+/?|[A-Za-z]:(?:\\{1,2}[\w.@%+ -]+)+\\?")
_ASSIGN_OP = re.compile(
    r"(?P<q1>[\"']?)(?P<sp1>[ \t]*)(?P<op>=>|:=|=|:)(?P<sp2>[ \t]*)(?P<q2>[\"'`]?)"
    r"(?P<scheme>(?:Bearer|Basic|Token|token|bearer)[ \t]+)?"
)
_BARE_VALUE = re.compile(r"[^\s\"'`,;&<>(){}\[\]\x00\\]{6,512}")
_CAMEL_IDENT = re.compile(r"[A-Z][a-z]+(?:[A-Z][a-z]+)+|[a-z]+(?:[A-Z][a-z]+)+")
_DOTTED_IDENT = re.compile(
    r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+|[A-Z][A-Z0-9]*(?:[_-][A-Z0-9]+)+|[a-z]+(?:_[a-z]+)+"
)
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")
_SPACE = re.compile(r"\s")
_LINE_VALUE = re.compile(r"[^\s\x00()\[\]{}<>\"'`]{6,512}")
"""A value running to the end of its line; not code (``request.cookies.get(NAME)``) or markup."""
_DURATION = re.compile(r"\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y|min|sec|days?|hours?)?|\d{1,2}:\d\d(?::\d\d)?")
_AUTH_SCHEME = re.compile(r"(?:Bearer|Basic|Token|token|bearer|Bot)[ \t]+")


MAX_MATCHES = 2000
"""Candidate matches examined per pattern (and per keyword) in one message: bounds the cost of
adversarial payloads (a megabyte of ``password=x``); later matches are neither reported nor redacted."""


def _is_example(value: str) -> bool:
    return "EXAMPLE" in value.upper()


def _path_like(value: str) -> bool:
    """``/home/me/src``, ``~/.config``, ``./data``, ``C:\\Users\\me``: a path, not a base64 key
    that starts with ``/`` (whose segments mix upper case, lower case and digits)."""
    if not _PATH.fullmatch(value):
        return False
    return not any(len(seg) >= 8 and char_classes(seg) >= 3 for seg in re.split(r"[/\\]", value))


def _enum_like(value: str) -> bool:
    """``required``, ``strong``, ``not_set``, ``on-demand``, ``Bearer``: a setting's word, not a
    password (a passphrase has more words, or digits or symbols)."""
    return len(value) <= 24 and _ENUM_LIKE.fullmatch(value) is not None


def _specific(leaves: Leaves, allow: frozenset[str], hits: list[Hit]) -> None:
    blob = leaves.blob
    n = len(blob)
    for regex, gates in _SCANNERS:
        if gates and not any(g in blob for g in gates):
            continue
        m = regex.search(blob)
        budget = MAX_MATCHES
        while m is not None and budget > 0:
            budget -= 1
            name = m.lastgroup
            spec = SPECS[name] if name is not None else None
            next_from = m.end()
            ms, me = m.span()
            if spec is not None and spec.back:
                if ms == 0 or blob[ms - 1] not in spec.back:
                    spec = None
                else:
                    ms -= 1
            if spec is not None:
                b = spec.boundary
                if b and ((ms > 0 and blob[ms - 1] in b) or (me < n and blob[me] in b)):
                    spec = None
            if spec is not None:
                _emit(leaves, allow, hits, spec, m, ms, me)
            m = regex.search(blob, next_from if next_from > m.start() else m.start() + 1)


def _emit(
    leaves: Leaves, allow: frozenset[str], hits: list[Hit], spec: _Spec, m: re.Match[str], ms: int, me: int
) -> None:
    blob = leaves.blob
    start, end = m.span(m.lastgroup or 0) if spec.value_group else (ms, me)
    value = blob[start:end]
    if value in allow:
        return
    rule, label, severity = spec.rule, spec.label, spec.severity
    note = ""
    if m.lastgroup == "sk":
        found = _sk_rule(value)
        if found is None:
            return
        rule, label, severity = found
    if spec.example_aware and _is_example(value):
        return  # a documentation example (AKIAIOSFODNN7EXAMPLE): published, not a live key
    if spec.check is not None:
        verdict = spec.check(value, leaves, start)
        if verdict is None:
            return
        if m.lastgroup != "sk":
            severity, note = verdict
    message = f"{label} {mask(value)}{note}"
    if spec.extend is not None:
        end = spec.extend(blob, end)
        message = f"{label} ({value.strip('-: ')}, {end - start} chars)"
    hits.append(leaves.hit(rule, severity, message, start, end))


def _url_passwords(leaves: Leaves, allow: frozenset[str], hits: list[Hit]) -> None:
    blob = leaves.blob
    if "@" not in blob:
        return
    for count, m in enumerate(_URL_CREDENTIALS.finditer(blob)):
        if count >= MAX_MATCHES:
            break
        password = m.group(2)
        plain = unquote(password)  # "%7Bpassword%7D" is "{password}"
        if password in allow or plain.lower() in _URL_PLACEHOLDERS or is_placeholder(plain):
            continue
        start, end = m.span(2)
        hits.append(
            leaves.hit("secret.url_password", "high", f"password in URL {mask(password)}", start, end)
        )


def _credential_value(value: str, kind: str) -> tuple[int, int, str] | None:
    """(start, end, rule) of the secret in a credential-named value, or None.

    Not secrets: placeholders, documentation examples, URLs (``secret.url_password`` looks at
    those), paths, and for passwords numbers under 8 digits, durations and one- or two-word
    settings (``required``, ``not_set``); tokens and keys need 16+ random-looking characters."""
    start = 0
    m = _AUTH_SCHEME.match(value)
    if m:
        start = m.end()
    end = len(value)
    while end > start and value[end - 1] in " \t\r\n":
        end -= 1
    v = value[start:end]
    if len(v) < 6 or len(v) > 4096 or _SPACE.search(v):
        return None
    low = v.lower()
    if "example" in low or is_placeholder(v) or "://" in v:
        return None  # documentation examples and placeholders; URLs: secret.url_password
    if kind == AWS_SECRET_KIND and _AWS_SECRET.fullmatch(v) and looks_random(v, 3.5):
        return start, end, "secret.aws_secret_key"
    if _path_like(v):
        return None
    if kind == PASSWORD_KIND:
        if (v.isdigit() and len(v) < 8) or _enum_like(v) or _DURATION.fullmatch(v):
            return None
        return start, end, "secret.generic_credential"
    if len(v) < 16 or char_classes(v) < 2 or not looks_random(v, 3.0):
        return None
    return start, end, "secret.generic_credential"


def _generic_hit(rule: str, where: str, secret: str) -> tuple[Severity, str]:
    severity: Severity = "critical" if rule == "secret.aws_secret_key" else "medium"
    label = "AWS secret access key" if rule == "secret.aws_secret_key" else "credential"
    return severity, f"{label} {where} {mask(secret)}"


def _fields(leaves: Leaves, allow: frozenset[str], hits: list[Hit]) -> None:
    for index, kind in leaves.cred:
        value = leaves.values[index]
        found = _credential_value(value, kind)
        if found is None:
            continue
        start, end, rule = found
        secret = value[start:end]
        if secret in allow:
            continue
        severity, message = _generic_hit(rule, f"in a {kind}-named field", secret)
        hits.append(Hit(rule, severity, message, index, start, end, redact=True))


def _assignments(leaves: Leaves, allow: frozenset[str], hits: list[Hit]) -> None:
    blob = leaves.blob
    if "=" not in blob and ":" not in blob and "-" not in blob:
        return  # no assignment and no command-line flag
    low = leaves.lower
    seen: set[int] = set()
    for kw in _ASSIGN_KEYWORDS:
        pos = low.find(kw)
        budget = MAX_MATCHES
        while pos != -1 and budget > 0:
            budget -= 1
            run = _IDENT_RUN.match(blob, pos + len(kw))
            end = run.end() if run else pos + len(kw)
            start = pos
            while start > 0 and ((c := blob[start - 1]) in _IDENT or (c >= "\x80" and c.isalnum())):
                start -= 1
            nxt = low.find(kw, end)
            if start not in seen:
                seen.add(start)
                _assignment(leaves, allow, hits, start, end)
            pos = nxt


def _assignment(leaves: Leaves, allow: frozenset[str], hits: list[Hit], start: int, end: int) -> None:
    blob = leaves.blob
    name = blob[start:end].strip(".-")
    kind = credential_key_kind(name) if name else ""
    if not kind:
        return
    m = _ASSIGN_OP.match(blob, end)
    if m is not None:
        span = _literal_value(blob, start, m)
    else:
        span = _flag_value(blob, start, end) if blob[start] == "-" else _sibling_value(blob, start, end)
    if span is None:
        return
    raw = blob[span[0] : span[1]].rstrip(".")
    found = _credential_value(raw, kind)
    if found is None or _looks_like_code(raw):
        return
    vs = span[0] + found[0]
    ve = span[0] + found[1]
    secret = blob[vs:ve]
    if secret in allow:
        return
    severity, message = _generic_hit(found[2], f"assigned to {name!r}", secret)
    hits.append(leaves.hit(found[2], severity, message, vs, ve))


def _literal_value(blob: str, name_start: int, m: re.Match[str]) -> tuple[int, int] | None:
    """Span of the assigned value when it is a literal, not a code expression (``password = resolve(x)``).

    Literals: quoted values (``password = "..."``, ``"token": "..."``); ``KEY=value`` without
    spaces (``.env`` files, URL query parameters); ``key = value`` / ``key: value`` running to
    the end of a line that starts with the key (INI, TOML, YAML); ``Authorization: Bearer ...``.
    """
    vstart = m.end()
    quote = m.group("q2")
    if quote:
        close = blob.find(quote, vstart, vstart + 513)
        if close == -1 or "\n" in blob[vstart:close] or "\x00" in blob[vstart:close]:
            return None
        return vstart, close
    v = _BARE_VALUE.match(blob, vstart)
    vend = v.end() if v is not None else vstart
    if m.group("scheme"):
        return (vstart, vend) if v is not None else None
    op = m.group("op")
    spaced = m.group("sp1") or m.group("sp2")
    if op in ("=", ":") and not m.group("q1") and (op == "=" or m.group("sp2")):
        line_start = max(blob.rfind("\n", 0, name_start), blob.rfind("\x00", 0, name_start)) + 1
        before = blob[line_start:name_start].strip(" \t-#")
        if before in ("", "export", "set", "ENV"):
            # a line of .env, INI, YAML, properties: the value is all of the rest of the line
            # ("p&ss;word" too), when that is one word
            w = _LINE_VALUE.match(blob, vstart)
            if w is not None and (w.end() >= len(blob) or blob[w.end()] in "\r\n\x00"):
                return vstart, w.end()
            if v is not None and not spaced and op == "=":
                return vstart, vend
            return None
    if v is None:
        return None
    if op == "=" and not spaced and not m.group("q1"):
        return vstart, vend  # KEY=value inside a line (a command, a URL query)
    quote = blob[name_start - 1] if name_start > 0 else ""
    if op == ":" and quote in ('"', "'") and vend < len(blob) and blob[vend] == quote:
        return vstart, vend  # curl -H "X-Api-Key: value"
    return None


def _quoted(blob: str, at: int) -> tuple[int, int] | None:
    """The span inside the quotes opening at ``at`` (on one line of one leaf)."""
    close = blob.find(blob[at], at + 1, at + 514)
    if close == -1 or "\n" in blob[at + 1 : close] or "\x00" in blob[at + 1 : close]:
        return None
    return at + 1, close


def _flag_value(blob: str, start: int, end: int) -> tuple[int, int] | None:
    """The argument after a command-line flag (``--password VALUE``, ``--token "..."``)."""
    flag = blob[start:end].lstrip("-")
    if flag.startswith(("no-", "without-")) or end >= len(blob) or blob[end] not in " \t":
        return None
    at = end
    while at < len(blob) and blob[at] in " \t":
        at += 1
    if at < len(blob) and blob[at] in "\"'":
        return _quoted(blob, at)
    v = _BARE_VALUE.match(blob, at)
    if v is None or blob[at] == "-":
        return None
    return at, v.end()


def _sibling_value(blob: str, start: int, end: int) -> tuple[int, int] | None:
    """The value paired with a credential name given as a name: ``- name: DB_PASSWORD`` then
    ``value: ...`` (Kubernetes YAML), ``<add key="DbPassword" value="..."/>`` (XML),
    ``"Name": "API_KEY", "Value": "..."`` (JSON text)."""
    at = start
    while at > 0 and blob[at - 1] in " \t\"'":
        at -= 1
    if at == 0 or blob[at - 1] not in ":=" or _SIBLING_NAME.search(blob, max(0, start - 24), start) is None:
        return None
    window_end = blob.find("\x00", end, end + 160)
    window_end = end + 160 if window_end == -1 else window_end
    v = _SIBLING_VALUE.search(blob, end, window_end)
    if v is None or _SIBLING_OTHER.search(blob, end, v.start()) is not None:
        return None  # no value, or it belongs to the next entry
    m = _ASSIGN_OP.match(blob, v.end())
    if m is None:
        return None
    return _literal_value(blob, v.start(), m)


def _looks_like_code(value: str) -> bool:
    """``settings.API_KEY``, ``YOUR_TOKEN``, ``get_token``, ``SimpleCheckConfig``: names, not values."""
    if _DOTTED_IDENT.fullmatch(value) and "." in value:
        return True
    return not any(c.isdigit() for c in value) and bool(
        _DOTTED_IDENT.fullmatch(value) or _CAMEL_IDENT.fullmatch(value)
    )


def _overlaps(a: Hit, b: Hit) -> bool:
    return a.leaf == b.leaf and a.start < b.end and b.start < a.end


def scan(leaves: Leaves, allow: frozenset[str] = frozenset()) -> list[Hit]:
    """Every secret in the leaves; generic-credential hits overlapping a specific one are dropped."""
    specific: list[Hit] = []
    _specific(leaves, allow, specific)
    _url_passwords(leaves, allow, specific)
    generic: list[Hit] = []
    if leaves.cred:
        _fields(leaves, allow, generic)
    _assignments(leaves, allow, generic)
    for g in generic:
        if not any(_overlaps(g, s) for s in specific):
            specific.append(g)
    return specific
