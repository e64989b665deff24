"""Unit tests for the sans-IO SSE parser (kilometers.proxy.sse): no sockets, no processes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kilometers.proxy.sse import SSEEvent, SSEParser, encode_event


def parse(*chunks: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def summary(events: list[SSEEvent]) -> list[tuple[str, bytes, str | None, int | None]]:
    return [(e.event, e.data, e.id, e.retry) for e in events]


def test_one_message_event() -> None:
    events = parse(b'event: message\nid: 7\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n')
    assert summary(events) == [("message", b'{"jsonrpc":"2.0","id":1,"result":{}}', "7", None)]


def test_default_event_type_is_message() -> None:
    assert parse(b"data: x\n\n")[0].event == "message"


def test_multiple_data_lines_are_joined_with_lf() -> None:
    assert parse(b"data: a\ndata: b\ndata:\n\n")[0].data == b"a\nb\n"


def test_only_one_leading_space_is_removed() -> None:
    assert parse(b"data:  two spaces\n\n")[0].data == b" two spaces"
    assert parse(b"data:none\n\n")[0].data == b"none"


def test_crlf_and_cr_line_endings() -> None:
    assert summary(parse(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n")) == [
        ("message", b"a", None, None),
        ("message", b"b", None, None),
        ("message", b"c", None, None),
    ]


def test_crlf_split_across_chunks_is_one_line_end() -> None:
    # "\r" ends the line; the "\n" that follows in the next chunk must not count as a blank line
    events = parse(b"data: a\r", b"\ndata: b\r\n\r\n")
    assert summary(events) == [("message", b"a\nb", None, None)]


def test_comments_and_keepalives_are_ignored() -> None:
    assert summary(parse(b": keep-alive\n\n: ping\ndata: x\n\n")) == [("message", b"x", None, None)]


def test_event_without_data_is_not_dispatched_but_sets_the_last_event_id() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: 42\n\n") == []
    assert parser.last_event_id == "42"


def test_priming_event_with_empty_data_is_dispatched() -> None:
    # the MCP priming event: an id to resume from and an empty data field
    events = parse(b"id: abc\ndata: \n\n")
    assert summary(events) == [("message", b"", "abc", None)]


def test_id_is_per_event_last_event_id_persists() -> None:
    parser = SSEParser()
    events = parser.feed(b"id: 1\ndata: a\n\ndata: b\n\n")
    assert [e.id for e in events] == ["1", None]
    assert parser.last_event_id == "1"


def test_id_with_nul_is_ignored() -> None:
    parser = SSEParser()
    events = parser.feed(b"id: a\x00b\ndata: x\n\n")
    assert events[0].id is None
    assert parser.last_event_id == ""


def test_retry_only_with_digits() -> None:
    assert parse(b"retry: 1500\ndata: x\n\n")[0].retry == 1500
    assert parse(b"retry: 1.5\ndata: x\n\n")[0].retry is None


def test_field_without_colon_and_unknown_fields() -> None:
    assert parse(b"data\n\n")[0].data == b""
    assert summary(parse(b"foo: bar\ndata: x\n\n")) == [("message", b"x", None, None)]


def test_legacy_endpoint_event() -> None:
    event = parse(b"event: endpoint\ndata: /messages/?session_id=abc\r\n\r\n")[0]
    assert event.event == "endpoint"
    assert event.text == "/messages/?session_id=abc"


def test_bom_is_skipped_only_at_the_start() -> None:
    assert parse(b"\xef\xbb\xbfdata: x\n\n")[0].data == b"x"
    assert parse(b"\xef", b"\xbb", b"\xbfdata: x\n\n")[0].data == b"x"
    # a BOM later in the stream is part of the field name, so the line is ignored
    assert summary(parse(b"data: a\n\n\xef\xbb\xbfdata: b\n\n")) == [("message", b"a", None, None)]


def test_event_end_offsets_point_past_the_blank_line() -> None:
    chunk = b"data: a\n\ndata: b\n\ndata: c"
    events = SSEParser().feed(chunk)
    assert [chunk[: e.end] for e in events] == [b"data: a\n\n", b"data: a\n\ndata: b\n\n"]


def test_end_offset_after_a_held_back_bom_prefix() -> None:
    parser = SSEParser()
    assert parser.feed(b"\xef\xbb") == []
    chunk = b"\xbfdata: a\n\n"
    events = parser.feed(chunk)
    assert events[0].end == len(chunk)


def test_at_boundary() -> None:
    parser = SSEParser()
    assert parser.at_boundary
    parser.feed(b"data: a\n")
    assert not parser.at_boundary
    parser.feed(b"\n")
    assert parser.at_boundary
    parser.feed(b"event: x")
    assert not parser.at_boundary
    parser.feed(b"\n\n")  # an event with no data is dropped: still a boundary
    assert parser.at_boundary


def test_large_event_in_many_chunks() -> None:
    data = b"x" * 1_000_000
    wire = b"data: " + data + b"\n\n"
    chunks = [wire[i : i + 65536] for i in range(0, len(wire), 65536)]
    events = parse(*chunks)
    assert len(events) == 1 and events[0].data == data


def test_encode_event_roundtrip() -> None:
    wire = encode_event(b'{"a":1}\n{"b":2}', event="message", event_id="9")
    assert summary(parse(wire)) == [("message", b'{"a":1}\n{"b":2}', "9", None)]


# -- property: chunking never changes the result ---------------------------------------------------

_line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])
_value = st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_field = st.tuples(st.sampled_from([b"data", b"event", b"id", b"retry", b": comment", b"other"]), _value)


@st.composite
def _stream(draw: st.DrawFn) -> bytes:
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 6))):
        for name, value in draw(st.lists(_field, max_size=5)):
            parts.append(name + (b"" if name.startswith(b":") else b": ") + value + draw(_line_end))
        parts.append(draw(_line_end))
    return b"".join(parts)


@settings(max_examples=300, deadline=None)
@given(stream=_stream(), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_chunking_never_changes_the_events(stream: bytes, cuts: list[int]) -> None:
    whole = summary(parse(stream))
    points = sorted({c for c in cuts if c < len(stream)})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert summary(parse(*chunks)) == whole


@settings(max_examples=200, deadline=None)
@given(stream=_stream())
def test_end_offsets_are_event_boundaries(stream: bytes) -> None:
    """The bytes up to an event's end offset hold exactly the events up to and including it."""
    events = SSEParser().feed(stream)
    for index, event in enumerate(events):
        assert summary(parse(stream[: event.end])) == summary(events[: index + 1])
