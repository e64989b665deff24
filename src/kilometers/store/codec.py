"""Rows <-> the shared model. The only place that knows how a model maps onto the schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from .. import jsonlimits
from ..model import Event, Session
from .schema import LOCAL_ORG


def _dump(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _load(text: str | None) -> Any:
    """The value, or None when it nests deeper than the limit (a store written by an older km)."""
    try:
        return None if text is None else jsonlimits.loads(text)
    except jsonlimits.JsonLimitError:
        return None


def event_row(e: Event, org_id: str = LOCAL_ORG) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "id": e.id,
        "session_id": e.session_id,
        "ts_ns": e.ts_ns,
        "direction": e.direction,
        "kind": e.kind,
        "jsonrpc_id": _dump(e.jsonrpc_id),
        "method": e.method,
        "tool": e.tool,
        "resource_uri": e.resource_uri,
        "prompt_name": e.prompt_name,
        "latency_ms": e.latency_ms,
        "size_bytes": e.size_bytes,
        "is_error": e.is_error,
        "error_code": e.error_code,
        "error_message": e.error_message,
        "truncated": e.truncated,
        "request_event_id": e.request_event_id,
        "payload": e.payload,
        **risk_columns(e.risk),
        "call_id": e.call_id,
        "round": e.round,
        "call_latency_ms": e.call_latency_ms,
        "mcp_headers": _dump(e.mcp_headers),
    }


def risk_columns(risk: Mapping[str, Any] | None) -> dict[str, Any]:
    """An event's ``risk`` (``{"score", "level", "findings"}`` or None) as its three columns."""
    if not risk:
        return {"risk_score": None, "risk_level": None, "findings": None}
    return {
        "risk_score": risk["score"],
        "risk_level": risk["level"],
        "findings": orjson.dumps(risk["findings"]).decode(),
    }


def risk_of(r: Mapping[Any, Any]) -> dict[str, Any] | None:
    """The ``risk`` of a row (or of its three columns)."""
    if not r["risk_level"]:
        return None
    return {"score": r["risk_score"], "level": r["risk_level"], "findings": _load(r["findings"]) or []}


def event_from_row(r: Mapping[Any, Any]) -> Event:
    return Event(
        id=r["id"],
        session_id=r["session_id"],
        ts_ns=r["ts_ns"],
        direction=r["direction"],
        kind=r["kind"],
        jsonrpc_id=_load(r["jsonrpc_id"]),
        method=r["method"],
        tool=r["tool"],
        resource_uri=r["resource_uri"],
        prompt_name=r["prompt_name"],
        latency_ms=r["latency_ms"],
        size_bytes=r["size_bytes"],
        is_error=bool(r["is_error"]),
        error_code=r["error_code"],
        error_message=r["error_message"],
        truncated=bool(r["truncated"]),
        request_event_id=r["request_event_id"],
        payload=r["payload"],
        risk=risk_of(r),
        call_id=r["call_id"],
        round=r["round"],
        call_latency_ms=r["call_latency_ms"],
        mcp_headers=_load(r["mcp_headers"]),
    )


def session_row(s: Session, org_id: str = LOCAL_ORG, host: str | None = None) -> dict[str, Any]:
    """``host``: the machine the session ran on, as a team server learns it from the upload."""
    return {
        "org_id": org_id,
        "id": s.id,
        "host": host,
        "name": s.name,
        "transport": s.transport,
        "command": orjson.dumps(s.command).decode(),
        "cwd": s.cwd,
        "pid": s.pid,
        "started_ns": s.started_ns,
        "ended_ns": s.ended_ns,
        "exit_code": s.exit_code,
        "client": _dump(s.client),
        "server": _dump(s.server),
        "protocol_version": s.protocol_version,
        "capabilities": _dump(s.capabilities),
        "client_capabilities": _dump(s.client_capabilities),
        "log_level": s.log_level,
        "event_count": s.event_count,
        "error_count": s.error_count,
        "dropped_events": s.dropped_events,
    }


def session_from_row(r: Mapping[Any, Any]) -> Session:
    return Session(
        id=r["id"],
        name=r["name"],
        transport=r["transport"],
        command=orjson.loads(r["command"]),
        cwd=r["cwd"],
        pid=r["pid"],
        started_ns=r["started_ns"],
        ended_ns=r["ended_ns"],
        exit_code=r["exit_code"],
        client=_load(r["client"]),
        server=_load(r["server"]),
        protocol_version=r["protocol_version"],
        capabilities=_load(r["capabilities"]),
        client_capabilities=_load(r["client_capabilities"]),
        log_level=r["log_level"],
        event_count=r["event_count"],
        error_count=r["error_count"],
        dropped_events=r["dropped_events"],
    )
