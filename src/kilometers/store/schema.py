"""The one schema (SQLAlchemy Core), shared by the local SQLite store and the team server.

Times are integer nanoseconds since the Unix epoch (UTC): portable, exact and index-friendly.
JSON documents are stored as text so SQLite and PostgreSQL behave the same. Every tenant
table carries ``org_id``; the local store uses the organization ``local``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

LOCAL_ORG = "local"

metadata = MetaData()

# BIGINT autoincrement works on PostgreSQL; SQLite needs INTEGER for a rowid alias.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("plan", String(32), nullable=False, server_default="free"),
    Column("events_per_month", BigInteger),
    Column("retention_days", Integer),
    Column("created_ns", BigInteger, nullable=False),
    Column("redact_pii", Boolean, nullable=False, server_default=false()),
)
"""``redact_pii``: the team server redacts personal data (not only secrets) in what the
organization uploads (its owners and admins set it: ``PATCH /api/v1/org/security``)."""

projects = Table(
    "projects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    UniqueConstraint("org_id", "name", name="uq_projects_org_name"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), nullable=False),
    Column("project_id", String(36)),
    Column("name", String(200)),
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("scope", String(16), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("revoked_ns", BigInteger),
    Column("last_used_ns", BigInteger),
    Column("created_by", String(36)),
    Index("ix_api_keys_org", "org_id"),
)
"""``created_by`` is the id of the user whose rights the key carries: who created it in the browser,
or the creator of the key that created it (members may revoke their own keys; a key never has
more than that user's current role allows). NULL for the operator's keys (`km admin`)."""

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", Text),
    Column("created_ns", BigInteger, nullable=False),
    Column("managed_by", String(36)),
)
"""``managed_by``: the organization whose admin created the user in Settings (and so chose their
password); such a user joins other organizations only through the operator (`km admin
create-user`). NULL for users made with `km admin` (the operator's)."""

memberships = Table(
    "memberships",
    metadata,
    Column("org_id", String(36), nullable=False),
    Column("user_id", String(36), nullable=False),
    Column("role", String(16), nullable=False),
    PrimaryKeyConstraint("org_id", "user_id", name="pk_memberships"),
)

invitations = Table(
    "invitations",
    metadata,
    Column("org_id", String(36), nullable=False),
    Column("user_id", String(36), nullable=False),
    Column("role", String(16), nullable=False),
    Column("invited_by", String(200), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    PrimaryKeyConstraint("org_id", "user_id", name="pk_invitations"),
    Index("ix_invitations_user", "user_id"),
)
"""Memberships offered in Settings and not yet accepted: the user becomes a member when they
accept after signing in with their own credentials (a user the organization created: at their
first sign-in)."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("org_id", String(36), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("detail", Text),
    Index("ix_audit_org_ts", "org_id", "ts_ns"),
)

org_usage = Table(
    "org_usage",
    metadata,
    Column("org_id", String(36), nullable=False),
    Column("month", Integer, nullable=False),
    Column("events", BigInteger, nullable=False),
    PrimaryKeyConstraint("org_id", "month", name="pk_org_usage"),
)


def _rollup_counts() -> list[Column[Any]]:
    """The counts every rollup table keeps per key and latency bin."""
    return [
        Column("events", BigInteger, nullable=False),
        Column("requests", BigInteger, nullable=False),
        Column("errors", BigInteger, nullable=False),
        Column("bytes", BigInteger, nullable=False),
        Column("latency_sum", Float, nullable=False),
    ]


def _rollup_table(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("org_id", String(36), nullable=False),
        Column("minute", BigInteger, nullable=False),
        Column("server", String(200), nullable=False),
        Column("method", String(200), nullable=False),
        Column("tool", String(200), nullable=False),
        Column("bin", Integer, nullable=False),
        *_rollup_counts(),
        PrimaryKeyConstraint("org_id", "minute", "server", "method", "tool", "bin", name=f"pk_{name}"),
    )


rollups = _rollup_table("rollups")
"""Per-minute counts per org/server/method/tool, kept up to date on ingest so statistics never scan
events. ``bin`` is a log-scale latency bin (see server/rollups.py); -1 holds events without latency."""
rollups_hour = _rollup_table("rollups_hour")
"""The same counts per hour; ``minute`` is the hour's first minute (since the epoch, UTC)."""
rollups_day = _rollup_table("rollups_day")
"""The same counts per UTC day; ``minute`` is the day's first minute. Long windows read these."""
rollups_org_hour = Table(
    "rollups_org_hour",
    metadata,
    Column("org_id", String(36), nullable=False),
    Column("minute", BigInteger, nullable=False),
    Column("bin", Integer, nullable=False),
    *_rollup_counts(),
    PrimaryKeyConstraint("org_id", "minute", "bin", name="pk_rollups_org_hour"),
    sqlite_with_rowid=False,
)
"""The hour counts of the whole org (all servers, methods and tools together), per latency bin:
the series of a statistics window in hour buckets reads these (a week is ~7,400 rows, not the
~25,000 of ``rollups_hour`` at 10M events). Without rowid on SQLite: the rows are stored in key
order, and a window is one contiguous read."""

sessions = Table(
    "sessions",
    metadata,
    Column("org_id", String(36), nullable=False, server_default=LOCAL_ORG),
    Column("id", String(36), nullable=False),
    Column("name", String(200)),
    Column("transport", String(32), nullable=False, server_default="stdio"),
    Column("command", Text, nullable=False, server_default="[]"),
    Column("cwd", Text),
    Column("pid", Integer),
    Column("host", String(255)),
    Column("started_ns", BigInteger, nullable=False),
    Column("ended_ns", BigInteger),
    Column("exit_code", Integer),
    Column("client", Text),
    Column("server", Text),
    Column("protocol_version", String(32)),
    Column("capabilities", Text),
    Column("client_capabilities", Text),
    Column("log_level", String(32)),
    Column("event_count", Integer, nullable=False, server_default="0"),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("dropped_events", Integer, nullable=False, server_default="0"),
    PrimaryKeyConstraint("org_id", "id", name="pk_sessions"),
    Index("ix_sessions_org_started", "org_id", "started_ns"),
)

RADAR_METHODS = (
    "initialize",
    "logging/setLevel",
    "notifications/message",
    "notifications/progress",
    "notifications/roots/list_changed",
    "ping",
    "roots/list",
    "sampling/createMessage",
)
"""The methods :mod:`kilometers.store.radar` counts, in this order in the index's predicate (a
query must name them so, as literals, for either database to use the partial index)."""
RADAR_WHERE = "method IN (" + ", ".join(f"'{m}'" for m in RADAR_METHODS) + ")"

events = Table(
    "events",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("org_id", String(36), nullable=False, server_default=LOCAL_ORG),
    Column("id", String(36), nullable=False),
    Column("session_id", String(36), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("direction", String(20), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("jsonrpc_id", Text),
    Column("method", String(200)),
    Column("tool", String(200)),
    Column("resource_uri", Text),
    Column("prompt_name", String(200)),
    Column("latency_ms", Float),
    Column("size_bytes", BigInteger, nullable=False),
    Column("is_error", Boolean, nullable=False, server_default=false()),
    Column("error_code", Integer),
    Column("error_message", Text),
    Column("truncated", Boolean, nullable=False, server_default=false()),
    Column("request_event_id", String(36)),
    Column("payload", Text),
    Column("risk_score", Integer),
    Column("risk_level", String(10)),
    Column("findings", Text),
    Column("call_id", String(36)),
    Column("round", Integer),
    Column("call_latency_ms", Float),
    Column("mcp_headers", Text),
    UniqueConstraint("org_id", "id", name="uq_events_org_id"),
    Index("ix_events_org_session_ts", "org_id", "session_id", "ts_ns"),
    Index("ix_events_org_ts", "org_id", "ts_ns"),
    Index("ix_events_method", "method"),
    # Search by tool: the newest rows of one tool, read in order (revision 0012; it replaced
    # ``ix_events_tool``, dropped in 0015)
    Index("ix_events_org_tool_ts", "org_id", "tool", "ts_ns"),
    # only events with a risk (findings read ``risk_score >= 0``): an event without one, most of
    # them, is not written to it (revision 0015)
    Index(
        "ix_events_org_risk",
        "org_id",
        "risk_score",
        sqlite_where=text("risk_score IS NOT NULL"),
        postgresql_where=text("risk_score IS NOT NULL"),
    ),
    # only events with findings: the Overview's findings count reads this index alone (with
    # risk_score in it, SQLite need not visit the rows; revision 0012)
    Index(
        "ix_events_org_risky_ts",
        "org_id",
        "ts_ns",
        "risk_score",
        sqlite_where=text("risk_score >= 1"),
        postgresql_where=text("risk_score >= 1"),
    ),
    # only the messages the protocol radar counts (initialize, ping, sampling, roots, logging,
    # client progress): it reads these per session from the index alone (revision 0014)
    Index(
        "ix_events_org_radar",
        "org_id",
        "method",
        "session_id",
        "direction",
        "kind",
        sqlite_where=text(RADAR_WHERE),
        postgresql_where=text(RADAR_WHERE),
    ),
    # only linked events: a call's rounds, progress, cancellation, task and subscription traffic
    Index(
        "ix_events_org_call",
        "org_id",
        "call_id",
        sqlite_where=text("call_id IS NOT NULL"),
        postgresql_where=text("call_id IS NOT NULL"),
    ),
)
"""``call_id``, ``round`` and ``call_latency_ms``: the links of one logical call (see
``model.Event``); NULL on events linked to nothing (revision 0010). ``mcp_headers``: a Streamable
HTTP request's ``Mcp-*`` headers as JSON (revision 0011)."""

sync_state = Table(
    "sync_state",
    metadata,
    Column("target", String(500), nullable=False),
    Column("key", String(100), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("target", "key", name="pk_sync_state"),
)
"""Local store only: the uploader's progress per team-server URL."""

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("org_id", String(36), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_ns", BigInteger, nullable=False),
    Column("expires_ns", BigInteger, nullable=False),
    Index("ix_web_sessions_user", "user_id"),
)
"""Browser sign-ins on the team server (cookie value = random token; only its hash is stored)."""

pins = Table(
    "pins",
    metadata,
    Column("org_id", String(36), nullable=False, server_default=LOCAL_ORG),
    Column("server_key", String(64), nullable=False),
    Column("server", String(200), nullable=False),
    Column("info", Text),
    Column("data", Text, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    PrimaryKeyConstraint("org_id", "server_key", name="pk_pins"),
)
"""Pinned tool definitions per server (trust on first use; see analysis/pinning.py), keyed by
what the server is (``server_key``: the SHA-256 of its identity, see ``security.server_identity``),
not by what it is called. ``server`` is the name it was last run under; ``info`` (JSON) holds
its identity, every name and client seen with it. A row from before revision 0006 has no
``info`` (its identity is unknown): the next session under its name takes it over."""

team_servers = Table(
    "team_servers",
    metadata,
    Column("org_id", String(36), nullable=False),
    Column("server_key", String(64), nullable=False),
    Column("server", String(200), nullable=False),
    Column("identity", Text, nullable=False),
    Column("updated_ns", BigInteger, nullable=False),
    Column("approved", Text),
    Column("approved_by", String(200)),
    Column("approved_ns", BigInteger),
    PrimaryKeyConstraint("org_id", "server_key", name="pk_team_servers"),
)
"""Team server only: the MCP servers the organization's developers ran, per identity
(``identity``, JSON: the command line or URL as uploaded, with the ``serverInfo`` name and
version; ``server_key`` is the SHA-256 of its canonical JSON; see server/teampins.py).
``approved`` (JSON ``{tool: definition}``) is the definition set an owner or admin approved:
what `km pins sync` hands to developers, signed."""

team_tools = Table(
    "team_tools",
    metadata,
    Column("org_id", String(36), nullable=False),
    Column("server_key", String(64), nullable=False),
    Column("tool", String(200), nullable=False),
    Column("reporter", String(320), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("definition", Text, nullable=False),
    Column("first_ns", BigInteger, nullable=False),
    Column("last_ns", BigInteger, nullable=False),
    Column("event_id", String(36)),
    PrimaryKeyConstraint("org_id", "server_key", "tool", "reporter", "sha256", name="pk_team_tools"),
)
"""Team server only: each tool definition (its pinned part, ``definition`` JSON, ``sha256`` as in
analysis/pinning.py) that one developer's km (``reporter``: the uploading user or key, and the
machine) was shown by one server identity, first and last seen (event time)."""

pin_signing_keys = Table(
    "pin_signing_keys",
    metadata,
    Column("org_id", String(36), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_key", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
)
"""Team server only: the Ed25519 key pair that signs an organization's approved pin set (made on
first use; the private key as unencrypted PKCS#8 PEM, the public key as raw bytes in base64)."""

rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated", Float, nullable=False),
)
"""Team server only: one token bucket per API key or signed-in user (``key``: the caller's
``rate_key``), shared by every `km serve` process: ``tokens`` left at ``updated`` (seconds since
the epoch, by the database's clock on PostgreSQL)."""
