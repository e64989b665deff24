"""String-leaf collection and JSON pointers."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kilometers.analysis.leaves import SEP, Leaves, pointer


def resolve(document: Any, ptr: str) -> Any:
    """RFC 6901 resolution, independent of the implementation under test."""
    if ptr == "":
        return document
    node = document
    for token in ptr.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_pointers_resolve_to_their_leaf(document: Any) -> None:
    leaves = Leaves(document, min_len=1)
    pointers = leaves.pointers(range(len(leaves.values)))
    assert len(pointers) == len(leaves.values)
    for i, value in enumerate(leaves.values):
        assert resolve(document, pointers[i]) == value
    assert leaves.blob == SEP.join(leaves.values)


@settings(max_examples=200, deadline=None)
@given(json_values, st.integers(min_value=0, max_value=40))
def test_locate_maps_blob_offsets_back(document: Any, k: int) -> None:
    leaves = Leaves(document, min_len=1)
    for i, value in enumerate(leaves.values[:k]):
        offset = leaves.blob.index(value) if value else None
        if offset is None or leaves.blob.count(value) != 1:
            continue
        assert leaves.locate(offset) == (i, 0)


def test_skips_short_strings_and_media_payloads() -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "content": [
                {"type": "text", "text": "here is the picture"},
                {"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgoAAAANSUhEUgAA" * 20},
                {
                    "type": "resource",
                    "resource": {"uri": "file:///a.bin", "mimeType": "x/y", "blob": "AAAA" * 30},
                },
            ]
        },
    }
    leaves = Leaves(message)
    assert leaves.values == ["here is the picture", "image/png", "resource", "file:///a.bin"]
    assert leaves.pointers([0, 3]) == {0: "/result/content/0/text", 3: "/result/content/2/resource/uri"}


def test_pointer_escaping() -> None:
    assert pointer(["a/b", "c~d", 0]) == "/a~1b/c~0d/0"
    doc = {"a/b": {"c~d": ["x" * 10]}}
    leaves = Leaves(doc)
    assert leaves.pointers([0]) == {0: "/a~1b/c~0d/0"}


def test_string_root_and_clipping() -> None:
    assert Leaves("just a raw invalid line").pointers([0]) == {0: ""}
    leaves = Leaves({"a": "x" * 100, "b": "y" * 100}, max_chars=150)
    assert len(leaves.blob) <= 150
    assert leaves.values[0] == "x" * 100 and leaves.values[1].startswith("y")


def test_credential_named_fields_are_marked() -> None:
    leaves = Leaves(
        {"env": {"DB_PASSWORD": "s3cr3t-pass", "LOG_LEVEL": "info-level"}, "nextPageToken": "abcdefgh"}
    )
    assert [(leaves.values[i], kind) for i, kind in leaves.cred] == [("s3cr3t-pass", "password")]
