"""Invisible and bidi characters in a tool call's arguments raise ``poisoning.invisible_unicode``
(issue 14: a reviewer must not read ``report‮txt.exe`` as ``reportexe.txt``)."""

from __future__ import annotations

from typing import Any

import pytest

from kilometers.analysis.analyzer import Analyzer
from kilometers.analysis.config import AnalysisConfig


def _call(arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "write_file", "arguments": arguments},
    }


def _findings(
    arguments: dict[str, Any], analyzer: Analyzer | None = None
) -> list[tuple[str, str, str | None]]:
    risk = (analyzer or Analyzer()).analyze(
        "client_to_server", "request", "tools/call", "write_file", _call(arguments)
    )
    return [(f.rule, f.severity, f.path) for f in risk.findings]


@pytest.mark.parametrize(
    ("arguments", "path"),
    [
        ({"path": "report\u202etxt.exe"}, "/params/arguments/path"),  # right-to-left override
        ({"text": "rm -rf ~\u2066 # harmless\u2069"}, "/params/arguments/text"),  # isolates
        ({"query": "select 1\U000e0041\U000e0042"}, "/params/arguments/query"),  # tag characters
        ({"note": "ok\u200b\u200b\u200bhidden"}, "/params/arguments/note"),  # a run of zero-width spaces
    ],
)
def test_hiding_characters_in_arguments_are_a_finding(arguments: dict[str, Any], path: str) -> None:
    found = _findings(arguments)
    assert [(rule, where) for rule, _, where in found] == [("poisoning.invisible_unicode", path)]
    assert all(severity in ("high", "critical") for _, severity, _ in found)


@pytest.mark.parametrize(
    "arguments",
    [
        {"path": "notes.txt", "text": "hello"},
        {"text": "team 👩\u200d💻 ok"},  # an emoji's joiner
        {"text": "co\u00adoperate"},  # a soft hyphen
        {"text": "a\u200bb"},  # one stray zero-width space
        {"text": "שלום עולם and English"},  # right-to-left script without controls
    ],
)
def test_ordinary_text_in_arguments_is_not(arguments: dict[str, Any]) -> None:
    assert _findings(arguments) == []


def test_the_poisoning_family_switch_turns_it_off() -> None:
    quiet = Analyzer(config=AnalysisConfig(poisoning=False))
    assert _findings({"path": "report\u202etxt.exe"}, quiet) == []
