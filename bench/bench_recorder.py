"""In-process micro-benchmark of the recorder: CPU per message for decode + analysis + store.

    PYTHONPATH=src .venv/bin/python bench/bench_recorder.py [--pairs 20000] [--rounds 5]
        [--store-batches 2,20,100,1000] [--alone 2000]
    valgrind --tool=callgrind .venv/bin/python bench/bench_recorder.py --synchronous 1200  # and 200

Feeds 1 KB ``tools/call`` requests and their answers (the same messages as
``bench/bench_stdio.py``) to a :class:`~kilometers.recorder.Recorder` with the security stage and
a store sink on a temporary SQLite file, in chunks of 64 KB as km's forwarding threads read them,
and reports the recorder thread's CPU per message (median of the rounds). It uses only the
Recorder's public constructor and ``submit``/``stop``, so the same script measures any version of
km: run it with ``PYTHONPATH`` pointing at each and compare the medians side by side.

``--alone N``: also N calls whose every message is a batch of its own, through the engine and
the store on one thread: what a message costs when calls are spaced out (an agent's calls are
seconds apart), each batch paying its own analysis set-up and its own transaction.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from kilometers.engine import Engine
from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Session
from kilometers.recorder import Recorder
from kilometers.security import Policy, SecurityStage
from kilometers.store.writer import StoreSink

REQUEST_HEAD = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'
TEXT = (b"Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 17)[:923]
ANSWER_HEAD = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"'
CHUNK = 1 << 16


def _request(ident: int) -> bytes:
    return REQUEST_HEAD % ident + TEXT + b'"}}}\n'


def _answer(ident: int) -> bytes:
    return ANSWER_HEAD % ident + TEXT + b'"}]}}\n'


def _chunks(pairs: int) -> tuple[list[bytes], list[bytes]]:
    requests = b"".join(_request(100_000 + i) for i in range(pairs))
    answers = b"".join(_answer(100_000 + i) for i in range(pairs))
    split = [requests[i : i + CHUNK] for i in range(0, len(requests), CHUNK)]
    return split, [answers[i : i + CHUNK] for i in range(0, len(answers), CHUNK)]


def one_round(pairs: int, tmp: Path, number: int) -> float:
    """Recorder-thread CPU seconds per message for one session of ``pairs`` calls."""
    url = f"sqlite:///{tmp / f'km{number}.db'}"
    session = Session(command=["bench"], cwd="/", name="bench")
    requests, answers = _chunks(pairs)
    recorder = Recorder(
        Capture(session), [StoreSink(url)], batch_window=0, stage=SecurityStage(Policy(), url)
    )
    cpu: list[float] = []
    original = recorder._run

    def timed() -> None:
        start = time.thread_time()
        try:
            original()
        finally:
            cpu.append(time.thread_time() - start)

    recorder._thread = threading.Thread(target=timed, name="km-recorder", daemon=True)
    recorder.start()
    ts = time.time_ns()
    for request, answer in itertools.zip_longest(requests, answers, fillvalue=b""):
        recorder.submit(CLIENT_TO_SERVER, request, ts)
        recorder.submit(SERVER_TO_CLIENT, answer, ts + 1000)
        ts += 2000
    recorder.stop(0)
    assert session.event_count == 2 * pairs, session.event_count
    return cpu[0] / (2 * pairs)


def synchronous(pairs: int, tmp: Path) -> None:
    """``pairs`` calls through capture, the security stage and the store on this thread (no
    recorder thread, no timing): for counting instructions, e.g. with
    ``valgrind --tool=callgrind``: run it for two sizes and divide the difference."""
    url = f"sqlite:///{tmp / 'sync.db'}"
    session = Session(command=["bench"], cwd="/", name="bench")
    requests, answers = _chunks(pairs)
    sink = StoreSink(url)
    engine = Engine(session, stage=SecurityStage(Policy(), url))
    sink.on_session_start(session)
    ts = 1_700_000_000_000_000_000
    for request, answer in itertools.zip_longest(requests, answers, fillvalue=b""):
        for direction, chunk in ((CLIENT_TO_SERVER, request), (SERVER_TO_CLIENT, answer)):
            if chunk:
                sink.on_events(session, engine.feed(direction, chunk, ts).events)
                ts += 1000
    sink.on_session_end(session)
    sink.close()
    assert session.event_count == 2 * pairs, session.event_count


def alone(pairs: int, tmp: Path, number: int) -> float:
    """CPU seconds per message when every message is a batch of its own (capture, the security
    stage and a transaction of the store sink each), after 50 calls of warm-up."""
    url = f"sqlite:///{tmp / f'alone{number}.db'}"
    session = Session(command=["bench"], cwd="/", name="bench")
    sink = StoreSink(url)
    engine = Engine(session, stage=SecurityStage(Policy(), url))
    sink.on_session_start(session)
    messages = [
        message
        for i in range(100_000, 100_000 + pairs + 50)
        for message in ((CLIENT_TO_SERVER, _request(i)), (SERVER_TO_CLIENT, _answer(i)))
    ]
    ts = time.time_ns()
    start = 0.0
    for n, (direction, message) in enumerate(messages):
        if n == 100:
            start = time.thread_time()
        batch = engine.feed(direction, message, ts + n * 1000)
        sink.on_events(session, batch.events)
        batch.release()
    cpu = time.thread_time() - start
    sink.on_session_end(session)
    sink.close()
    return cpu / (2 * pairs)


def store_cost(pairs: int, tmp: Path, number: int, batch: int) -> float:
    """CPU seconds per message of the store sink alone, writing batches of ``batch`` messages
    (captured beforehand): the recorder's batch holds a few messages when calls are spaced out,
    thousands under load, so the store's fixed cost per transaction shows here."""
    session = Session(command=["bench"], cwd="/", name="bench")
    capture = Capture(session)
    events = []
    ts = time.time_ns()
    for i in range(pairs):
        events += capture.feed(CLIENT_TO_SERVER, _request(i), ts)
        events += capture.feed(SERVER_TO_CLIENT, _answer(i), ts + 1000)
        ts += 2000
    sink = StoreSink(f"sqlite:///{tmp / f'store{number}.db'}")
    sink.on_session_start(session)
    start = time.thread_time()
    for i in range(0, len(events), batch):
        sink.on_events(session, events[i : i + batch])
    cpu = time.thread_time() - start
    sink.on_session_end(session)
    sink.close()
    return cpu / len(events)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--store-batches",
        default="",
        help="also the store sink alone, CPU per message for these batch sizes (e.g. 2,20,100,1000)",
    )
    parser.add_argument(
        "--alone",
        type=int,
        default=0,
        metavar="PAIRS",
        help="also PAIRS calls whose every message is a batch of its own (spaced-out calls)",
    )
    parser.add_argument(
        "--synchronous",
        type=int,
        metavar="PAIRS",
        help="only run PAIRS calls on one thread, untimed (for callgrind; see synchronous())",
    )
    args = parser.parse_args()
    import kilometers

    if args.synchronous is not None:
        with tempfile.TemporaryDirectory(prefix="km-bench-rec-") as tmp:
            synchronous(args.synchronous, Path(tmp))
        return 0

    with tempfile.TemporaryDirectory(prefix="km-bench-rec-") as tmp:
        one_round(1000, Path(tmp), -1)  # warm up (imports, store creation)
        per_message = [one_round(args.pairs, Path(tmp), n) for n in range(args.rounds)]
    us = sorted(p * 1e6 for p in per_message)
    print(f"km from {Path(kilometers.__file__).parent}")
    print(f"recorder CPU per message ({args.rounds} rounds of {2 * args.pairs} messages): "
          f"median {statistics.median(us):.1f} µs, min {us[0]:.1f}, max {us[-1]:.1f}")  # fmt: skip
    if args.alone:
        with tempfile.TemporaryDirectory(prefix="km-bench-alone-") as tmp:
            runs = sorted(alone(args.alone, Path(tmp), n) * 1e6 for n in range(args.rounds))
        print(f"each message a batch of its own ({args.rounds} rounds of {2 * args.alone} messages): "
              f"median {statistics.median(runs):.1f} µs per message, min {runs[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="km-bench-store-") as tmp:
        for batch in (int(b) for b in args.store_batches.split(",") if b):
            runs = [store_cost(3000, Path(tmp), batch * 10 + n, batch) for n in range(args.rounds)]
            print(f"store sink alone, batches of {batch} messages: "
                  f"median {statistics.median(runs) * 1e6:.1f} µs per message")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
