"""A long text repeated inside one message is scanned once (``Leaves(dedupe=True)``): the findings
and the redacted message are exactly those of scanning every copy, over every corpus case, in
the shape the MCP SDK answers (``structuredContent`` repeating the text content) and as sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import analysis_corpus_danger
import analysis_corpus_pii
import analysis_corpus_poisoning
import analysis_corpus_secrets
import orjson
import pytest
from analysis_corpus import C2S, S2C, Case

from kilometers.analysis import Analyzer, leaves

SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
NEVER = 1 << 62


def sdk_answer(text: str) -> dict[str, Any]:
    """A tools/call answer as the MCP SDK's FastMCP sends it: the text again as structured output."""
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {
            "content": [{"type": "text", "text": text}],
            "structuredContent": {"result": text},
            "isError": False,
        },
    }


Analysed = tuple[Any, tuple[str, str, str | None, str | None, Any]]


def messages(case: Case) -> Iterator[Analysed]:
    """(tool definition, what the corpus runner analyses) for ``case``, with its texts repeated
    (and as it is, for a whole message)."""
    for message in _messages(case):
        yield (case.data[2] if case.kind == "call" else None), message


def _messages(case: Case) -> Iterator[tuple[str, str, str | None, str | None, Any]]:
    if case.kind == "call":
        tool, arguments, _ = case.data
        params = {"name": tool, "arguments": arguments, "_meta": {"copy": arguments}}
        yield (
            C2S,
            "request",
            "tools/call",
            tool,
            {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params},
        )
    elif case.kind == "text":
        yield S2C, "response", "tools/call", "read_file", sdk_answer(case.data)
    elif case.kind == "args":
        params = {"name": "save_note", "arguments": case.data, "_meta": {"copy": case.data}}
        yield (
            C2S,
            "request",
            "tools/call",
            "save_note",
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params},
        )
    elif case.kind == "message":
        direction, kind, method, tool, message = case.data
        yield direction, kind, method, tool, message
        if isinstance(message, dict):
            yield direction, kind, method, tool, {**message, "repeated": [message, message]}
    elif case.kind == "listing":
        method, result = case.data if isinstance(case.data, tuple) else ("tools/list", case.data)
        yield S2C, "response", method, None, {"jsonrpc": "2.0", "id": 2, "result": result, "copy": result}


def analysed(case: Analysed) -> bytes:
    definition, message = case
    analyzer = Analyzer()
    if definition is not None:
        analyzer.learn_tools([definition])
    analysis = analyzer.process(*message, redact=True)
    return orjson.dumps([analysis.risk.to_dict(), analysis.redacted])


@pytest.mark.parametrize(
    "family",
    [analysis_corpus_secrets, analysis_corpus_pii, analysis_corpus_danger, analysis_corpus_poisoning],
    ids=lambda module: module.__name__.removeprefix("analysis_corpus_"),
)
def test_a_repeated_text_gets_the_findings_and_redactions_of_every_copy(
    family: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [m for case in family.cases() for m in messages(case)]
    assert len(cases) >= 300
    once = [analysed(m) for m in cases]
    monkeypatch.setattr(leaves, "DEDUPE_MIN", NEVER)  # every copy scanned
    every = [analysed(m) for m in cases]
    for message, a, b in zip(cases, once, every, strict=True):
        assert a == b, message


def test_an_sdk_answer_with_a_secret_is_redacted_and_reported_in_both_places() -> None:
    text = f"deploy token {SECRET} for the staging cluster; rotate it after the release. " * 2
    analysis = Analyzer().process(S2C, "response", "tools/call", "read_file", sdk_answer(text), redact=True)
    paths = sorted(f.path for f in analysis.risk.findings if f.rule.startswith("secret."))
    assert paths == ["/result/content/0/text", "/result/structuredContent/result"]
    assert SECRET not in orjson.dumps(analysis.redacted).decode()
    result = analysis.redacted["result"]
    assert result["content"][0]["text"] == result["structuredContent"]["result"]


def test_copies_are_scanned_once_but_credential_named_leaves_stay_apart() -> None:
    text = "x" * 30 + " plain words that repeat across the message " + "y" * 30
    found = leaves.Leaves({"a": text, "b": [text, text], "password": text}, dedupe=True)
    assert found.copies == {0: [1, 2]}  # the value named "password" is scanned as a credential
    assert found.values[1:3] == ["", ""] and found.text(2) == text
    short = leaves.Leaves({"a": "short text", "b": "short text"}, dedupe=True)
    assert short.copies == {}  # below DEDUPE_MIN: not worth a lookup


def test_what_a_detector_reads_around_a_match_stays_in_its_own_string() -> None:
    """A repeat is scanned as empty, so no detector may judge a string by its neighbours: an
    address after ``user:`` is a URL's userinfo only if its own string has the ``//``, and a
    right-to-left mark is ordinary only beside right-to-left text of its own string."""
    answer = {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {
            "content": [
                {"type": "text", "text": "docs at https://example.com/wiki"},
                {"type": "text", "text": "contact alice:ops.lead@example.com today"},
            ]
        },
    }
    found = Analyzer().analyze(S2C, "response", "tools/call", "read_file", answer).findings
    assert [(f.rule, f.path) for f in found] == [("pii.email", "/result/content/1/text")]
    url = {
        **answer,
        "result": {"content": [{"type": "text", "text": "at https://alice:ops.lead@example.com/x"}]},
    }
    in_url = Analyzer().analyze(S2C, "response", "tools/call", "read_file", url).findings
    assert [f.rule for f in in_url] == ["secret.url_password"]  # (a password, not an address)

    schema = {
        "type": "object",
        "properties": {"p": {"type": "string", "description": "path of the\u200ffile"}},
    }
    tool = {"name": "notes", "description": "קרא את הקובץ", "inputSchema": schema}
    listing = {"jsonrpc": "2.0", "id": 2, "result": {"tools": [tool]}}
    found = Analyzer().analyze(S2C, "response", "tools/list", None, listing).findings
    assert [(f.rule, f.path) for f in found] == [
        ("poisoning.invisible_unicode", "/result/tools/0/inputSchema/properties/p/description")
    ]
    tool["description"] = "קרא את הקובץ\u200f notes"  # beside its own right-to-left text: ordinary
    schema["properties"]["p"]["description"] = "path of the file"
    assert Analyzer().analyze(S2C, "response", "tools/list", None, listing).findings == ()
