"""Secret detection: decisions and edge cases (the corpus covers breadth)."""

from __future__ import annotations

import base64
import json

import pytest
from analysis_corpus import Gen
from analysis_corpus_secrets import GENERATORS

from kilometers.analysis import AnalysisConfig, Analyzer, Finding
from kilometers.analysis.leaves import Leaves
from kilometers.analysis.secrets import scan


def findings(text: str, config: AnalysisConfig | None = None) -> list[Finding]:
    message = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}
    risk = Analyzer(config).analyze("server_to_client", "response", "tools/call", "read_file", message)
    return [f for f in risk.findings if f.rule.startswith("secret.")]


def rules(text: str) -> set[str]:
    return {f.rule for f in findings(text)}


@pytest.mark.parametrize("rule", list(GENERATORS))
def test_messages_never_contain_the_secret(rule: str) -> None:
    g = Gen(11)
    for _ in range(20):
        value = GENERATORS[rule](g)
        found = findings(f"config: {value}\nmore text")
        assert rule in {f.rule for f in found}
        for f in found:
            assert value not in f.message
            # at most a 4-character prefix of any long token of the value is shown
            for token in value.replace("@", " ").replace(":", " ").replace("/", " ").split():
                if len(token) >= 12:
                    assert token[:8] not in f.message


def test_documentation_example_keys_are_not_reported() -> None:
    # published in documentation, so not live keys (issue #15: they were flagged as real)
    assert findings("aws_access_key_id = AKIAIOSFODNN7EXAMPLE") == []
    assert findings("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") == []
    jwt_io = (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5"
        "MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    )
    assert findings(f"Authorization: Bearer {jwt_io}") == []


def test_random_aws_key_ids_made_of_letters_only_are_found() -> None:
    """AWS key ids are base32 (A-Z, 2-7): about 4 % are letters only, and a vowel count alone took
    7 % of those for words in capitals (``AKIAHCQBMOHOUEKCAAJO`` escaped a test in December 2026;
    1,425 of the 20,000 below). Words in capitals still are not keys."""
    import random

    from kilometers.analysis.secrets import _capital_words

    assert rules("key AKIAHCQBMOHOUEKCAAJO") == {"secret.aws_access_key"}
    rng = random.Random(7)
    letters = ["".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(16)) for _ in range(20_000)]
    assert sum(_capital_words(b) for b in letters) <= 300  # 224: 1.1 %
    for words in ("ASIANCULTUREFESTIVAL", "AKIAACCOUNTSERVICE", "ASIAPACIFICREGION"):
        assert rules(f"the {words} page") == set(), words


def test_allow_values_silences_known_values() -> None:
    config = AnalysisConfig(allow_values=frozenset({"AKIAIOSFODNN7EXAMPLE"}))
    assert findings("key AKIAIOSFODNN7EXAMPLE", config) == []


def test_keys_inside_longer_tokens_are_not_matched() -> None:
    g = Gen(3)
    key = GENERATORS["secret.aws_access_key"](g)
    assert rules(f"xx{key}") == set()  # part of a longer identifier
    assert rules(f"/{key}/") == {"secret.aws_access_key"}
    token = GENERATORS["secret.github_token"](g)
    assert rules(token + "abc") == set()


def test_random_base64_does_not_look_like_secrets() -> None:
    g = Gen(5)
    for _ in range(200):
        blob = base64.b64encode(bytes(g.r.randrange(256) for _ in range(600))).decode()
        assert rules(blob) == set()


def test_private_key_span_covers_the_whole_block() -> None:
    g = Gen(8)
    pem = GENERATORS["secret.private_key"](g)
    leaves = Leaves({"text": f"before\n{pem}after"})
    [hit] = scan(leaves)
    value = leaves.values[0][hit.start : hit.end]
    assert value.startswith("-----BEGIN") and value.rstrip().endswith("-----")
    assert "after" not in value and "before" not in value
    assert hit.severity == "critical"


def test_private_key_placeholders_and_public_blocks() -> None:
    assert rules("-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----") == set()
    assert (
        rules(
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
            "-----END PUBLIC KEY-----"
        )
        == set()
    )


def test_unsigned_jwt_is_medium() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode()
    claims = (
        base64.urlsafe_b64encode(json.dumps({"sub": "u-42", "role": "admin"}).encode()).rstrip(b"=").decode()
    )
    [f] = findings(f"{header}.{claims}.")
    assert (f.rule, f.severity) == ("secret.jwt", "medium")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://app:Xk29!fjq0Lm@db.internal:5432/app", {"secret.url_password"}),
        ("postgres://scott:tiger@localhost/test", set()),
        ("postgres://user:${DB_PASSWORD}@db/app", set()),
        ("https://user@github.com/org/repo.git", set()),
        ("redis://:Qw8xZ2pLk4@cache:6379/0", {"secret.url_password"}),
    ],
)
def test_url_passwords(text: str, expected: set[str]) -> None:
    assert rules(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DB_PASSWORD=Zq8#kL2!mN4p", {"secret.generic_credential"}),
        ("password: Zq8kL2mN4p\n", {"secret.generic_credential"}),
        ('{"client_secret": "9f8e7d6c5b4a39281706f5e4d3c2b1a0"}', {"secret.generic_credential"}),
        ("aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzQ8k29Lmn", {"secret.aws_secret_key"}),
        ("password = resolve(config['password'])", set()),
        ("password: Optional[str] = None", set()),
        ("self.api_key = settings.API_KEY", set()),
        ("token = None", set()),
        ("max_tokens: 4096", set()),
        ('INVALID_CREDENTIAL = "SCHEMATHESIS-INVALID-VALUE"', set()),
        ('"minipass": "^7.1.2"', set()),
        ("Single pass: remove the self references", set()),
        ("Authorization: Bearer $TOKEN", set()),
    ],
)
def test_generic_credentials_need_literal_values(text: str, expected: set[str]) -> None:
    assert rules(text) == expected


def test_credential_named_fields_in_arguments() -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "connect", "arguments": {"host": "db", "password": "Zq8kL2mN4p!"}},
    }
    risk = Analyzer().analyze("client_to_server", "request", "tools/call", "connect", message)
    [f] = [f for f in risk.findings if f.rule.startswith("secret.")]
    assert f.path == "/params/arguments/password"
    assert f.rule == "secret.generic_credential" and f.severity == "medium"


def test_pagination_and_progress_tokens_are_not_credentials() -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {"tools": [], "nextCursor": "eyJvZmZzZXQiOiA1MH0="},
        "_meta": {"progressToken": "d1f0e2c3b4a59687"},
        "nextPageToken": "CiAKGjBpNDd2Nmp2Zml2cXRwYjBp",
    }
    risk = Analyzer().analyze("server_to_client", "response", "tools/list", None, message)
    assert not [f for f in risk.findings if f.rule.startswith("secret.")]


def _literal_runs(items: object) -> list[str]:
    """The runs of literal characters that every match of a parsed alternative contains."""
    from re import _constants as c  # type: ignore[attr-defined]

    runs, run = [], ""
    for op, arg in items:  # type: ignore[attr-defined]
        if op is c.LITERAL:
            run += chr(arg)
            continue
        runs.append(run)
        run = ""
        if op is c.SUBPATTERN and len(arg[-1]) == 1 and arg[-1][0][0] is c.LITERAL:
            run = chr(arg[-1][0][1])
    return [r for r in [*runs, run] if r]


def _alternatives(pattern: str) -> list[list[str]]:
    """For each top-level alternative of ``pattern`` (a prefix common to all of them, then a
    group of alternatives, as the scanners are written), the literal runs it must contain."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]

    items = list(_parser.parse(pattern))
    head: list[object] = []
    while items and items[0][0] is c.LITERAL:
        head.append(items.pop(0))
    group = items[0] if items else None
    if group is not None and group[0] is c.SUBPATTERN and len(group[1][-1]) == 1:
        group = group[1][-1][0]  # a capturing group around the alternatives
    if group is not None and group[0] is c.BRANCH:
        return [_literal_runs([*head, *branch, *items[1:]]) for branch in group[1][1]]
    return [_literal_runs([*head, *items])]


def test_every_gated_scanner_needs_one_of_its_gates() -> None:
    """A scanner that is skipped when none of its gates is in the text must be unable to match
    without one: each of its alternatives contains one of them literally. So the gates only
    save time (a search that tries every position) and never change what is found."""
    from kilometers.analysis.secrets import _SCANNERS

    gated = [(regex, gates) for regex, gates in _SCANNERS if gates]
    assert len(gated) >= 2
    for regex, gates in gated:
        for runs in _alternatives(regex.pattern):
            assert any(g in run for g in gates for run in runs), (regex.pattern, runs)


@pytest.mark.parametrize(
    "text",
    [
        "GOCSPX-" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9v",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\nAAAAIBx5",
        "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey="
        + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3Ab4Cd5E=",
    ],
)
def test_gated_formats_are_still_found(text: str) -> None:
    assert rules(f"config: {text} end"), text
