"""The response of GET /api/v1/radar: the deprecation radar (store/radar.py) of an
organization, for the dashboard's panel."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Engine

from ..model import format_ts
from ..store.radar import CURRENT_VERSION, radar

DEFAULT_DAYS = 30


class FeatureUse(BaseModel):
    feature: Literal["handshake", "http_sse", "sampling", "roots", "logging", "ping", "client_progress"]
    label: str
    status: Literal["removed", "deprecated"]
    sessions: int
    messages: int


class RadarPeer(BaseModel):
    role: Literal["server", "client"]
    name: str
    versions: list[str]
    aliases: list[str]
    current: bool
    sessions: int
    last_seen: str | None
    features: list[FeatureUse]


class RadarOut(BaseModel):
    current_version: str
    since: str
    peers: list[RadarPeer]


def radar_out(engine: Engine, org_id: str, since_ns: int, server: str | None) -> RadarOut:
    peers = radar(engine, org_id, server=server, since_ns=since_ns)
    return RadarOut(
        current_version=CURRENT_VERSION,
        since=format_ts(since_ns),
        peers=[RadarPeer.model_validate(p.to_dict()) for p in peers],
    )
