"""The one schema (SQLAlchemy Core), shared by the local SQLite store and the team server.

Times are integer nanoseconds since the Unix epoch (UTC): portable, exact and index-friendly.
JSON documents are stored as text so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

# BIGINT autoincrement works on PostgreSQL; SQLite needs INTEGER for a rowid alias.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
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
    Column("event_count", Integer, nullable=False, server_default="0"),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("dropped_events", Integer, nullable=False, server_default="0"),
    Index("ix_sessions_started", "started_ns"),
)

events = Table(
    "events",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
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
    Index("ix_events_session_ts", "session_id", "ts_ns"),
    Index("ix_events_ts", "ts_ns"),
    Index("ix_events_method", "method"),
    Index("ix_events_tool", "tool"),
)
