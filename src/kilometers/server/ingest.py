"""Ingestion: validate a batch (same JSON shapes as `km sessions --json` / `km events --json`) and store
it exactly once. One transaction per batch: the session upsert, the new events, the session's
counters, the rollups and the usage counter all commit together or not at all.

The server checks everything it receives: `km monitor` analyses and redacts before it uploads, but
a client with analysis turned off, an older client or a hand-made batch may carry anything. Every
event is analysed here by the same :class:`~kilometers.analysis.Analyzer` the client runs, with
the same rules and scale (secrets, personal data, dangerous calls, tool poisoning; pinning and
policy stay the client's, the team-wide pins are :mod:`.teampins`'), and the server's findings
are added to the client's risk, whose level they can only raise. Secrets are redacted in every
stored text (payload, error message, method, tool, resource URI, prompt name, the session's
command line, client, server and capabilities...), personal data too when the organization asks
for it (``organizations.redact_pii``). ``analysis=False`` (`km serve --no-analysis`) leaves only
that redaction (the secrets backstop); ``redact=False`` (`km serve --no-redact`) trusts the
clients with secrets: stored texts are kept as they were sent, and secrets are not looked for."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, Engine, func, select, text, update

from ..analysis import AnalysisConfig, Analyzer
from ..analysis.config import DEFAULT_CONFIG
from ..analysis.findings import LEVELS, Finding
from ..analysis.redact import PARTIAL_RULE
from ..analysis.redact import redact as redact_secrets
from ..jsonlimits import MAX_DEPTH, too_deep_finding, too_deep_marker, value_too_deep
from ..model import Event, Session, parse_ts
from ..store import bulk, codec, partitions, rollups
from ..store.db import upsert
from ..store.schema import events as events_table
from ..store.schema import org_usage, organizations, sessions
from . import teampins
from .tenancy import Org

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MAX_EVENTS_PER_BATCH = 5000


MAX_NS = 2**63 - 1
INT32 = 2**31 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters (\\u0000) are not allowed here")
    return value


NoNul = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": "^[^\\x00]*$"})]
"""Text stored as-is: PostgreSQL cannot store NUL characters in text columns, so an event with one
is rejected (on every database alike). Text stored as JSON escapes NUL as ``\\u0000``."""


def _check_ts(value: str) -> None:
    try:
        ns = parse_ts(value)
    except (ValueError, OverflowError):
        raise ValueError("expected an RFC 3339 time such as 2026-01-31T12:00:00.000000Z") from None
    if not 0 <= ns <= MAX_NS:
        raise ValueError("time out of range (1970 to 2262)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorIn(_Strict):
    code: int | None = Field(default=None, ge=-INT32 - 1, le=INT32)
    message: NoNul | None = None


class EventIn(_Strict):
    id: str = Field(pattern=UUID_PATTERN)
    session_id: str = Field(pattern=UUID_PATTERN)
    ts: str = Field(json_schema_extra={"format": "date-time"})
    direction: Literal["client_to_server", "server_to_client"]
    kind: Literal["request", "notification", "response", "error", "invalid"]
    jsonrpc_id: str | int | float | None = None
    method: NoNul | None = Field(default=None, max_length=200)
    tool: NoNul | None = Field(default=None, max_length=200)
    resource_uri: NoNul | None = None
    prompt_name: NoNul | None = Field(default=None, max_length=200)
    latency_ms: float | None = Field(default=None, ge=0, le=1e12)
    size_bytes: int = Field(ge=0, le=2**53)
    is_error: bool = False
    error: ErrorIn | None = None
    error_name: NoNul | None = Field(
        default=None, max_length=64, description="Ignored: derived from the error's code."
    )
    truncated: bool = False
    request_event_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    call_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    round: int | None = Field(default=None, ge=1, le=INT32)
    call_latency_ms: float | None = Field(default=None, ge=0, le=1e12)
    mcp_headers: (
        dict[Annotated[str, Field(max_length=200)], Annotated[NoNul, Field(max_length=8192)]] | None
    ) = Field(default=None, max_length=64)
    payload: Any = None
    risk: dict[str, Any] | None = None

    @field_validator("ts")
    @classmethod
    def _ts(cls, value: str) -> str:
        _check_ts(value)
        return value


class SessionIn(_Strict):
    id: str = Field(pattern=UUID_PATTERN)
    name: NoNul | None = Field(default=None, max_length=200)
    transport: NoNul = Field(default="stdio", max_length=32)
    started_at: str = Field(json_schema_extra={"format": "date-time"})
    ended_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    duration_ms: float | None = None
    command: list[str] = Field(default_factory=list)
    cwd: NoNul | None = None
    pid: int | None = Field(default=None, ge=0, le=INT32)
    exit_code: int | None = Field(default=None, ge=-INT32 - 1, le=INT32)
    client: dict[str, Any] | None = None
    server: dict[str, Any] | None = None
    protocol_version: NoNul | None = Field(default=None, max_length=32)
    capabilities: dict[str, Any] | None = None
    client_capabilities: dict[str, Any] | None = None
    log_level: NoNul | None = Field(default=None, max_length=32)
    event_count: int = Field(default=0, ge=0, le=INT32)
    error_count: int = Field(default=0, ge=0, le=INT32)
    dropped_events: int = Field(default=0, ge=0, le=INT32)
    host: NoNul | None = Field(default=None, max_length=255)
    risk: Any = Field(
        default=None,
        json_schema_extra={"readOnly": True},
        description="Ignored: derived from the stored events (`km sessions --json` prints it).",
    )
    """Read-only, like ``duration_ms``, ``event_count`` and ``error_count``: what `km sessions
    --json` prints is accepted as it is, and the server derives these itself."""

    @field_validator("started_at", "ended_at")
    @classmethod
    def _ts(cls, value: str | None) -> str | None:
        if value is not None:
            _check_ts(value)
        return value


class BatchIn(BaseModel):
    """The documented request body (events are validated one by one, see ingest())."""

    model_config = ConfigDict(extra="forbid")
    session: SessionIn
    events: list[EventIn] = Field(max_length=MAX_EVENTS_PER_BATCH)


class BatchError(ValueError):
    """The batch as a whole is unusable (the message says why); nothing was stored."""


class QuotaExceeded(Exception):
    def __init__(self, message: str, refused: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused
        """New events of the batch that were not stored."""


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _dump(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


@dataclass(frozen=True)
class Checks:
    """What the server does with what it receives (see the module docstring)."""

    analysis: bool = True
    """All detector families (`km serve --no-analysis` / ``KM_SERVER_ANALYSIS=0`` turn it off)."""
    redact: bool = True
    """Find and redact secrets (`km serve --no-redact` trusts the clients with them: not checked)."""
    redact_pii: bool = False
    """Redact personal data too (the organization's ``redact_pii`` setting)."""

    def config(self) -> AnalysisConfig:
        """The client's default analysis, without what is the client's alone (its pins, its policy)."""
        return AnalysisConfig(
            secrets=self.redact,
            pinning=False,
            policy=False,
            redact_secrets=self.redact,
            redact_pii=self.redact and self.redact_pii,
        )


def _backstop(value: Any, found: list[Finding], config: AnalysisConfig = DEFAULT_CONFIG) -> Any:
    """``value`` with any secret (and PII, when ``config`` says so) redacted; the findings are
    appended to ``found``."""
    result = redact_secrets(value, config)
    found.extend(result.findings)
    return result.message


def _analysed(analyzer: Analyzer, e: EventIn | None, value: Any, found: list[Finding], redact: bool) -> Any:
    """``value`` (the payload, or with ``e`` None a text field) analysed as the client would, redacted
    when ``redact``; the findings are appended to ``found``."""
    if e is None:  # texts besides the payload: secrets and personal data only
        analysis = analyzer.process("", "text", None, None, value, redact=redact)
    else:
        analysis = analyzer.process(e.direction, e.kind, e.method, e.tool, value, redact=redact)
    found.extend(analysis.risk.findings)
    return value if analysis.redacted is None else analysis.redacted


TextKey = tuple[tuple[str, str], ...]


def _analysed_text(
    analyzer: Analyzer,
    text: dict[str, Any],
    found: list[Finding],
    redact: bool,
    seen: dict[TextKey, Any] | None,
) -> Any:
    """The event's text columns (:data:`EVENT_TEXT`) analysed like :func:`_analysed`. A batch's
    events repeat them (the method, the tool), so the findings of columns that needed no
    redaction are remembered in ``seen`` (one batch's) by their strings: the analysis reads
    nothing else of them (a number, a boolean or None is no string leaf)."""
    key: TextKey | None = None
    if seen is not None and all(v is None or isinstance(v, str | int | float) for v in text.values()):
        key = tuple((k, v) for k, v in text.items() if isinstance(v, str))
        known = seen.get(key)
        if known is not None:
            found.extend(known)
            return text
    before = len(found)
    checked = _analysed(analyzer, None, text, found, redact)
    if checked is text and key is not None and seen is not None:  # nothing redacted
        seen[key] = tuple(found[before:])
    return checked


def _with_findings(risk: dict[str, Any] | None, found: list[Finding]) -> dict[str, Any] | None:
    """The client's (validated) risk plus the server's own findings; a finding the client
    already reported (same rule and path) is not added twice. The client scored its findings on
    its configured scale: the server keeps that score and level, raised only as far as its own
    findings reach on the default scale, so a level is never lowered or decided twice."""
    known = [Finding.from_dict(f) for f in (risk["findings"] if risk else [])]
    seen = {(f.rule, f.path) for f in known}
    new = [f for f in found if (f.rule, f.path) not in seen]
    if not new:
        return risk
    own = DEFAULT_CONFIG.scoring.risk(new)
    merged = DEFAULT_CONFIG.scoring.risk([*known, *new])  # orders the findings
    return {
        "score": max(risk["score"] if risk else 0, own.score),
        "level": max(risk["level"] if risk else "none", own.level, key=LEVELS.index),
        "findings": [f.to_dict() for f in merged.findings],
    }


EVENT_TEXT = ("method", "tool", "resource_uri", "prompt_name", "jsonrpc_id", "mcp_headers")
"""The event's text columns besides the payload and error message (scanned by the backstop too)."""
SESSION_TEXT = (
    "name",
    "cwd",
    "host",
    "client",
    "server",
    "capabilities",
    "protocol_version",
    "client_capabilities",
    "log_level",
)


EVENT_AS_SENT = tuple(
    f.name
    for f in fields(Event)
    if f.name in EventIn.model_fields
    and f.name not in {*EVENT_TEXT, "id", "session_id", "payload", "truncated", "call_id", "risk"}
)
"""The event's fields stored as the upload carries them (``direction``, ``kind``, ``size_bytes``,
``latency_ms``...): a field of :class:`~kilometers.model.Event` that :class:`EventIn` accepts
under the same name needs nothing more here."""


def _event_row(
    org_id: str,
    e: EventIn,
    redact: bool = True,
    found: tuple[Finding, ...] = (),
    analyzer: Analyzer | None = None,
    config: AnalysisConfig = DEFAULT_CONFIG,
    seen_text: dict[TextKey, Any] | None = None,
) -> dict[str, Any]:
    """The event's row (through :func:`kilometers.store.codec.event_row`, the one mapping of an
    event onto the schema); ``found`` are findings of the server's own, added to the client's
    risk. With ``analyzer`` every detector runs (its config says what is redacted), else only
    the secrets backstop (when ``redact``; ``config`` says whether it redacts PII too)."""
    payload, error_message = e.payload, e.error.message if e.error else None
    text = {c: getattr(e, c) for c in EVENT_TEXT}
    truncated = e.truncated
    risk = _client_risk(e.risk)  # checks the client's risk first
    if risk is not None and redact:  # a client's finding may quote what it sent (a tool's name)
        risk["findings"] = redact_secrets(risk["findings"], analyzer.config if analyzer else config).message
    findings = list(found)
    if analyzer is not None:
        if payload is not None:
            payload = _analysed(analyzer, e, payload, findings, redact)
        if error_message:
            error_message = _analysed(analyzer, None, error_message, findings, redact)
        text = _analysed_text(analyzer, text, findings, redact, seen_text)
    elif redact:
        payload = _backstop(payload, findings, config)
        if error_message:
            error_message = _backstop(error_message, findings, config)
        text = _backstop(text, findings, config)
    if redact:
        # text past the scan bound is not kept (the finding says so): the payload is no longer whole
        truncated = truncated or any(f.rule == PARTIAL_RULE for f in findings)
    if findings:
        risk = _with_findings(risk, findings)
    event = Event(
        **{name: getattr(e, name) for name in EVENT_AS_SENT},
        **{name: text[name] for name in EVENT_TEXT},
        id=e.id.lower(),
        session_id=e.session_id.lower(),
        ts_ns=parse_ts(e.ts),
        payload=(
            payload.replace("\x00", "\\u0000")  # a truncated text keeps a NUL the way JSON writes it
            if e.truncated and isinstance(payload, str)
            else _dump(payload)
        ),
        error_code=e.error.code if e.error else None,
        error_message=error_message,
        truncated=truncated,
        call_id=e.call_id.lower() if e.call_id else None,
        risk=risk,
    )
    return codec.event_row(event, org_id)


def _client_risk(risk: dict[str, Any] | None) -> dict[str, Any] | None:
    """The risk a client reported, checked (None when it has no findings)."""
    if not risk or not risk.get("findings"):
        return None
    score = risk.get("score")
    level = risk.get("level")
    if (
        not isinstance(score, int)
        or not 0 <= score <= 100
        or level not in ("none", "low", "medium", "high", "critical")
    ):
        raise ValueError("risk must be {score: 0-100, level: none|low|medium|high|critical, findings: [...]}")
    findings = risk["findings"]
    if not isinstance(findings, list) or not all(isinstance(f, dict) and isinstance(f.get("rule"), str)
                                                 for f in findings):  # fmt: skip
        raise ValueError("risk.findings must be a list of objects with a rule")
    return {"score": score, "level": level, "findings": findings}


def _session_row(
    org_id: str, s: SessionIn, redact: bool = True, config: AnalysisConfig = DEFAULT_CONFIG
) -> dict[str, Any]:
    text = {c: getattr(s, c) for c in SESSION_TEXT}
    command = s.command
    if redact:
        text = _backstop(text, [], config)
        command = [str(_backstop(arg, [], config)) for arg in s.command]
    session = Session(
        id=s.id.lower(),
        command=command,
        cwd=text["cwd"],
        name=text["name"],
        transport=s.transport,
        pid=s.pid,
        started_ns=parse_ts(s.started_at),
        ended_ns=parse_ts(s.ended_at) if s.ended_at else None,
        exit_code=s.exit_code,
        client=text["client"],
        server=text["server"],
        protocol_version=text["protocol_version"],
        capabilities=text["capabilities"],
        client_capabilities=text["client_capabilities"],
        log_level=text["log_level"],
        dropped_events=s.dropped_events,
    )
    return codec.session_row(session, org_id, host=text["host"])


def _month(ts_ns: int) -> int:
    dt = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC)
    return dt.year * 100 + dt.month


ORJSON_DEPTH = 1024
"""The deepest nesting ``orjson.loads`` reads."""
BODY_DEPTH = 2 * MAX_DEPTH
"""Nesting a batch body is cut to when it is deeper than that."""
_PIECE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[^"]{1,4096}|"')
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")
SESSION_JSON = ("client", "server", "capabilities", "client_capabilities")


def decode_body(body: bytes) -> Any:
    """The JSON body of a batch. orjson refuses text nested deeper than 1,024 levels, so in a body
    that deep every array or object below :data:`BODY_DEPTH` is first cut to ``[]``: the field
    holding it is still over :data:`MAX_DEPTH`, and handled as such by :func:`parse_batch`
    (instead of the whole batch being refused). Raises ``orjson.JSONDecodeError``."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        if body.count(b"[") + body.count(b"{") <= ORJSON_DEPTH:  # cannot be too deep for orjson
            raise
    kept: list[bytes] = []
    level = 0
    for piece in _PIECE.findall(body):  # strings whole (their brackets do not count), the rest in chunks
        if piece[0] == 0x22:
            if level <= BODY_DEPTH:
                kept.append(piece)
            continue
        opens = piece.count(b"[") + piece.count(b"{")
        closes = piece.count(b"]") + piece.count(b"}")
        if level + opens <= BODY_DEPTH or level - closes > BODY_DEPTH:  # all kept, or all cut
            if level <= BODY_DEPTH:
                kept.append(piece)
            level += opens - closes
            continue
        start = 0
        for i, byte in enumerate(piece):  # the chunk where the nesting crosses BODY_DEPTH
            if byte in _OPEN:
                level += 1
                if level == BODY_DEPTH + 1:
                    kept.append(piece[start:i])
            elif byte in _CLOSE:
                if level == BODY_DEPTH + 1:
                    kept.append(b"[]")
                    start = i + 1
                level -= 1
        if level <= BODY_DEPTH:
            kept.append(piece[start:])
    return orjson.loads(b"".join(kept))


def _shallow_session(raw: Any) -> Any:
    """The session with any client/server/capabilities over :data:`MAX_DEPTH` dropped (None)."""
    if not isinstance(raw, dict) or not value_too_deep(raw, MAX_DEPTH + 1):
        return raw
    return {k: None if k in SESSION_JSON and value_too_deep(v) else v for k, v in raw.items()}


def parse_batch(
    body: Any, redact: bool = True, checks: Checks | None = None
) -> tuple[SessionIn, list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate the envelope strictly and each event on its own: (session, valid rows, errors).
    ``checks`` (default: all detectors) says what the server checks and redacts; without it,
    ``redact=False`` only turns redaction off. Events are analysed in order, by one analyzer
    per batch (a ``tools/list`` answer informs the analysis of the calls after it).
    A payload nested deeper than :data:`MAX_DEPTH` is stored as the too-deep marker with its
    finding; a risk that deep rejects its event; in the session, such a field is dropped."""
    if not isinstance(body, dict):
        raise BatchError('the body must be a JSON object {"session": {...}, "events": [...]}')
    unknown = set(body) - {"session", "events"}
    if unknown:
        raise BatchError(f"unknown field(s) in the batch: {', '.join(sorted(unknown))}")
    if "session" not in body or "events" not in body:
        raise BatchError('the batch needs both "session" and "events"')
    try:
        session = SessionIn.model_validate(_shallow_session(body["session"]))
    except ValidationError as exc:
        raise BatchError(f"invalid session: {_describe(exc)}") from None
    raw_events = body["events"]
    if not isinstance(raw_events, list):
        raise BatchError('"events" must be a list')
    if len(raw_events) > MAX_EVENTS_PER_BATCH:
        raise BatchError(
            f"too many events in one batch ({len(raw_events)} > {MAX_EVENTS_PER_BATCH}); split it"
        )
    checks = checks or Checks(redact=redact)
    config = checks.config()
    analyzer = Analyzer(config) if checks.analysis else None
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    seen_text: dict[TextKey, Any] = {}
    too_deep_payload = (Finding.from_dict(too_deep_finding()),)
    for index, raw in enumerate(raw_events):
        event_id = raw.get("id") if isinstance(raw, dict) else None
        found: tuple[Finding, ...] = ()
        if isinstance(raw, dict):  # (the other fields' strict types take no nesting at all)
            if value_too_deep(raw.get("risk")):
                message = f"risk: nested deeper than {MAX_DEPTH} levels"
                errors.append({"index": index, "id": event_id, "message": message})
                continue
            if value_too_deep(raw.get("payload")):
                raw, found = {**raw, "payload": None}, too_deep_payload
        try:
            event = EventIn.model_validate(raw)
        except (ValidationError, ValueError) as exc:
            message = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
            errors.append({"index": index, "id": event_id, "message": message})
            continue
        if event.session_id.lower() != session.id.lower():
            errors.append(
                {"index": index, "id": event_id, "message": "session_id differs from the batch's session"}
            )
            continue
        if found:
            event.payload = too_deep_marker(event.size_bytes)
        try:
            row = _event_row("", event, checks.redact, found, analyzer, config, seen_text)
        except ValueError as exc:
            errors.append({"index": index, "id": event_id, "message": str(exc)})
            continue
        if event.id.lower() in seen:
            continue  # the same event twice in one batch is stored once
        seen.add(event.id.lower())
        rows.append(row)
    return session, rows, errors


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    errors: list[dict[str, Any]]
    server: str
    stored: list[dict[str, Any]]
    """The rows actually inserted (for metrics and live delivery)."""

    def response(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "errors": self.errors}


def _insert_events(conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the rows not stored yet; the ids of those inserted.

    On PostgreSQL one array statement (:mod:`kilometers.store.bulk`) inserts the whole batch, in
    the order of the unique key: two batches sharing events (a re-sent batch, the same ids in two
    sessions) then wait for each other in one order, never in a cycle (a deadlock, which
    PostgreSQL ends by failing one of them). The events table is partitioned by time there, so
    its unique key carries ``ts_ns``: a re-sent event (same id, same time) is still stored once.
    SQLite has one writer at a time: the rows go in as they came."""
    if conn.dialect.name == "postgresql":
        ordered = sorted(rows, key=lambda r: (r["id"], r["ts_ns"]))
        result = bulk.insert_new(conn, events_table, ordered, ("org_id", "id", "ts_ns"), "id")
    else:
        stmt = upsert(conn, events_table).on_conflict_do_nothing(index_elements=["org_id", "id"])
        result = conn.execute(stmt.returning(events_table.c.id), rows)
    return {r[0] for r in result}


def _label(name: str | None, server_json: str | None) -> str:
    """The server name rollups and metrics use for a stored session (its name, else its server's)."""
    server = orjson.loads(server_json) if server_json else {}
    return str(name or server.get("name") or "").replace("\x00", "\\u0000")[:200]


def _redacts_pii(engine: Engine, org: Org) -> bool:
    """The organization's ``redact_pii`` as it is now (a setting changed applies to the next batch)."""
    with engine.connect() as conn:
        value = conn.execute(select(organizations.c.redact_pii).where(organizations.c.id == org.id)).scalar()
    return bool(value) if value is not None else org.redact_pii


def ingest(
    engine: Engine,
    org: Org,
    body: Any,
    redact: bool = True,
    *,
    analysis: bool = True,
    reporter: str = "",
) -> IngestResult:
    """Store a batch. ``redact=False`` trusts the client's redaction, ``analysis=False`` the
    client's analysis (see the module docstring). ``reporter`` says who uploaded it (the user or
    key, for the team-wide pins: see :mod:`.teampins`).

    Session metadata is first-write-wins, like events: a later upload of the same session (from
    any key of the organization) only fills fields that are still empty, such as the end time
    and exit code of a session that was running."""
    checks = Checks(analysis, redact, redact and _redacts_pii(engine, org))
    session, rows, errors = parse_batch(body, checks=checks)
    for row in rows:
        row["org_id"] = org.id
    session_row = _session_row(org.id, session, redact, checks.config())
    now = time.time_ns()
    month = _month(now)
    partitions.keeper(engine).ensure((r["ts_ns"] for r in rows), now)
    try:
        return _store(engine, org, session_row, rows, errors, month, reporter)
    except QuotaExceeded as exc:
        # nothing of the batch was stored, but the session is: with its final state when the
        # batch carries it (so it does not read "running" forever) and the refused events
        # counted as not stored (``dropped_events``, at least this many): a partial session
        with engine.begin() as conn:
            refused = session_row["dropped_events"] + exc.refused
            _upsert_session(conn, {**session_row, "dropped_events": refused})
        raise


def _upsert_session(conn: Connection, session_row: dict[str, Any]) -> Any:
    stmt = upsert(conn, sessions).values(session_row)
    ex = stmt.excluded
    first_wins = ("name", "ended_ns", "exit_code", "client", "server", "protocol_version", "capabilities")
    return conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["org_id", "id"],
            set_={
                **{c: func.coalesce(sessions.c[c], ex[c]) for c in first_wins},
                **{c: func.coalesce(ex[c], sessions.c[c]) for c in ("client_capabilities", "log_level")},
                "dropped_events": func.greatest(ex.dropped_events, sessions.c.dropped_events)
                if conn.dialect.name == "postgresql"
                else func.max(ex.dropped_events, sessions.c.dropped_events),
            },
        ).returning(sessions.c.name, sessions.c.server)
    ).one()


def _store(
    engine: Engine,
    org: Org,
    session_row: dict[str, Any],
    rows: list[dict[str, Any]],
    errors: list[dict[str, Any]],
    month: int,
    reporter: str = "",
) -> IngestResult:
    with engine.begin() as conn:
        dialect = conn.dialect.name
        stored = _upsert_session(conn, session_row)
        server = _label(stored.name, stored.server)
        # tool definitions this developer was shown, against the team's (findings on the listing)
        listed = (
            teampins.observe(conn, org.id, session_row, stored.server, rows, reporter) if reporter else {}
        )
        for index, found in listed.items():
            rows[index].update(codec.risk_columns(_with_findings(codec.risk_of(rows[index]), found)))
        inserted = _insert_events(conn, rows) if rows else set()
        new_rows = [r for r in rows if r["id"] in inserted]
        if new_rows:
            # an atomic counter: the upsert holds the month's row lock until commit, so concurrent
            # batches of the organization count one after the other (exact on PostgreSQL too);
            # only new events count (re-sent duplicates never do), and raising rolls it all back
            usage = upsert(conn, org_usage).values(org_id=org.id, month=month, events=len(new_rows))
            used = conn.execute(
                usage.on_conflict_do_update(
                    index_elements=["org_id", "month"],
                    set_={"events": org_usage.c.events + usage.excluded.events},
                ).returning(org_usage.c.events)
            ).scalar_one()
            if org.events_per_month is not None and used > org.events_per_month:
                raise QuotaExceeded(
                    f"organization {org.name!r} reached its limit of {org.events_per_month} events per month "
                    f"(plan {org.plan}; {used - len(new_rows)} stored this month). "
                    "Nothing from this batch was stored.",
                    len(new_rows),
                )
            conn.execute(
                update(sessions)
                .where(sessions.c.org_id == org.id, sessions.c.id == session_row["id"])
                .values(
                    event_count=sessions.c.event_count + len(new_rows),
                    error_count=sessions.c.error_count + sum(1 for r in new_rows if r["is_error"]),
                )
            )
            rollups.upsert_rollups(conn, rollups.rollup_rows(org.id, server, new_rows))
            if dialect == "postgresql":  # wake the live tail of every server process, on commit
                conn.execute(text("SELECT pg_notify('km_events', :org)"), {"org": org.id})
    return IngestResult(len(new_rows), len(rows) - len(new_rows), errors, server, new_rows)
