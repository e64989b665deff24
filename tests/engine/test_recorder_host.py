"""The recorder as the engine's threaded host: sinks get the decoded (and redacted) messages
with the batch, and nothing keeps them once the batch has been through the sinks."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from kilometers.engine import Engine
from kilometers.jsonrpc import Capture
from kilometers.model import CLIENT_TO_SERVER as C2S
from kilometers.model import SERVER_TO_CLIENT as S2C
from kilometers.model import Event, Session
from kilometers.recorder import Recorder
from kilometers.security import Policy, SecurityStage
from kilometers.sinks import Sink

SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


class Keeper(Sink):
    """Keeps every event it is given, and what its decoded message said at that moment."""

    name = "keeper"

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.seen: list[object] = []
        self.updates = 0

    def on_session_update(self, session: Session) -> None:
        self.updates += 1

    def on_events(self, session: Session, events: Sequence[Event]) -> None:
        for e in events:
            decoded = e.decoded()
            self.seen.append(decoded.value if decoded is not None else None)
        self.events.extend(events)


def _line(obj: object) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _traffic(recorder: Recorder) -> None:
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"clientInfo": {"name": "c"}}}
    recorder.submit(C2S, _line(init), 1)
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "t", "arguments": {"k": SECRET}},
    }
    recorder.submit(C2S, _line(call)[:20], 2)
    recorder.submit(C2S, _line(call)[20:], 3)
    recorder.submit_message(S2C, orjson.dumps({"jsonrpc": "2.0", "id": 1, "result": {}}), 4)
    recorder.submit_omitted(S2C, 11 << 20, 5)


def test_sinks_see_decoded_redacted_messages_and_none_is_kept_after_the_batch() -> None:
    session = Session(command=["s"], cwd="/")
    keeper = Keeper()
    recorder = Recorder(Capture(session), [keeper], batch_window=0, stage=SecurityStage(Policy()))
    recorder.start()
    _traffic(recorder)
    recorder.stop(0, timeout=30)
    assert [e.kind for e in keeper.events] == ["request", "request", "response", "invalid"]
    assert keeper.seen[1]["params"]["arguments"]["k"] == "[REDACTED:secret.github_token]"  # type: ignore[index]
    assert keeper.seen[2] == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert all(e.message is None for e in keeper.events)  # dropped once the sinks had the batch
    assert SECRET not in repr(keeper.seen) and keeper.updates >= 1
    assert session.event_count == 4 and session.exit_code == 0 and session.ended_ns is not None


def test_a_recorder_can_host_an_engine_built_elsewhere() -> None:
    session = Session(command=["s"], cwd="/")
    engine = Engine(session, payload_limit=30)
    keeper = Keeper()
    recorder = Recorder.for_engine(engine, [keeper], batch_window=0)
    assert recorder.engine is engine and recorder.capture is engine.capture and recorder.payload_limit == 30
    recorder.start()
    _traffic(recorder)
    recorder.stop(3, timeout=30)
    assert len(keeper.events) == 4 and all(e.truncated for e in keeper.events[1:2])
    assert session.exit_code == 3
