"""The security view's response shapes (GET /api/v1/findings and /api/v1/findings/summary), as
pydantic models so /openapi.json describes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ..model import format_ts
from ..store.findings import FindingGroup, FindingRow, FindingSummary

Severity = Literal["info", "low", "medium", "high", "critical"]
Level = Literal["none", "low", "medium", "high", "critical"]


class FindingItem(BaseModel):
    event_id: str
    session_id: str
    ts: str = Field(description="the event's time, RFC 3339 UTC")
    rule: str = Field(description="dotted rule id, e.g. secret.aws_access_key")
    severity: Severity
    path: str = Field(description="RFC 6901 JSON pointer into the event's JSON-RPC message")
    message: str
    index: int = Field(description="position of the finding in the event's risk.findings")
    server: str | None
    tool: str | None
    method: str | None
    kind: str
    direction: str
    event_level: Level = Field(description="the event's risk level")

    @classmethod
    def of(cls, row: FindingRow) -> FindingItem:
        return cls(
            event_id=row.event_id,
            session_id=row.session_id,
            ts=format_ts(row.ts_ns),
            rule=row.rule,
            severity=row.severity,  # type: ignore[arg-type]
            path=row.path,
            message=row.message,
            index=row.index,
            server=row.server,
            tool=row.tool,
            method=row.method,
            kind=row.kind,
            direction=row.direction,
            event_level=row.event_level if row.event_level in LEVEL_NAMES else "none",  # type: ignore[arg-type]
        )


LEVEL_NAMES = ("none", "low", "medium", "high", "critical")


class FindingPage(BaseModel):
    items: list[FindingItem]
    next_cursor: str | None


class SeverityCounts(BaseModel):
    info: int = 0
    low: int = 0
    medium: int = 0
    high: int = 0
    critical: int = 0


class FindingGroupOut(BaseModel):
    key: str = Field(description="the rule id or the server's name")
    count: int
    highest: Severity
    by_severity: SeverityCounts
    sessions: int = Field(description="sessions with findings of this group")
    related: int = Field(description="grouped by rule: servers it was found on; by server: rules found")
    first_seen: str
    last_seen: str

    @classmethod
    def of(cls, g: FindingGroup) -> FindingGroupOut:
        return cls(
            key=g.key,
            count=g.count,
            highest=g.highest,  # type: ignore[arg-type]
            by_severity=SeverityCounts(**g.by_severity),
            sessions=len(g.sessions),
            related=len(g.others),
            first_seen=format_ts(g.first_ns),
            last_seen=format_ts(g.last_ns),
        )


class FindingSummaryOut(BaseModel):
    group: Literal["rule", "server"]
    total: int
    by_severity: SeverityCounts
    items: list[FindingGroupOut]
    truncated: bool = Field(description="more groups than `limit` matched")

    @classmethod
    def of(cls, group: Literal["rule", "server"], s: FindingSummary, limit: int) -> FindingSummaryOut:
        return cls(
            group=group,
            total=s.total,
            by_severity=SeverityCounts(**s.by_severity),
            items=[FindingGroupOut.of(g) for g in s.groups[:limit]],
            truncated=len(s.groups) > limit,
        )
