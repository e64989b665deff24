"""Replay a recorded session's client→server messages against a server and diff the responses:
a regression test for MCP servers.

The client's requests and notifications are sent as recorded (same ids, same bytes); requests
the server makes of the client (sampling, elicitation, roots) are answered from the recording
(the n-th request of a method gets the answer the client gave to the n-th one then). Each
response is compared with the recorded one as JSON, ignoring paths the user marks volatile.
"""

from __future__ import annotations

import contextlib
import fnmatch
import queue
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .jsonlimits import MAX_DEPTH, JsonLimitError, loads_message, too_deep_marker, value_too_deep
from .jsonlimits import loads as limited_loads
from .model import CLIENT_TO_SERVER, Event


class ReplayError(RuntimeError):
    """The server could not be started or stopped answering (the message says which)."""


@dataclass
class Change:
    path: str
    recorded: Any
    replayed: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "recorded": self.recorded, "replayed": self.replayed}


@dataclass
class Outcome:
    method: str
    target: str | None
    jsonrpc_id: Any
    changes: list[Change] = field(default_factory=list)
    missing: bool = False
    """No response within the timeout (the recording had one)."""

    @property
    def same(self) -> bool:
        return not self.changes and not self.missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target,
            "jsonrpc_id": self.jsonrpc_id,
            "same": self.same,
            "missing": self.missing,
            "changes": [c.to_dict() for c in self.changes],
        }


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def diff(recorded: Any, replayed: Any, ignore: Sequence[str] = (), path: str = "") -> list[Change]:
    """Structural differences as JSON pointers; ``ignore`` holds glob patterns over pointers
    (``/result/content/*/text``, ``*/timestamp``)."""
    if any(fnmatch.fnmatchcase(path, pattern) for pattern in ignore):
        return []
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        out: list[Change] = []
        for key in sorted(set(recorded) | set(replayed)):
            sub = f"{path}/{_escape(str(key))}"
            if key not in replayed:
                if not any(fnmatch.fnmatchcase(sub, p) for p in ignore):
                    out.append(Change(sub, recorded[key], None))
            elif key not in recorded:
                if not any(fnmatch.fnmatchcase(sub, p) for p in ignore):
                    out.append(Change(sub, None, replayed[key]))
            else:
                out.extend(diff(recorded[key], replayed[key], ignore, sub))
        return out
    if isinstance(recorded, list) and isinstance(replayed, list) and len(recorded) == len(replayed):
        out = []
        for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            out.extend(diff(a, b, ignore, f"{path}/{i}"))
        return out
    if recorded == replayed and type(recorded) is type(replayed):
        return []
    return [Change(path or "/", recorded, replayed)]


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return limited_loads(text)
    except JsonLimitError:  # stored by an older km: compared as km keeps it now
        return too_deep_marker(len(text.encode()))
    except orjson.JSONDecodeError:
        return text


def _omitted(message: Any, size: int) -> dict[str, Any]:
    """A message nested too deep, as km records it: the marker, with its plain envelope fields
    (so that it still pairs, and compares equal to a recorded one of the same size)."""
    envelope = message if isinstance(message, dict) else {}
    kept = {
        k: v
        for k, v in envelope.items()
        if k in ("jsonrpc", "id", "method") and not isinstance(v, (dict, list))
    }
    return {**kept, **too_deep_marker(size)}


class _Server:
    def __init__(self, command: Sequence[str]) -> None:
        try:
            self.proc = subprocess.Popen(
                list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
            )
        except OSError as exc:
            raise ReplayError(f"cannot start {command[0]!r}: {exc}") from None
        self.messages: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                message, deep = loads_message(line)
            except orjson.JSONDecodeError:
                continue
            for item in message if isinstance(message, list) else [message]:
                if deep and value_too_deep(item):
                    item = _omitted(item, len(line.rstrip(b"\n")))
                self.messages.put(item)
        self.messages.put(None)

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError:
            raise ReplayError("the server closed its input (did it exit?)") from None

    def close(self, grace: float = 2.0) -> None:
        if self.proc.stdin:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def replay(
    events: Sequence[Event],
    command: Sequence[str],
    ignore: Sequence[str] = (),
    speed: float = 0.0,
    timeout: float = 30.0,
) -> Iterator[Outcome]:
    """Replay, yielding one outcome per recorded client request (in order)."""
    by_id = {e.id: e for e in events}
    answers: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.direction == CLIENT_TO_SERVER and e.kind in ("response", "error") and e.request_event_id:
            asked = by_id.get(e.request_event_id)
            if asked is not None and asked.method:
                answers[asked.method].append(e)
    recorded_reply = {
        e.request_event_id: e for e in events if e.request_event_id and e.direction != CLIENT_TO_SERVER
    }
    asked_count: dict[str, int] = defaultdict(int)
    for e in events:
        if e.direction == CLIENT_TO_SERVER and e.payload_omitted:
            raise ReplayError(
                f"the client's {e.kind} {e.method or ''} #{e.jsonrpc_id} was nested deeper than "
                f"{MAX_DEPTH} levels and not stored: this session cannot be replayed exactly"
            )
    server = _Server(command)
    previous_ts: int | None = None
    try:
        for e in events:
            if (
                e.direction != CLIENT_TO_SERVER
                or e.kind not in ("request", "notification")
                or e.payload is None
            ):
                continue
            if speed > 0 and previous_ts is not None:
                time.sleep(max(0.0, (e.ts_ns - previous_ts) / 1e9 / speed))
            previous_ts = e.ts_ns
            server.send(e.payload.encode() + b"\n")
            if e.kind == "notification":
                continue
            outcome = Outcome(e.method or "", e.tool or e.prompt_name or e.resource_uri, e.jsonrpc_id)
            expected = recorded_reply.get(e.id)
            reply = _await_reply(server, e.jsonrpc_id, answers, asked_count, timeout)
            if reply is None:
                outcome.missing = expected is not None
            elif expected is not None:
                outcome.changes = diff(_strip(_load(expected.payload)), _strip(reply), ignore)
            yield outcome
    finally:
        server.close()


def _strip(message: Any) -> Any:
    """Compare results and errors, not the envelope."""
    if isinstance(message, dict):
        return {k: v for k, v in message.items() if k not in ("jsonrpc", "id")}
    return message


def _await_reply(
    server: _Server, jsonrpc_id: Any, answers: dict[str, list[Event]], asked: dict[str, int], timeout: float
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            message = server.messages.get(timeout=remaining)
        except queue.Empty:
            return None
        if message is None:
            raise ReplayError("the server exited before answering")
        if not isinstance(message, dict):
            continue
        method = message.get("method")
        if isinstance(method, str) and "id" in message:  # the server asks the client something
            recorded = answers.get(method, [])
            n = asked[method]
            asked[method] += 1
            if n < len(recorded):
                body = _load(recorded[n].payload)
                reply = {k: v for k, v in body.items() if k != "id"} if isinstance(body, dict) else {}
                reply["id"] = message["id"]
            else:
                error = {"code": -32601, "message": f"km replay: no recorded answer for {method}"}
                reply = {"jsonrpc": "2.0", "id": message["id"], "error": error}
            server.send(orjson.dumps(reply) + b"\n")
            continue
        if (
            "method" not in message
            and message.get("id") == jsonrpc_id
            and type(message.get("id")) is type(jsonrpc_id)
        ):
            return message
