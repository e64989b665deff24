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

import orjson
from sqlalchemy import Engine, and_, select

from ..model import Event, Session, format_ts
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
    """HTTP Archive 1.2: each request/response pair as an entry (``POST mcp://<server>/<method>``),
    so HAR viewers show MCP calls with their payloads and timings."""
    pending: dict[str, Event] = {}
    names: dict[str, str] = {}
    entries: list[dict[str, Any]] = []
    for rec in records:
        if isinstance(rec, Session):
            names[rec.id] = rec.name or (rec.server or {}).get("name") or "server"
            continue
        if rec.kind == "request":
            pending[rec.id] = rec
            continue
        request = pending.pop(rec.request_event_id or "", None)
        if request is None:
            continue
        wait = rec.latency_ms or 0.0
        target = f"mcp://{names.get(rec.session_id, 'server')}/{request.method}"
        if request.tool or request.prompt_name:
            target += f"/{request.tool or request.prompt_name}"
        entries.append(
            {
                "startedDateTime": format_ts(request.ts_ns),
                "time": wait,
                "request": {
                    "method": "POST",
                    "url": target,
                    "httpVersion": "JSON-RPC/2.0",
                    "cookies": [],
                    "headers": [],
                    "queryString": [],
                    "headersSize": -1,
                    "bodySize": request.size_bytes,
                    "postData": {"mimeType": "application/json", "text": request.payload or ""},
                },
                "response": {
                    "status": 500 if rec.kind == "error" else 200,
                    "statusText": rec.error_message or ("isError" if rec.is_error else "OK"),
                    "httpVersion": "JSON-RPC/2.0",
                    "cookies": [],
                    "headers": [],
                    "redirectURL": "",
                    "headersSize": -1,
                    "bodySize": rec.size_bytes,
                    "content": {
                        "size": rec.size_bytes,
                        "mimeType": "application/json",
                        "text": rec.payload or "",
                    },
                },
                "cache": {},
                "timings": {"send": 0, "wait": wait, "receive": 0},
                "_mcpSession": rec.session_id,
            }
        )
    har = {
        "log": {"version": "1.2", "creator": {"name": "kilometers", "version": "0.1.0"}, "entries": entries}
    }
    out.write(orjson.dumps(har, option=orjson.OPT_INDENT_2))
    return len(entries)


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
