"""The response shapes of the HTTP API, as pydantic models so /openapi.json describes every answer
(and the dashboard's TypeScript types are generated from it: web/src/api-types.ts).

They describe what ``Event.to_dict``, ``Session.to_dict``, ``store.rollups.stats``, ``tenancy`` and
``accounts`` produce, key for key; ``extra="forbid"`` puts ``additionalProperties: false`` in the
schema, so the fuzz test (tests/server/test_fuzz.py) fails on a key a model does not declare. The
security view's and the radar's models live with their routes (findings.py, radar.py)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import to_json

Level = Literal["none", "low", "medium", "high", "critical"]
Role = Literal["owner", "admin", "member", "viewer"]
Direction = Literal["client_to_server", "server_to_client"]
Kind = Literal["request", "notification", "response", "error", "invalid"]


NO_NUL = r"^[^\x00]*$"
"""The pattern of every text a request filters by: PostgreSQL takes no NUL in a parameter (and
km stores none: ingest refuses it), so the schema says so and a NUL is a bad parameter (422)."""


def raw_json(body: Any, status_code: int = 200) -> Response:
    """``body`` as JSON, in the bytes FastAPI writes for an untyped answer, without validating it
    against the route's ``response_model``: for the long lists of the hot read routes, where a
    model per row would cost more than the query (the fuzz test checks them against the schema)."""
    return Response(to_json(body), status_code=status_code, media_type="application/json")


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Status(Out):
    status: str
    version: str


class Ready(Out):
    status: Literal["ready"]


# -- events and sessions (kilometers.model) -------------------------------------------------------


class Finding(BaseModel):
    rule: str
    severity: str = Field(description="info, low, medium, high or critical")
    path: str = Field(description='RFC 6901 JSON pointer into the message ("" = the whole message)')
    message: str


class Risk(BaseModel):
    score: int
    level: str = Field(description="none, low, medium, high or critical")
    findings: list[Finding]


class ErrorInfo(Out):
    code: int | None
    message: str | None


class Event(Out):
    id: str
    session_id: str
    ts: str = Field(description="RFC 3339 UTC with microseconds, e.g. 2026-11-27T22:34:35.123456Z")
    direction: Direction
    kind: Kind
    jsonrpc_id: Any
    method: str | None
    tool: str | None
    resource_uri: str | None
    prompt_name: str | None
    latency_ms: float | None
    size_bytes: int
    is_error: bool
    error: ErrorInfo | None
    error_name: str | None = Field(
        description="the name of a JSON-RPC or MCP error code (e.g. unsupported_protocol_version)"
    )
    truncated: bool
    request_event_id: str | None
    call_id: str | None = Field(
        description="linked calls: the id of the request event that opened the call this event belongs to"
    )
    round: int | None = Field(description="a multi-round call's round (on its requests and answers)")
    call_latency_ms: float | None = Field(
        description="on a linked call's final answer: from its first request"
    )
    mcp_headers: dict[str, str] | None = Field(
        default=None,
        description="a Streamable HTTP request's Mcp-Method, Mcp-Name and Mcp-Param-* headers "
        "(lower-case names, decoded values), checked against its body",
    )
    risk: Risk = Field(description="the security analysis (score 0, level none: nothing found)")
    payload: Any = Field(description="the JSON-RPC message (a string when it was truncated)")


class EventDetail(Event):
    paired_event_id: str | None = Field(description="the response of a request, the request of a response")


class EventPage(Out):
    items: list[Event]
    next_cursor: str | None
    searched_to: str | SkipJsonSchema[None] = Field(  # absent, never null
        default=None,
        description="with free text `q`, when older events remain unsearched: how far back it searched",
    )


class SessionRisk(Out):
    events_with_findings: int
    max_score: int
    level: Level


class Session(Out):
    id: str
    name: str | None
    transport: str
    started_at: str
    ended_at: str | None
    duration_ms: float | None
    command: list[str]
    cwd: str | None = Field(description="null when an upload did not say")
    pid: int | None
    exit_code: int | None
    client: dict[str, Any] | None
    server: dict[str, Any] | None
    protocol_version: str | None
    capabilities: dict[str, Any] | None
    client_capabilities: dict[str, Any] | None
    log_level: str | None
    event_count: int
    error_count: int
    dropped_events: int
    risk: SessionRisk


class SessionPage(Out):
    items: list[Session]
    next_cursor: str | None


class BatchError(Out):
    index: int
    id: Any = Field(description="the event's id as sent (null when it had none)")
    message: str


class BatchResult(Out):
    accepted: int
    duplicates: int
    errors: list[BatchError]


# -- statistics (store/rollups.py) ----------------------------------------------------------------


class StatGroup(Out):
    events: int
    calls: int
    errors: int
    error_rate: float
    bytes: int
    response_bytes: int
    est_tokens: int = Field(description="an ESTIMATE of the tokens results put into the context (bytes / 4)")
    latency_avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class StatTotals(StatGroup):
    active_sessions: int = Field(description="sessions running at any time in the range")
    running_sessions: int = Field(description="sessions not ended")
    findings: int = Field(description="events with findings")


class StatsPoint(StatGroup):
    minute: int = Field(description="start of the bucket, in minutes since the Unix epoch")


class MethodStats(StatGroup):
    method: str


class ToolStats(StatGroup):
    server: str
    tool: str


class ServerStats(StatGroup):
    server: str


class Stats(Out):
    since: int
    until: int
    bucket: Literal["minute", "hour", "day"]
    totals: StatTotals
    series: list[StatsPoint]
    by_method: list[MethodStats]
    by_tool: list[ToolStats]
    by_server: list[ServerStats]


# -- organizations, people and keys (tenancy.py, accounts.py) -------------------------------------


class Org(Out):
    id: str
    name: str
    plan: str
    events_per_month: int | None
    retention_days: int | None
    redact_pii: bool


class Usage(Out):
    month: str
    events: int
    limit: int | None
    state: Literal["ok", "near", "over"]
    resets_at: str


class OrgWithUsage(Org):
    usage: Usage = Field(description="events stored this month (UTC) against the plan's limit")


class User(Out):
    id: str
    email: str


class OrgRole(Out):
    id: str
    name: str
    role: Role


class Me(Out):
    mode: Literal["team", "local"]
    user: User
    org: Org
    role: Role
    orgs: list[OrgRole]
    invitations: list[OrgRole] = Field(description="organizations that invited this user, and the role")
    csrf_token: str


class Sso(Out):
    enabled: bool
    name: str | None
    login_url: str | None


class AuthConfig(Out):
    mode: Literal["team", "local"]
    sso: Sso


class ApiKey(Out):
    id: str
    org_id: str
    scope: Literal["ingest", "read", "admin"]
    prefix: str
    name: str | None
    created_ns: int
    revoked: bool
    created_by: str | None = Field(description="the user who created it; null for keys made with km admin")


class ApiKeyList(Out):
    items: list[ApiKey]


class CreatedKey(Out):
    key: str = Field(description="the key itself: this answer is the only place it ever appears")
    item: ApiKey


class Member(Out):
    user_id: str
    email: str
    role: Role
    status: Literal["active", "invited"]


class MemberList(Out):
    items: list[Member]


# -- team pins (teampins.py) ----------------------------------------------------------------------


class Reporter(Out):
    reporter: str = Field(description="user:<id> or key:<id>")
    first_seen: str
    last_seen: str


class ToolDefinition(Out):
    sha256: str
    definition: Any
    reporters: list[Reporter]
    current_for: list[str] = Field(description="the reporters shown this definition last")
    approved: bool


class ServerTool(Out):
    name: str
    drift: bool
    changed_without_version: bool
    approved_sha256: str | None
    definitions: list[ToolDefinition]


class TeamServerBase(Out):
    key: str
    server: str
    identity: dict[str, Any]
    updated_at: str
    approved_at: str | None
    approved_by: str | None


class TeamServer(TeamServerBase):
    tools: int
    drift: list[str] = Field(description="tools whose definitions differ")
    changed_without_version: list[str]


class TeamServerList(Out):
    items: list[TeamServer]


class TeamServerTools(TeamServerBase):
    tools: list[ServerTool]


class SignedPins(Out):
    algorithm: str
    public_key: str
    fingerprint: str
    pin_set: str = Field(description="canonical JSON of the approved definitions; `signature` covers it")
    signature: str
