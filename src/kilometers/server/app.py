"""The team server (and `km ui`): an ASGI app (FastAPI) over the shared store, SQLite or PostgreSQL.

Every route is scoped to the organization of the caller (API key, signed-in member, or the
local user of `km ui`); ids from another organization are simply not found (404), and counts
never include other organizations.
"""

import hmac
import logging
import re
import threading
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from .. import __version__
from ..export.prometheus import CONTENT_TYPE, ServerMetrics
from ..model import format_ts, parse_ts
from ..store import db, partitions, queries, rollups
from ..store import findings as store_findings
from . import downloads, models, oidc, radar, teamsecurity, tenancy, web
from . import ingest as ingest_mod
from .auth import Auth, AuthSettings, Caller
from .errors import AUTHENTICATED, ApiError, error_response, error_responses
from .findings import FindingItem, FindingPage, FindingSummaryOut, Severity
from .live import LiveHub
from .oidc import OidcSettings
from .retention import apply_retention

_log = logging.getLogger(__name__)


@dataclass
class ServerSettings:
    db_url: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    rate_per_second: float = 50.0
    rate_burst: float = 100.0
    auth_cache_seconds: float = 1.0
    local_token: str | None = None
    """`km ui`: serve the local store to the holder of this token only (loopback, Host-checked)."""
    allowed_hosts: set[str] | None = None
    """`km ui`: the only Host (and Origin) values answered, e.g. {"127.0.0.1:8765", "localhost:8765"}."""
    live_poll_seconds: float = 0.2
    metrics_token: str | None = None
    metrics_public: bool = False
    retention_interval_seconds: float = 3600.0
    """How often expired data is dropped (0 disables; `km admin prune` does it on demand)."""
    oidc: OidcSettings | None = None
    """OpenID Connect sign-in (`km serve --oidc-*`); None: e-mail and password only."""
    redact_secrets: bool = True
    """Redact secrets left in uploaded events (the ingest backstop); `km serve --no-redact`."""
    analysis: bool = True
    """Run every detector on uploaded events (see server/ingest.py); `km serve --no-analysis`."""


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(
        413, "body_too_large", f"the request body exceeds {limit} bytes; send smaller batches"
    )
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
            if len(body) > limit or inflater.unconsumed_tail:
                raise too_large
            if not inflater.eof:
                raise ApiError(400, "bad_gzip", "the gzip body is truncated")
        except zlib.error as exc:
            raise ApiError(400, "bad_gzip", f"the body is not valid gzip: {exc}") from None
    elif encoding not in ("identity", ""):
        raise ApiError(
            415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip"
        )
    return body


Time = Annotated[
    str | None,
    Query(
        max_length=64,
        json_schema_extra={"format": "date-time"},
        description="RFC 3339 date-time; a time before 1970 or after 2262 means that end of the range",
    ),
]
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:([0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
MAX_NS = 2**63 - 1


def _ns(value: str | None) -> int | None:
    """An RFC 3339 date-time (what the schema declares, nothing else) in ns, clamped to the range
    the databases store: a bound before 1970 or after 2262 selects the same rows as that end."""
    if value is None:
        return None
    found = _RFC3339.fullmatch(value)
    try:
        if found is None:
            raise ValueError(value)
        leap = found[1] == "60"  # a leap second: the next second, as POSIX time has none
        text = value.upper().replace(":60", ":59", 1) if leap else value.upper()
        ns = parse_ts(text[:19] + (found[2] or "")[:7] + found[3].upper()) + leap * 10**9
    except ValueError:
        raise ApiError(
            422,
            "invalid_parameter",
            f"expected an RFC 3339 date-time such as 2026-01-31T12:00:00Z, got {value!r}",
        ) from None
    return min(max(ns, 0), MAX_NS)


def _event_filter(
    caller: Caller,
    session_id: str | None,
    method: str | None,
    tool: str | None,
    kind: str | None,
    errors: bool,
    since: str | None,
    until: str | None,
    q: str | None,
    min_level: str | None,
) -> queries.EventFilter:
    """The events of the caller's organization that the filters of /api/v1/events select."""
    return queries.EventFilter(
        org_id=caller.org.id,
        session_id=session_id.lower() if session_id else None,
        method=method,
        tool=tool,
        kinds=[kind] if kind else [],
        errors_only=errors,
        since_ns=_ns(since),
        until_ns=_ns(until),
        text=q,
        min_level=min_level,
    )


def _retention_loop(engine: Engine, settings: ServerSettings, stop: threading.Event) -> None:
    while not stop.wait(settings.retention_interval_seconds):
        try:
            apply_retention(engine)
        except Exception as exc:  # the database may be restarting; try again next round
            _log.error(f"km serve: retention pass failed: {exc}")


Cursor = Annotated[
    str | None,
    Query(pattern=queries.CURSOR_PATTERN, description="next_cursor of the previous page"),
]


def allowed_methods(app: FastAPI, request: Request) -> str | None:
    """The methods of the resource at this path: of every route with the path template of the
    first route it matches (Starlette's 405 names only that one route's methods)."""
    scope = {**request.scope, "type": "http"}
    routes = [r for r in app.router.routes if isinstance(r, Route) and r.methods]
    path = next((r.path for r in routes if r.matches(scope)[0] != Match.NONE), None)
    methods = {m for r in routes if r.path == path for m in r.methods or ()}
    return ", ".join(sorted(methods)) or None


MinLevel = Annotated[
    Literal["low", "medium", "high", "critical"] | None,
    Query(description="only what has a risk level at least this high"),
]


def _findings_routes(app: FastAPI, engine: Engine, auth: Auth) -> None:
    """GET /api/v1/findings and /api/v1/findings/summary: the security view's read API."""
    read = Annotated[Caller, Depends(auth.require("read"))]

    def finding_filter(
        caller: Caller,
        severity: list[Severity] | None,
        min_severity: Severity | None,
        rule: str | None,
        server: str | None,
        session_id: str | None,
        tool: str | None,
        since: str | None,
        until: str | None,
    ) -> store_findings.FindingFilter:
        return store_findings.FindingFilter(
            org_id=caller.org.id,
            session_id=session_id.lower() if session_id else None,
            session_ids=(
                queries.server_sessions(engine, server, caller.org.id) if server is not None else None
            ),
            tool=tool,
            rule=rule,
            severities=list(severity or []),
            min_severity=min_severity,
            since_ns=_ns(since),
            until_ns=_ns(until),
        )

    SeverityList = Annotated[
        list[Severity] | None, Query(description="only these severities (repeat the parameter)")
    ]
    Rule = Annotated[
        str | None,
        Query(
            max_length=200, pattern=models.NO_NUL, description="a rule id, or a family ending in * (secret.*)"
        ),
    ]
    Server = Annotated[
        str | None,
        Query(max_length=200, pattern=models.NO_NUL, description="the server's name (or a glob: file*)"),
    ]
    SessionId = Annotated[str | None, Query(max_length=36, pattern=models.NO_NUL)]
    Tool = Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)]

    @app.get("/api/v1/findings", tags=["read"], responses=error_responses(400, *AUTHENTICATED))
    def list_findings(
        caller: read,
        severity: SeverityList = None,
        min_severity: Severity | None = None,
        rule: Rule = None,
        server: Server = None,
        session_id: SessionId = None,
        tool: Tool = None,
        since: Time = None,
        until: Time = None,
        sort: Annotated[
            Literal["newest", "oldest", "severity"],
            Query(description="severity: the highest first, then the newest"),
        ] = "newest",
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[
            str | None,
            Query(pattern=store_findings.CURSOR_PATTERN, description="next_cursor of the previous page"),
        ] = None,
    ) -> FindingPage:
        """Every finding of the organization's events (one item per finding, with its event,
        session, server, tool and JSON path), filtered, sorted and cursor-paginated."""
        flt = finding_filter(caller, severity, min_severity, rule, server, session_id, tool, since, until)
        try:
            rows, next_cursor = store_findings.page_findings(engine, flt, limit, cursor, sort)
        except queries.BadCursor as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        return FindingPage(items=[FindingItem.of(r) for r in rows], next_cursor=next_cursor)

    @app.get("/api/v1/findings/summary", tags=["read"], responses=error_responses(*AUTHENTICATED))
    def findings_summary(
        caller: read,
        group: Literal["rule", "server"] = "rule",
        severity: SeverityList = None,
        min_severity: Severity | None = None,
        rule: Rule = None,
        server: Server = None,
        session_id: SessionId = None,
        tool: Tool = None,
        since: Time = None,
        until: Time = None,
        limit: Annotated[int, Query(ge=1, le=500, description="groups returned at most")] = 100,
    ) -> FindingSummaryOut:
        """Findings grouped by rule or by server: counts by severity, the highest severity,
        sessions, first and last seen; the groups with the highest severity first."""
        flt = finding_filter(caller, severity, min_severity, rule, server, session_id, tool, since, until)
        summary = store_findings.summarize_findings(engine, flt, group)
        return FindingSummaryOut.of(group, summary, limit)


def _reporter(caller: Caller) -> str:
    """Who uploads, for the team-wide pins: the user whose rights the key carries, else the key."""
    return f"user:{caller.user_id}" if caller.user_id else f"key:{caller.rate_key}"


def create_app(
    db_url: str | None = None, settings: ServerSettings | None = None, check_schema: bool = True
) -> FastAPI:
    settings = settings or ServerSettings(db_url=db_url)
    if db_url is not None:
        settings.db_url = db_url
    engine = db.make_engine(settings.db_url)
    if check_schema:
        db.ensure_current(engine)
    auth = Auth(
        engine,
        AuthSettings(
            settings.rate_per_second, settings.rate_burst, settings.auth_cache_seconds, settings.local_token
        ),
    )
    hub = LiveHub(engine, settings.live_poll_seconds)
    hub.on_auth_change(auth.forget_keys)  # PostgreSQL: keys revoked by any process apply at once
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        hub.listen()
        if settings.local_token is None:
            try:  # PostgreSQL: this month's partition of events and the next ones
                partitions.create_ahead(engine, time.time_ns())
            except Exception as exc:  # the retention pass and ingestion create them too
                _log.warning(f"km serve: cannot create the partitions ahead: {exc}")
        if settings.retention_interval_seconds > 0 and settings.local_token is None:
            threading.Thread(target=_retention_loop, args=(engine, settings, stop), daemon=True).start()
        yield
        stop.set()
        hub.stop()
        engine.dispose()

    app = FastAPI(
        title="Kilometers team server",
        version=__version__,
        description="Ingestion and query API for MCP traffic recorded by km.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.auth = auth
    app.state.hub = hub

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]]
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and (page := app.state.not_found_page(request)) is not None:
            return page  # type: ignore[no-any-return]
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        allow = allowed_methods(app, request) if exc.status_code == 405 else None
        if allow:
            headers["Allow"] = allow
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _db_down(_r: Request, exc: Exception) -> JSONResponse:
        return error_response(
            503, "database_unavailable", "the database is unavailable; retry shortly", {"Retry-After": "2"}
        )

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)  # SQLite's driver, for an integer PostgreSQL calls a DataError
    async def _db_data(_r: Request, exc: Exception) -> JSONResponse:
        return error_response(422, "invalid_value", "a value is out of range for the database")

    read = Annotated[Caller, Depends(auth.require("read"))]
    ingest_caller = Annotated[Caller, Depends(auth.require("ingest"))]

    @app.get("/health", tags=["ops"])
    def health() -> models.Status:
        """The process is up."""
        return models.Status(status="ok", version=__version__)

    @app.get("/ready", tags=["ops"], response_model=models.Ready, responses=error_responses(503))
    def ready() -> Response:
        """The database is reachable and its schema is current."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            db.ensure_current(engine)
        except db.SchemaOutOfDate as exc:
            return error_response(503, "schema_out_of_date", str(exc))
        except Exception:
            return error_response(503, "database_unavailable", "the database is unreachable")
        return JSONResponse({"status": "ready"})

    @app.post(
        "/api/v1/events/batch",
        tags=["ingest"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BatchIn"}}},
            }
        },
        responses=error_responses(400, 402, 413, 415, *AUTHENTICATED),
    )
    async def ingest_batch(request: Request, caller: ingest_caller) -> models.BatchResult:
        """Store a batch of events of one session. Idempotent on event id; per-event errors are reported."""
        metrics.in_progress.inc()
        started = time.perf_counter()
        status = "error"
        try:
            body = await _read_body(request, settings.max_body_bytes)
            try:
                data = await run_in_threadpool(ingest_mod.decode_body, body)
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
            try:
                result = await run_in_threadpool(
                    ingest_mod.ingest,
                    engine,
                    caller.org,
                    data,
                    settings.redact_secrets,
                    analysis=settings.analysis,
                    reporter=_reporter(caller),
                )
            except ingest_mod.BatchError as exc:
                raise ApiError(400, "invalid_batch", str(exc)) from None
            except ingest_mod.QuotaExceeded as exc:
                status = "quota"
                raise ApiError(402, "quota_exceeded", exc.message) from None
            status = "ok"
            if result.accepted:
                hub.notify()
            metrics.events.labels("accepted").inc(result.accepted)
            metrics.events.labels("duplicate").inc(result.duplicates)
            metrics.events.labels("rejected").inc(len(result.errors))
            metrics.tools.observe_rows(result.server, result.stored)
            return models.BatchResult.model_validate(result.response())
        finally:
            metrics.in_progress.dec()
            metrics.batches.labels(status).inc()
            metrics.latency.observe(time.perf_counter() - started)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse, responses=error_responses(401, 404))
    def prometheus(request: Request) -> Response:
        """Prometheus metrics. Tool names of every organization appear here, so this needs the
        operator token (`km serve --metrics-token`, Bearer) unless --metrics-public is given."""
        token = settings.metrics_token
        if token is None and not settings.metrics_public:
            raise ApiError(
                404, "not_found", "metrics are off: start km serve with --metrics-token or --metrics-public"
            )
        if token is not None:
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent, f"Bearer {token}"):
                raise ApiError(401, "invalid_metrics_token", "send Authorization: Bearer <metrics token>")
        metrics.live.set(hub.subscriber_count())
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get(
        "/api/v1/sessions",
        tags=["read"],
        response_model=models.SessionPage,
        responses=error_responses(400, *AUTHENTICATED),
    )
    def list_sessions(
        caller: read,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Cursor = None,
        min_level: MinLevel = None,
    ) -> Response:
        """Sessions, newest first (with `min_level`: those with an event at that risk level or above)."""
        try:
            items, next_cursor = queries.page_sessions(engine, caller.org.id, limit, cursor, min_level)
        except queries.BadCursor as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        risk = queries.session_risk(engine, [s.id for s in items], caller.org.id)
        return models.raw_json(
            {"items": [{**s.to_dict(), "risk": risk[s.id]} for s in items], "next_cursor": next_cursor}
        )

    @app.get(
        "/api/v1/sessions/{session_id}",
        tags=["read"],
        response_model=models.Session,
        responses=error_responses(404, *AUTHENTICATED),
    )
    def get_session(caller: read, session_id: Annotated[str, Path(pattern=models.NO_NUL)]) -> Response:
        try:
            found = queries.get_session(engine, session_id.lower(), caller.org.id)
            return models.raw_json(
                {**found.to_dict(), "risk": queries.session_risk(engine, [found.id], caller.org.id)[found.id]}
            )
        except queries.NotFound:
            raise ApiError(404, "not_found", f"no session {session_id!r}") from None

    @app.get(
        "/api/v1/events",
        tags=["read"],
        response_model=models.EventPage,
        responses=error_responses(400, *AUTHENTICATED),
    )
    def list_events(
        caller: read,
        session_id: Annotated[str | None, Query(pattern=models.NO_NUL)] = None,
        method: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        tool: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        kind: Literal["request", "notification", "response", "error", "invalid"] | None = None,
        errors: bool = False,
        since: Time = None,
        until: Time = None,
        q: Annotated[
            str | None, Query(max_length=500, pattern=models.NO_NUL, description="text in the payload")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Cursor = None,
        min_level: MinLevel = None,
        order: Annotated[
            Literal["newest", "oldest"],
            Query(description="newest first (the default) or oldest first, e.g. a session from its start"),
        ] = "newest",
    ) -> Response:
        """Events, newest first (or oldest first), with filters and cursor pagination."""
        flt = _event_filter(caller, session_id, method, tool, kind, errors, since, until, q, min_level)
        try:
            page = queries.page_events(engine, flt, limit, cursor, oldest_first=order == "oldest")
        except queries.BadCursor as exc:
            raise ApiError(400, "invalid_cursor", str(exc)) from None
        body: dict[str, Any] = {"items": [e.to_dict() for e in page.items], "next_cursor": page.next_cursor}
        if page.searched_to_ns is not None:
            body["searched_to"] = format_ts(page.searched_to_ns)
        return models.raw_json(body)

    @app.get(
        "/api/v1/export",
        tags=["read"],
        response_class=StreamingResponse,
        responses={
            **error_responses(404, 413, *AUTHENTICATED),
            200: {"content": {t: {} for t in downloads.MEDIA_TYPES.values()}, "description": "the file"},
        },
    )
    def export_events(
        caller: read,
        format: Literal["jsonl", "har"] = "jsonl",
        session_id: Annotated[str | None, Query(pattern=models.NO_NUL)] = None,
        method: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        tool: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        kind: Literal["request", "notification", "response", "error", "invalid"] | None = None,
        errors: bool = False,
        since: Time = None,
        until: Time = None,
        q: Annotated[
            str | None, Query(max_length=500, pattern=models.NO_NUL, description="text in the payload")
        ] = None,
        min_level: MinLevel = None,
    ) -> Response:
        """A session (``session_id``) or every event a search matches (the filters of
        /api/v1/events), as a file: JSON Lines (lossless, for `km import`) or HAR 1.2, as
        `km export` writes them, in time order."""
        sid = session_id.lower() if session_id else None
        if sid is not None:
            try:
                queries.get_session(engine, sid, caller.org.id)
            except queries.NotFound:
                raise ApiError(404, "not_found", f"no session {session_id!r}") from None
        flt = _event_filter(caller, sid, method, tool, kind, errors, since, until, q, min_level)
        try:
            body = downloads.har(engine, flt) if format == "har" else downloads.jsonl(engine, flt)
        except downloads.TooLarge as exc:
            raise ApiError(413, "export_too_large", str(exc)) from None
        name = downloads.filename(format, sid, format_ts(time.time_ns())[:19].replace(":", ""))
        return StreamingResponse(
            body,
            media_type=downloads.MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    @app.get(
        "/api/v1/events/{event_id}",
        tags=["read"],
        response_model=models.EventDetail,
        responses=error_responses(404, *AUTHENTICATED),
    )
    def get_event(caller: read, event_id: Annotated[str, Path(pattern=models.NO_NUL)]) -> Response:
        try:
            if len(event_id) != 36:
                raise queries.NotFound(event_id)
            event = queries.get_event(engine, event_id.lower(), caller.org.id)
        except queries.NotFound:
            raise ApiError(404, "not_found", f"no event {event_id!r}") from None
        data = event.to_dict()
        pair = queries.paired_event(engine, event, caller.org.id)
        data["paired_event_id"] = pair.id if pair else None
        return models.raw_json(data)

    @app.get(
        "/api/v1/stats", tags=["read"], response_model=models.Stats, responses=error_responses(*AUTHENTICATED)
    )
    def get_stats(
        caller: read,
        since: Time = None,
        until: Time = None,
        bucket: Annotated[
            Literal["minute", "hour", "day"],
            Query(description="width of a series point; minute buckets cover at most 7 days (422 otherwise)"),
        ] = "hour",
        tool: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        server: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
    ) -> Response:
        """Time-bucketed counts, error rate, latency p50/p95/p99 by method, tool and server (rollups)."""
        until_ns = _ns(until) or time.time_ns()
        since_ns = _ns(since) or until_ns - 24 * 3600 * 10**9
        if since_ns >= until_ns:
            raise ApiError(422, "invalid_range", "since must be before until")
        if bucket == "minute" and until_ns - since_ns > 7 * 24 * 3600 * 10**9:
            raise ApiError(422, "invalid_range", "minute buckets cover at most 7 days; use hour or day")
        return models.raw_json(rollups.stats(engine, caller.org.id, since_ns, until_ns, bucket, tool, server))

    @app.get("/api/v1/radar", tags=["read"], responses=error_responses(*AUTHENTICATED))
    def get_radar(
        caller: read,
        since: Time = None,
        server: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
    ) -> radar.RadarOut:
        """The deprecation radar: per server and client, the protocol versions spoken and the
        features the current revision deprecates or removes that each still relies on (since
        defaults to 30 days ago)."""
        since_ns = _ns(since)
        if since_ns is None:
            since_ns = time.time_ns() - radar.DEFAULT_DAYS * 86400 * 10**9
        return radar.radar_out(engine, caller.org.id, since_ns, server)

    @app.get("/api/v1/org", tags=["read"], responses=error_responses(*AUTHENTICATED))
    def get_org(caller: read) -> models.OrgWithUsage:
        """The organization of the calling key, with its plan limits and this month's usage."""
        # the limit as it is now, not as a cached key lookup saw it (km ui's org has no row)
        org = caller.org if caller.mode == "local" else tenancy.get_org(engine, caller.org.id)
        return models.OrgWithUsage.model_validate({**org.to_dict(), "usage": tenancy.usage(engine, org)})

    _findings_routes(app, engine, auth)
    web.register(app, engine, auth, hub, sso=settings.oidc is not None)
    teamsecurity.register(app, engine, auth)
    oidc.register(app, engine, auth, settings.oidc)
    app.add_middleware(web.SecurityHeaders, allowed_hosts=settings.allowed_hosts)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            batch = ingest_mod.BatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(batch.pop("$defs", {}))
            schemas["BatchIn"] = batch
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
