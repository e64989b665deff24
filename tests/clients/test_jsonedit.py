"""The text-preserving JSON editor under ``km wrap``: spans, errors, JSONC, layout detection."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kilometers.clients.jsonedit import (
    JSONEditError,
    Node,
    Style,
    detect_style,
    dumps_at,
    line_indent,
    parse,
    splice,
)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)


def _walk(node: Node) -> list[Node]:
    found = [node]
    for member in node.members:
        found += _walk(member.node)
    for item in node.items:
        found += _walk(item)
    return found


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES, st.sampled_from([None, 2, 4, "\t"]), st.booleans())
def test_every_span_holds_its_value(value: Any, indent: int | str | None, ascii_only: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_only)
    doc = parse(text)
    assert doc.value == value
    for node in _walk(doc):
        assert json.loads(text[node.start : node.end]) == node.value
    for node in _walk(doc):
        for member in node.members:
            assert json.JSONDecoder().raw_decode(text, member.key_start)[0] == member.key


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{", "line 1 column 2"),
        ('{"a": 1,}', "line 1 column 9"),
        ('{\n  "a": tru\n}', "line 2 column 8"),
        ('{"a" 1}', "line 1 column 6"),
        ('{"a": "x\n"}', "line 1 column 9"),
        ("[1 2]", "line 1 column 4"),
        ("{} x", "line 1 column 4"),
        ("{/* */}", "line 1 column 2"),
        ("   ", "line 1 column 4"),
        ("{'a': 1}", "line 1 column 2"),
        ("NaN", "line 1 column 1"),
        ("[1, NaN]", "line 1 column 1: NaN is not allowed"),
        ('{"a": [1, [2,]]}', "line 1 column 14"),
    ],
)
def test_errors_say_where(text: str, where: str) -> None:
    with pytest.raises(JSONEditError, match=where):
        parse(text)


def test_jsonc_comments_and_trailing_commas() -> None:
    text = '// top\n{\n  "a": [1, 2,], /* x */\n  "b": {"c": "//not a comment",},\n}\n'
    doc = parse(text, jsonc=True)
    assert doc.value == {"a": [1, 2], "b": {"c": "//not a comment"}}
    with pytest.raises(JSONEditError, match="comments are not allowed"):
        parse(text)
    with pytest.raises(JSONEditError, match="unterminated"):
        parse("{/* ", jsonc=True)


def test_bom_and_duplicate_keys() -> None:
    doc = parse('\ufeff{"a": 1, "a": 2}')
    assert doc.value == {"a": 2}
    member = doc.member("a")
    assert member is not None and member.node.value == 2 and member.node.start == 15


def test_find() -> None:
    doc = parse('{"a": {"b": {"c": [1]}}, "d": 1}')
    node = doc.find(("a", "b", "c"))
    assert node is not None and node.value == [1]
    assert doc.find(("d", "x")) is None and doc.find(("zz",)) is None


@pytest.mark.parametrize(
    ("text", "style"),
    [
        ('{\n  "a": 1\n}\n', Style("  ", "\n")),
        ('{\n    "a": {\n        "b": 1\n    }\n}', Style("    ", "\n")),
        ('{\n\t"a": 1\n}', Style("\t", "\n")),
        ('{\r\n  "a": 1\r\n}\r\n', Style("  ", "\r\n")),
        ('{"a": 1, "b": 2}\n', Style(None, "\n", ", ", ": ")),
        ('{"a":1,"b":2}', Style(None, "\n", ",", ":")),
        ('{\n"a": 1\n}', Style("  ", "\n")),
    ],
)
def test_detect_style(text: str, style: Style) -> None:
    assert detect_style(text) == style


def test_dumps_at_and_splice() -> None:
    value = {"command": "km", "args": ["a", "b"], "env": {}}
    assert dumps_at(value, Style("  ", "\r\n"), "    ") == (
        '{\r\n      "command": "km",\r\n      "args": [\r\n        "a",\r\n        "b"\r\n      ],'
        '\r\n      "env": {}\r\n    }'
    )
    assert dumps_at(value, Style(None, "\n", ",", ":"), "") == '{"command":"km","args":["a","b"],"env":{}}'
    assert dumps_at("é", Style(), "") == '"é"'
    text = '{\n    "x": [1],\n    "y": 2\n}'
    assert line_indent(text, text.index('"y"')) == "    "
    assert splice(text, [(text.index("2"), text.index("2") + 1, "3"), (11, 14, "[]")]) == (
        '{\n    "x": [],\n    "y": 3\n}'
    )
    with pytest.raises(ValueError):
        splice(text, [(1, 5, ""), (3, 6, "")])
