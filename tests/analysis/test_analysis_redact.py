"""Redaction of secrets (always) and personal data (when configured)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from analysis_corpus import Gen
from analysis_corpus_secrets import GENERATORS
from hypothesis import given, settings
from hypothesis import strategies as st

from kilometers.analysis import AnalysisConfig, Analyzer, redact, redact_json
from kilometers.model import Event

G = Gen(42)
TOKEN = GENERATORS["secret.github_token"](G)
AWS = GENERATORS["secret.aws_access_key"](G)
PEM = GENERATORS["secret.private_key"](G)


def test_only_the_secret_span_is_replaced() -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "deploy",
            "arguments": {"env": [f"GITHUB_TOKEN={TOKEN}", "DEBUG=1"], "note": "ship it"},
        },
    }
    original = copy.deepcopy(message)
    result = redact(message)
    assert result.changed
    assert message == original  # input untouched
    args = result.message["params"]["arguments"]
    assert args["env"] == ["GITHUB_TOKEN=[REDACTED:secret.github_token]", "DEBUG=1"]
    assert args["note"] == "ship it"
    assert [f.path for f in result.findings] == ["/params/arguments/env/0"]
    assert TOKEN not in orjson.dumps(result.message).decode()


def test_multiple_secrets_in_one_string_and_whole_pem_blocks() -> None:
    text = f"aws {AWS} and {TOKEN}\n{PEM}tail"
    result = redact({"text": text})
    redacted = result.message["text"]
    assert redacted == (
        "aws [REDACTED:secret.aws_access_key] and [REDACTED:secret.github_token]\n"
        "[REDACTED:secret.private_key]\ntail"
    )


def test_nothing_to_redact_returns_the_same_object() -> None:
    message = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "hello world"}]}}
    result = redact(message)
    assert not result.changed and result.message is message and result.findings == ()


def test_pii_only_when_configured() -> None:
    message = {"text": "Mail jane.doe@example.com, card 4539 5787 6362 1486"}
    assert not redact(message).changed
    result = redact(message, AnalysisConfig(redact_pii=True))
    assert result.message["text"] == "Mail [REDACTED:pii.email], card [REDACTED:pii.payment_card]"


def test_disabled_rules_are_not_redacted() -> None:
    message = {"text": f"key {AWS}"}
    assert not redact(message, AnalysisConfig(disabled_rules=frozenset({"secret.aws_access_key"}))).changed
    assert not redact(message, AnalysisConfig(redact_secrets=False)).changed


def test_redact_json_keeps_unchanged_text_verbatim() -> None:
    text = '{"jsonrpc":"2.0",  "id":1, "result":{"ok":true}}'
    assert redact_json(text) == (text, ())
    secret_text = orjson.dumps({"jsonrpc": "2.0", "id": 2, "result": {"token": TOKEN}}).decode()
    new, findings = redact_json(secret_text)
    assert TOKEN not in new and "[REDACTED:secret.github_token]" in new
    assert findings[0].path == "/result/token"
    truncated = secret_text[:-3]  # a truncated payload is not JSON: redacted as text
    new, _ = redact_json(truncated)
    assert TOKEN not in new


def test_redaction_is_idempotent() -> None:
    once = redact({"a": [f"x {TOKEN} y", {"b": f"postgres://u:Zq8kL2mN4p@db/x {AWS}"}]})
    twice = redact(once.message)
    assert not twice.changed


def test_analyzer_process_and_event_api() -> None:
    analyzer = Analyzer()
    message = {
        "jsonrpc": "2.0",
        "id": 5,
        "result": {"content": [{"type": "text", "text": f"token: {TOKEN}"}]},
    }
    analysis = analyzer.process(
        "server_to_client", "response", "tools/call", "read_file", message, redact=True
    )
    assert analysis.changed and analysis.risk.level == "high"
    assert analysis.redacted["result"]["content"][0]["text"] == "token: [REDACTED:secret.github_token]"
    event = Event(
        session_id="s",
        ts_ns=1,
        direction="server_to_client",
        kind="response",
        size_bytes=10,
        payload=orjson.dumps(message).decode(),
        method="tools/call",
        tool="read_file",
    )
    risk, payload = analyzer.analyze_event(event, redact=True)
    assert risk == analysis.risk
    assert payload is not None and TOKEN not in payload
    assert orjson.loads(payload) == analysis.redacted
    risk, payload = analyzer.analyze_event(event)
    assert payload is None and risk.level == "high"


json_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
documents = st.recursive(
    json_text | st.integers(-(2**53), 2**53) | st.booleans() | st.none(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=4),
    max_leaves=25,
)


def _plant(document: Any, secret: str, draw: st.DrawFn) -> Any:
    if isinstance(document, dict) and document and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(document)))
        document[key] = _plant(document[key], secret, draw)
        return document
    if isinstance(document, list) and document and draw(st.booleans()):
        i = draw(st.integers(0, len(document) - 1))
        document[i] = _plant(document[i], secret, draw)
        return document
    return f"prefix {secret} suffix"


@st.composite
def planted(draw: st.DrawFn) -> tuple[Any, str]:
    rule = draw(st.sampled_from(sorted(GENERATORS)))
    secret = GENERATORS[rule](Gen(draw(st.integers(0, 10_000))))
    return _plant(draw(documents), secret, draw), secret


@settings(max_examples=200, deadline=None)
@given(planted())
def test_planted_secrets_never_survive(case: tuple[Any, str]) -> None:
    document, secret = case
    before = orjson.dumps(document)
    result = redact(document)
    assert orjson.dumps(document) == before
    assert result.changed
    dumped = orjson.dumps(result.message).decode()
    assert secret not in dumped
    assert "[REDACTED:secret." in dumped
    assert not redact(result.message).changed
