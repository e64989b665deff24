"""Micro-benchmark of capture alone (framing, decoding, correlation, links, session learning).

    PYTHONPATH=<tree>/src .venv/bin/python bench/bench_capture.py [--pairs 20000] [--rounds 7]

Feeds 1 KB ``tools/call`` requests and their answers (as ``bench/bench_recorder.py``), each
request carrying the 2026-07-28 ``_meta`` (protocol version, client info and capabilities, a
progress token) and each answer the server's ``serverInfo``, to a
:class:`~kilometers.jsonrpc.Capture` in 64 KB chunks, and reports the CPU per message (median
of the rounds). It uses only ``Capture(session)`` and ``feed``, so the same script measures any
version of km: run it with ``PYTHONPATH`` pointing at each, alternating, and compare.
"""

from __future__ import annotations

import argparse
import statistics
import time

import orjson

from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Session

TEXT = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 17)[:700]
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
}
CHUNK = 1 << 16


def _chunks(pairs: int) -> tuple[list[bytes], list[bytes]]:
    requests = b"".join(
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "tools/call",
                "params": {
                    "name": "echo",
                    "arguments": {"text": TEXT},
                    "_meta": {**META, "progressToken": i},
                },
            }
        )
        + b"\n"
        for i in range(pairs)
    )
    answers = b"".join(
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": i,
                "result": {
                    "content": [{"type": "text", "text": TEXT}],
                    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "bench", "version": "1"}},
                },
            }
        )
        + b"\n"
        for i in range(pairs)
    )
    split = [requests[i : i + CHUNK] for i in range(0, len(requests), CHUNK)]
    return split, [answers[i : i + CHUNK] for i in range(0, len(answers), CHUNK)]


def one_round(pairs: int) -> float:
    """CPU seconds per message for one session of ``pairs`` calls (requests first, then answers)."""
    capture = Capture(Session(command=["bench"], cwd="/", name="bench"))
    requests, answers = _chunks(pairs)
    start = time.process_time()
    count = 0
    for chunk in requests:
        count += len(capture.feed(CLIENT_TO_SERVER, chunk, 1))
    for chunk in answers:
        count += len(capture.feed(SERVER_TO_CLIENT, chunk, 2))
    spent = time.process_time() - start
    assert count == 2 * pairs, count
    return spent / count


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    per_message = [one_round(args.pairs) for _ in range(args.rounds)]
    print(
        f"capture CPU per message: median {statistics.median(per_message) * 1e6:.2f} us "
        f"(rounds: {', '.join(f'{v * 1e6:.2f}' for v in per_message)})"
    )


if __name__ == "__main__":
    main()
