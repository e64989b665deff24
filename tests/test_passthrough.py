"""Byte-exact passthrough: whatever goes into ``km monitor`` comes out unchanged, and is recorded.

The "server" is ``servers/raw_cat.py``, which copies stdin to stdout unbuffered, so every byte
the client sends crosses km twice (client -> server, then server -> client) and must come
back identical.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from km_helpers import (
    BIG_SERVER,
    PYTHON,
    RAW_CAT,
    KmProcess,
    km_env,
    km_events,
    only_session,
    read_json_line,
)

RunKm = Callable[..., KmProcess]
C2S, S2C = "client_to_server", "server_to_client"


def cat_command() -> list[str]:
    return [PYTHON, RAW_CAT]


def send_through(run_km: RunKm, chunks: Iterable[bytes], pause: float = 0.0) -> bytes:
    """Send ``chunks`` through km + raw_cat, close stdin, return everything km wrote to stdout."""
    km = run_km(cat_command())
    for chunk in chunks:
        km.write(chunk)
        if pause:
            time.sleep(pause)
    code, out, _ = km.finish(60)
    assert code == 0
    return out


def jsonrpc_kind(message: Any) -> str:
    """JSON-RPC 2.0 kind of one decoded message (the spec, written out independently of km)."""
    if not isinstance(message, dict):
        return "invalid"
    if isinstance(message.get("method"), str):
        return "request" if "id" in message else "notification"
    if "id" in message and "error" in message:
        return "error"
    if "id" in message and "result" in message:
        return "response"
    return "invalid"


def expected_events(data: bytes) -> list[tuple[str, Any]]:
    """What the store should hold for one direction of ``data``: (kind, payload) per message.

    An independent oracle: newline framing, JSON arrays are batches, a line that does not parse
    (including blank lines) and a trailing partial line are each one ``invalid`` event whose
    payload is the raw line as text.
    """
    lines = data.split(b"\n")
    tail = lines.pop()
    out: list[tuple[str, Any]] = []
    for line in lines:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            out.append(("invalid", line.decode("utf-8", "backslashreplace")))
            continue
        if isinstance(message, list) and message:
            out.extend((jsonrpc_kind(element), element) for element in message)
        elif isinstance(message, list):
            out.append(("invalid", line.decode()))
        else:
            out.append((jsonrpc_kind(message), message))
    if tail:  # a partial line at the end of the stream is not a framed message, whatever it holds
        out.append(("invalid", tail.decode("utf-8", "backslashreplace")))
    return out


def recorded(events: list[dict[str, Any]], direction: str) -> list[tuple[str, Any]]:
    return [(e["kind"], e["payload"]) for e in events if e["direction"] == direction]


def assert_recorded(home: Path, data: bytes) -> list[dict[str, Any]]:
    """The store holds exactly the messages of ``data``, in each direction, in order."""
    events = km_events(home)
    want = expected_events(data)
    assert recorded(events, C2S) == want
    assert recorded(events, S2C) == want
    session = only_session(home)
    assert session["event_count"] == len(events) == 2 * len(want)
    assert session["dropped_events"] == 0
    assert session["exit_code"] == 0
    return events


# -- fixed edge cases -------------------------------------------------------------------------------

MIXED = (
    b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"t":"\xc3\xa9"}}}\n'
    b"\xff\xfe invalid utf-8 \xc3\x28 here\n"
    b'{"jsonrpc":"2.0","id":2,"method":"ping"}\r\n'
    b"not json at all\r\n"
    b"\n"
    b"\r\n"
    b"\n"
    b'[{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"a://b"}},'
    b'{"jsonrpc":"2.0","method":"notifications/x"}]\n'
    b"[]\n"
    b"   \t \n"
    b'"just a string"\n'
    b"null\n"
    b'{"jsonrpc":"2.0","id":"s-4","result":{"isError":true}}\n'
    b'{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"nope"}}\n'
    b"\x00\x01\x02 binary \x7f\n"
    b'{"jsonrpc":"2.0","id":6,"method":"tools/list"}   \n'
    b'{"partial": tru'
)


def test_mixed_bytes_pass_through_unchanged_and_are_recorded(run_km: RunKm, km_home: Path) -> None:
    out = send_through(run_km, [MIXED])
    assert out == MIXED
    events = assert_recorded(km_home, MIXED)
    c2s = [e for e in events if e["direction"] == C2S]
    kinds = [e["kind"] for e in c2s]
    assert kinds == [
        "request",  # tools/call
        "invalid",  # invalid UTF-8
        "request",  # ping, CRLF
        "invalid",  # not json
        "invalid",  # blank
        "invalid",  # "\r"
        "invalid",  # blank
        "request",  # batch element 1
        "notification",  # batch element 2
        "invalid",  # []
        "invalid",  # whitespace only
        "invalid",  # a JSON string is not a JSON-RPC message
        "invalid",  # null
        "response",
        "error",
        "invalid",  # control bytes
        "request",  # tools/list with trailing spaces
        "invalid",  # the partial last line, recorded at the end
    ]
    assert c2s[0]["tool"] == "echo"
    assert c2s[0]["payload"]["params"]["arguments"]["t"] == "é"
    assert c2s[1]["payload"] == "\\xff\\xfe invalid utf-8 \\xc3( here"
    assert c2s[2]["method"] == "ping" and c2s[2]["jsonrpc_id"] == 2
    assert c2s[3]["payload"] == "not json at all\r"
    assert [c2s[i]["payload"] for i in (4, 5, 6)] == ["", "\r", ""]
    assert c2s[7]["resource_uri"] == "a://b"
    assert c2s[13]["jsonrpc_id"] == "s-4" and c2s[13]["is_error"] is True
    assert c2s[14]["is_error"] is True and c2s[14]["error"] == {"code": -32601, "message": "nope"}
    assert c2s[-1]["payload"] == '{"partial": tru'
    assert c2s[-1]["size_bytes"] == len(b'{"partial": tru')


@pytest.mark.parametrize("chunking", ["bytewise", "random"])
def test_split_writes_pass_through_unchanged(run_km: RunKm, km_home: Path, chunking: str) -> None:
    """Bytes trickling in at any boundary (inside a line, inside a UTF-8 sequence) change nothing."""
    rng = random.Random(1234)
    if chunking == "bytewise":
        chunks = [MIXED[i : i + 1] for i in range(len(MIXED))]
    else:
        chunks, i = [], 0
        while i < len(MIXED):
            n = rng.randint(1, 40)
            chunks.append(MIXED[i : i + n])
            i += n
    out = send_through(run_km, chunks, pause=0.001)
    assert out == MIXED
    assert_recorded(km_home, MIXED)


def test_only_a_partial_line(run_km: RunKm, km_home: Path) -> None:
    data = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'  # valid JSON, but never terminated
    assert send_through(run_km, [data]) == data
    events = km_events(km_home)
    assert [(e["direction"], e["kind"]) for e in events] == [(C2S, "invalid"), (S2C, "invalid")]
    assert all(e["payload"] == data.decode() for e in events)


def test_nothing_in_nothing_out(run_km: RunKm, km_home: Path) -> None:
    assert send_through(run_km, []) == b""
    assert km_events(km_home) == []
    assert only_session(km_home)["exit_code"] == 0


def test_bytes_are_forwarded_before_the_newline(run_km: RunKm, km_home: Path) -> None:
    km = run_km(cat_command())
    first = b'{"jsonrpc":"2.0","id":1,"method":"pi'
    km.write(first)
    # the partial line came back through km twice (to the server and back) with no newline sent
    km.stdout.wait_for(lambda data: data == first, timeout=30)
    km.write(b'ng"}')
    km.stdout.wait_for(lambda data: data == first + b'ng"}', timeout=30)
    km.write(b"\n")
    km.stdout.wait_for(lambda data: data.endswith(b"\n"), timeout=30)
    code, out, _ = km.finish(60)
    assert code == 0
    assert out == first + b'ng"}\n'
    events = km_events(km_home)
    assert [(e["direction"], e["kind"], e["method"]) for e in events] == [
        (C2S, "request", "ping"),
        (S2C, "request", "ping"),
    ]


def test_many_small_messages_all_recorded(run_km: RunKm, km_home: Path) -> None:
    lines = [
        orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": f"t{i % 7}"}})
        + b"\n"
        for i in range(10_000)
    ]
    data = b"".join(lines)
    out = send_through(run_km, [data[i : i + 4096] for i in range(0, len(data), 4096)])
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data).hexdigest()
    events = km_events(km_home, "--kind", "request")
    assert len(events) == 20_000
    c2s = [e for e in events if e["direction"] == C2S]
    assert [e["jsonrpc_id"] for e in c2s] == list(range(10_000))
    assert [e["tool"] for e in c2s] == [f"t{i % 7}" for i in range(10_000)]
    assert only_session(km_home)["event_count"] == 20_000


# -- property tests -----------------------------------------------------------------------------------

FRAGMENTS = [
    b"\n",
    b"\r\n",
    b"\n\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"\xff",
    b"\xc3",
    b"\xa9",
    b"\x00",
    b'{"jsonrpc":"2.0","id":1,"method":"ping"}\n',
    b'{"jsonrpc":"2.0","id":1,"result":{}}\n',
    b'[{"jsonrpc":"2.0","method":"n"}]\n',
    b'{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"m"}}',
]
chunk_strategy = st.one_of(st.binary(max_size=300), st.sampled_from(FRAGMENTS))
stream_strategy = st.lists(chunk_strategy, max_size=40)


@pytest.mark.timeout(600)
@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(chunks=stream_strategy)
def test_random_stream_one_km_each(tmp_path_factory: pytest.TempPathFactory, chunks: list[bytes]) -> None:
    """Each random byte stream through its own km: identical output, and recorded as the oracle says.

    No shrinking: each example costs a km process, and a failing stream is printed as found."""
    home = tmp_path_factory.mktemp("km_home")  # a fresh store per example
    km = KmProcess(home, cat_command())
    try:
        for chunk in chunks:
            km.write(chunk)
        code, out, _ = km.finish(60)
    finally:
        km.cleanup()
    data = b"".join(chunks)
    assert code == 0
    assert out == data
    assert_recorded(home, data)


def test_random_streams_through_one_km(run_km: RunKm, km_home: Path) -> None:
    """Many random byte streams through one long-running km: each comes back as it went in."""
    km = run_km(cat_command())
    sent: list[bytes] = []

    @settings(max_examples=200, deadline=None)
    @given(chunks=stream_strategy)
    def roundtrip(chunks: list[bytes]) -> None:
        before = sum(len(s) for s in sent)
        for chunk in chunks:
            km.write(chunk)
            sent.append(chunk)
        data = b"".join(chunks)
        out = km.stdout.wait_for(lambda got: len(got) >= before + len(data), timeout=30)
        assert out[before:] == data

    roundtrip()
    code, out, _ = km.finish(60)
    assert code == 0
    assert out == b"".join(sent)
    assert_recorded(km_home, out)


# -- a very large message -------------------------------------------------------------------------------

BIG = 64 * 1024 * 1024


def big_message(method: str = "tools/call") -> bytes:
    """A BIG-byte JSON-RPC request line (newline included) calling the tool ``big``."""
    rng = random.Random(42)
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
    head = (
        b'{"jsonrpc":"2.0","id":1,"method":"%s","params":{"name":"big","arguments":{"data":"'
        % method.encode()
    )
    tail = b'"}}}\n'
    body_len = BIG - len(head) - len(tail)
    block = bytes(rng.choice(alphabet) for _ in range(1 << 16))
    body = (block * (body_len // len(block) + 1))[:body_len]
    message = head + body + tail
    assert len(message) == BIG
    return message


class PeakRss:
    """Samples a process's resident set size on a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self._proc = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self._interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def _stored_up_to_the_scan_bound(event: dict[str, Any], path: str) -> None:
    """The analysis scans 2,000,000 characters of a message: the rest (here the whole 64 MB
    token the bound falls in) is not kept unscanned, and the event says so."""
    assert event["truncated"] is True
    [finding] = [f for f in event["risk"]["findings"] if f["rule"] == "redaction.partial"]
    assert finding["path"] == path and "2,000,000" in finding["message"]
    assert "[REDACTED:redaction.partial]" in orjson.dumps(event["payload"]).decode()
    assert len(orjson.dumps(event["payload"])) < 2_100_000


def test_64mb_message_client_to_server(run_km: RunKm, km_home: Path) -> None:
    message = big_message("test/hash")
    digest = hashlib.sha256(message[:-1]).hexdigest()
    km = run_km([PYTHON, BIG_SERVER])
    rss = PeakRss(km.pid)
    for i in range(0, len(message), 1 << 20):
        km.write(message[i : i + (1 << 20)])
    del message
    reply = read_json_line(km.stdout, None, timeout=120)
    code, _, _ = km.finish(120)
    peak = rss.stop()
    assert code == 0
    assert reply["result"] == {"sha256": digest, "size": BIG - 1}  # the server got it byte for byte
    assert peak < 8 * BIG, f"km's peak RSS was {peak / 2**20:.0f} MB for a {BIG / 2**20:.0f} MB message"
    events = km_events(km_home)
    assert [(e["direction"], e["kind"], e["method"], e["size_bytes"]) for e in events] == [
        (C2S, "request", "test/hash", BIG - 1),
        (S2C, "response", "test/hash", len(json.dumps(reply))),
    ]
    _stored_up_to_the_scan_bound(events[0], "/params/arguments/data")
    assert events[1]["request_event_id"] == events[0]["id"]


def test_64mb_message_server_to_client(run_km: RunKm, km_home: Path) -> None:
    km = run_km([PYTHON, BIG_SERVER])
    rss = PeakRss(km.pid)
    request = b'{"jsonrpc":"2.0","id":1,"method":"test/make","params":{"size":%d}}' % BIG
    km.write(request + b"\n")
    made = read_json_line(km.stdout, "test/made", timeout=120)
    code, out, _ = km.finish(120)
    peak = rss.stop()
    assert code == 0
    assert peak < 8 * BIG, f"km's peak RSS was {peak / 2**20:.0f} MB for a {BIG / 2**20:.0f} MB message"
    # what reached the client is exactly what the server wrote: the big line, then the notification
    big_line, made_line, rest = out.split(b"\n")
    assert rest == b""
    assert len(big_line) + 1 == BIG
    assert hashlib.sha256(big_line + b"\n").hexdigest() == made["params"]["sha256"]
    events = km_events(km_home)
    assert [(e["direction"], e["kind"], e["method"], e["size_bytes"]) for e in events] == [
        (C2S, "request", "test/make", len(request)),
        (S2C, "response", "test/make", BIG - 1),
        (S2C, "notification", "test/made", len(made_line)),
    ]
    _stored_up_to_the_scan_bound(events[1], "/result/data")
    assert events[1]["latency_ms"] is not None and events[1]["request_event_id"] == events[0]["id"]


def test_64mb_message_echoed_both_ways(run_km: RunKm, km_home: Path) -> None:
    """The worst case: the same 64 MB line in both directions at once, through raw_cat."""
    message = big_message()
    digest = hashlib.sha256(message).hexdigest()
    # analysis off: nothing is redacted, so the store keeps every byte (with analysis on, text
    # past the scan bound is not kept: the two tests above)
    km = run_km(cat_command(), env=km_env(km_home, KM_ANALYSIS="0"), keep_stdout=False)
    rss = PeakRss(km.pid)
    for i in range(0, len(message), 1 << 20):
        km.write(message[i : i + (1 << 20)])
    del message
    km.stdout.wait_for(lambda _: km.stdout.size >= BIG, timeout=120)
    code, _, _ = km.finish(120)
    peak = rss.stop()
    assert code == 0
    assert km.stdout.size == BIG
    assert km.stdout.sha256.hexdigest() == digest
    # 128 MB crossed km in all; still a bounded multiple of the message size
    assert peak < 8 * BIG, f"km's peak RSS was {peak / 2**20:.0f} MB for a {BIG / 2**20:.0f} MB message"
    events = km_events(km_home)
    assert [(e["direction"], e["kind"], e["tool"], e["size_bytes"]) for e in events] == [
        (C2S, "request", "big", BIG - 1),
        (S2C, "request", "big", BIG - 1),
    ]
    for event in events:  # recorded in full, unchanged
        assert hashlib.sha256(orjson.dumps(event["payload"]) + b"\n").hexdigest() == digest
