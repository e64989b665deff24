"""Downloads of a session or a search from the dashboard: JSON Lines (lossless, what `km import`
reads) or HAR 1.2 (HAR viewers), written by the same code as `km export` (:mod:`..export.files`)
and streamed to the browser."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Literal

import orjson
from sqlalchemy import Engine

from ..export import files
from ..model import Session
from ..store.queries import EventFilter

Format = Literal["jsonl", "har"]
MAX_HAR_EVENTS = 200_000
"""A HAR file is one JSON document, built whole before it is sent: larger exports are refused
(JSON Lines streams any size)."""
CHUNK = 64 * 1024
MEDIA_TYPES: dict[str, str] = {"jsonl": "application/x-ndjson", "har": "application/json"}


class TooLarge(ValueError):
    pass


def jsonl(engine: Engine, flt: EventFilter) -> Iterator[bytes]:
    """One line per session (before its events) and per event, as `km export --format jsonl`."""
    lines: list[bytes] = []
    size = 0
    for rec in files.iter_records(engine, flt):
        kind = "session" if isinstance(rec, Session) else "event"
        line = orjson.dumps({"record": kind, **rec.to_dict()}) + b"\n"
        lines.append(line)
        size += len(line)
        if size >= CHUNK:
            yield b"".join(lines)
            lines, size = [], 0
    if lines:
        yield b"".join(lines)


def har(engine: Engine, flt: EventFilter) -> Iterator[bytes]:
    """The HAR document of `km export --format har`, spooled to disk past a few MB, in chunks."""
    total = files.count_events(engine, flt)
    if total > MAX_HAR_EVENTS:
        raise TooLarge(
            f"{total:,} events are too many for one HAR file (at most {MAX_HAR_EVENTS:,}): "
            "narrow the search, or download JSON Lines"
        )
    return _har_chunks(engine, flt)


def _har_chunks(engine: Engine, flt: EventFilter) -> Iterator[bytes]:
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        files.write_har(files.iter_records(engine, flt), spool)
        spool.seek(0)
        while block := spool.read(CHUNK):
            yield block


def filename(fmt: Format, session_id: str | None, stamp: str) -> str:
    """``km-session-<id start>.jsonl`` or ``km-search-<UTC time>.har``."""
    what = f"session-{session_id[:8]}" if session_id else f"search-{stamp}"
    return f"km-{''.join(c for c in what if c.isalnum() or c == '-')}.{fmt}"
