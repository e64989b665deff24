"""Exporting recorded traffic to files (JSON Lines, CSV, HAR) and reading JSON Lines back.

JSON Lines is the lossless format: one object per line, ``{"record": "session", ...session}``
before the events of that session, then ``{"record": "event", ...event}`` — the same fields
as ``km sessions --json`` / ``km events --json``. ``km import`` reads it back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import IO, Any
from urllib.parse import quote

import orjson
from sqlalchemy import Engine, and_, select

from .. import jsonlimits
from ..model import SERVER_TO_CLIENT, Event, Session, format_ts
from ..store.codec import event_from_row, session_from_row
from ..store.queries import EventFilter
from ..store.schema import events, sessions

CSV_FIELDS = [
    "id",
    "session_id",
    "ts",
    "direction",
    "kind",
    "jsonrpc_id",
    "method",
    "tool",
    "resource_uri",
    "prompt_name",
    "latency_ms",
    "size_bytes",
    "is_error",
    "error_code",
    "error_message",
    "truncated",
    "request_event_id",
    "payload",
]


class ImportError_(ValueError):
    """A line of an import file is not a session or event record (the message gives the line)."""


def count_events(engine: Engine, flt: EventFilter) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(events).where(and_(*flt.clauses()))).scalar() or 0
        )


def iter_records(engine: Engine, flt: EventFilter, chunk: int = 2000) -> Iterator[Session | Event]:
    """Sessions and their events in time order, streamed from the store in chunks."""
    seen: set[str] = set()
    last_seq = 0
    while True:
        query = (
            select(events)
            .where(and_(events.c.seq > last_seq, *flt.clauses()))
            .order_by(events.c.seq)
            .limit(chunk)
        )
        with engine.connect() as conn:
            rows: list[Any] = [r._mapping for r in conn.execute(query)]
            new_ids = {r["session_id"] for r in rows} - seen
            found = {}
            if new_ids:
                for r in conn.execute(
                    select(sessions).where(sessions.c.org_id == flt.org_id, sessions.c.id.in_(new_ids))
                ):
                    found[r._mapping["id"]] = session_from_row(r._mapping)
        if not rows:
            return
        for r in rows:
            sid = r["session_id"]
            if sid not in seen:
                seen.add(sid)
                if sid in found:
                    yield found[sid]
            yield event_from_row(r)
        last_seq = int(rows[-1]["seq"])


def write_jsonl(records: Iterable[Session | Event], out: IO[bytes]) -> int:
    n = 0
    for rec in records:
        kind = "session" if isinstance(rec, Session) else "event"
        out.write(orjson.dumps({"record": kind, **rec.to_dict()}) + b"\n")
        n += kind == "event"
    return n


def write_csv(records: Iterable[Session | Event], out: IO[bytes]) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    n = 0
    for rec in records:
        if isinstance(rec, Session):
            continue
        row = rec.to_dict()
        error = row.pop("error") or {}
        row["error_code"], row["error_message"] = error.get("code"), error.get("message")
        row["payload"] = orjson.dumps(row["payload"]).decode()
        row["jsonrpc_id"] = "" if row["jsonrpc_id"] is None else orjson.dumps(row["jsonrpc_id"]).decode()
        writer.writerow({k: ("true" if v else "false") if isinstance(v, bool) else v for k, v in row.items()})
        n += 1
    text.detach()
    return n


def write_har(records: Iterable[Session | Event], out: IO[bytes]) -> int:
    """HTTP Archive 1.2: each request as an entry (``POST mcp://<server>/<method>[/<target>]``),
    sorted by start time, so HAR viewers show MCP calls with their payloads and timings. Requests
    the server sends the client are under ``mcp://<server>/to-client/``; cancelled requests and
    those unanswered when the export ends have status 0 and no content."""
    pending: dict[str, Event] = {}
    ids: dict[tuple[str, str, bytes], str] = {}
    names: dict[str, str] = {}
    entries: list[tuple[int, dict[str, Any]]] = []

    def add(request: Event, answer: Event | None, end_ns: int, outcome: str | None = None) -> None:
        pending.pop(request.id, None)
        ids.pop((request.session_id, request.direction, orjson.dumps(request.jsonrpc_id)), None)
        entries.append((request.ts_ns, _har_entry(names.get(request.session_id, "server"), request, answer,
                                                  end_ns, outcome)))  # fmt: skip

    for rec in records:
        if isinstance(rec, Session):
            names[rec.id] = rec.name or (rec.server or {}).get("name") or "server"
        elif rec.kind == "request":
            pending[rec.id] = rec
            ids[(rec.session_id, rec.direction, orjson.dumps(rec.jsonrpc_id))] = rec.id
        elif rec.kind in ("response", "error") and rec.request_event_id in pending:
            add(pending[rec.request_event_id], rec, rec.ts_ns)
        elif rec.method == "notifications/cancelled":
            params = _payload_member(rec, "params")
            if isinstance(params, dict) and "requestId" in params:
                key = (rec.session_id, rec.direction, orjson.dumps(params["requestId"]))
                if ids.get(key) in pending:
                    add(pending[ids[key]], None, rec.ts_ns, "cancelled")
    for request in list(pending.values()):
        add(request, None, request.ts_ns, "unanswered")
    entries.sort(key=lambda item: item[0])
    har = {
        "log": {
            "version": "1.2",
            "creator": {"name": "kilometers", "version": "0.1.0"},
            "entries": [entry for _, entry in entries],
        }
    }
    out.write(orjson.dumps(har, option=orjson.OPT_INDENT_2))
    return len(entries)


def _payload_member(event: Event, key: str) -> Any:
    if event.payload is None or event.truncated:
        return None
    try:
        message = jsonlimits.loads(event.payload)
    except ValueError:
        return None
    return message.get(key) if isinstance(message, dict) else None


def _har_entry(
    server: str, request: Event, answer: Event | None, end_ns: int, outcome: str | None
) -> dict[str, Any]:
    target = f"mcp://{server}/" + ("to-client/" if request.direction == SERVER_TO_CLIENT else "")
    target += str(request.method)
    if request.tool or request.prompt_name:
        target += f"/{quote(request.tool or request.prompt_name or '', safe='')}"
    if request.resource_uri:  # one URL per resource
        target += f"?uri={quote(request.resource_uri, safe='')}"
    wait = round((end_ns - request.ts_ns) / 1e6, 3)
    if answer is None:
        status, text = 0, outcome or ""
    else:
        status = 500 if answer.kind == "error" else 200
        text = answer.error_message or ("isError" if answer.is_error else "OK")
    size = answer.size_bytes if answer is not None else 0
    entry: dict[str, Any] = {
        "startedDateTime": format_ts(request.ts_ns),
        "time": wait,
        "request": {
            "method": "POST",
            "url": target,
            "httpVersion": "JSON-RPC/2.0",
            "cookies": [],
            "headers": [],
            "queryString": [{"name": "uri", "value": request.resource_uri}] if request.resource_uri else [],
            "headersSize": -1,
            "bodySize": request.size_bytes,
            "postData": {"mimeType": "application/json", "text": request.payload or ""},
        },
        "response": {
            "status": status,
            "statusText": text,
            "httpVersion": "JSON-RPC/2.0",
            "cookies": [],
            "headers": [],
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": size,
            "content": {
                "size": size,
                "mimeType": "application/json",
                "text": (answer.payload or "") if answer is not None else "",
            },
        },
        "cache": {},
        "timings": {"send": 0, "wait": wait, "receive": 0},
        "_mcpSession": request.session_id,
        "_direction": request.direction,
    }
    if outcome is not None:
        entry["_error"] = outcome
    return entry


WRITERS = {"jsonl": write_jsonl, "csv": write_csv, "har": write_har}


def read_jsonl(lines: Iterable[bytes]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("session" | "event", object) for each line of a JSON Lines export."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ImportError_(f"line {number}: not JSON ({exc})") from None
        if not isinstance(obj, dict) or obj.get("record") not in ("session", "event"):
            raise ImportError_(f'line {number}: expected a km export record with "record": session|event')
        kind = obj.pop("record")
        yield kind, obj
