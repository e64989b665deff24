"""The dashboard's side of the server: sign-in, settings endpoints, the live stream, the built
front end (served from ``static/``) and the security headers every response carries."""

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from sqlalchemy import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from . import accounts, models, tenancy
from .assets import DashboardAssets
from .auth import SESSION_COOKIE, Auth, Caller
from .errors import AUTHENTICATED, ApiError, error_response, error_responses
from .live import LiveFilter, LiveHub, stream

STATIC = Path(__file__).parent / "static"
PAGES = (
    "overview",
    "live",
    "sessions",
    "events",
    "search",
    "findings",
    "pins",
    "analytics",
    "onboarding",
    "settings",
    "login",
)
API_PREFIXES = ("/api/", "/auth/", "/assets/", "/metrics", "/health", "/ready", "/openapi")
"""Paths whose 404 stays a JSON error (or a missing file) even for a browser."""
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


PRELOAD_ME = b'<link rel="preload" href="/auth/me" as="fetch" crossorigin>'


def preloading_me(html: bytes) -> bytes:
    """The app's page for a browser that has a session cookie: it also asks the browser to fetch
    ``/auth/me`` while the script loads, so the app's first request (who am I) is answered by
    the time it runs, and the page's own requests leave one round trip sooner. (``km ui``
    signs in with a token the page holds, not a cookie: its page is left as it is.)"""
    at = html.find(b"<script")
    return html if at < 0 else html[:at] + PRELOAD_ME + b"\n    " + html[at:]


class SecurityHeaders:
    """Adds the strict CSP and friends to every response; in `km ui` mode also refuses any Host
    or Origin other than this loopback address (DNS rebinding, cross-site requests)."""

    def __init__(self, app: ASGIApp, allowed_hosts: set[str] | None = None) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.allowed_hosts is not None:
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            origin = headers.get(b"origin", b"").decode("latin-1")
            allowed_origins = {f"http://{h}" for h in self.allowed_hosts}
            if host not in self.allowed_hosts or (origin and origin not in allowed_origins):
                response = error_response(
                    403, "forbidden_host", "km ui only answers its own loopback address"
                )
                await response(scope, receive, send)
                return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(_Body):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1000)


class SwitchOrgIn(_Body):
    org_id: str = Field(max_length=36)


class KeyIn(_Body):
    scope: Literal["ingest", "read", "admin"] = "ingest"
    name: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00]*$")


EMAIL_PATTERN = r"^[^@ \x00-\x1f\x7f-\x9f]+@[^@ \x00-\x1f\x7f-\x9f]+$"
"""An e-mail address as the member endpoints take it: one @, no spaces or control characters."""


class MemberIn(_Body):
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    role: Literal["owner", "admin", "member", "viewer"] = "member"
    password: str | None = Field(default=None, min_length=accounts.MIN_PASSWORD, max_length=1000)


class RoleIn(_Body):
    role: Literal["owner", "admin", "member", "viewer"]


def _whole_number(value: Any) -> Any:
    """JSON Schema's integer includes 130.0; strict mode would refuse it (and still refuses "130")."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class OrgPatch(_Body):
    model_config = ConfigDict(extra="forbid", strict=True)
    retention_days: Annotated[int | None, BeforeValidator(_whole_number)] = Field(
        ge=1, le=3650, description="days (null: keep forever, on plans without a limit)"
    )


def _me(caller: Caller, engine: Engine, local: bool) -> dict[str, Any]:
    if local:
        return {
            "mode": "local",
            "user": {"id": "local", "email": "local"},
            "org": caller.org.to_dict(),
            "role": "owner",
            "orgs": [{"id": caller.org.id, "name": caller.org.name, "role": "owner"}],
            "invitations": [],
            "csrf_token": caller.csrf_token,
        }
    assert caller.user is not None
    return {
        "mode": "team",
        "user": {"id": caller.user.id, "email": caller.user.email},
        "org": caller.org.to_dict(),
        "role": caller.role,
        "orgs": accounts.user_orgs(engine, caller.user.id),
        "invitations": accounts.pending_invitations(engine, caller.user.id),
        "csrf_token": caller.csrf_token,
    }


def set_session_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def register(app: FastAPI, engine: Engine, auth: Auth, hub: LiveHub, sso: bool = False) -> None:
    """The browser routes. ``sso``: OpenID Connect sign-in is on, so Settings may add members
    without a password (they sign in through the provider)."""
    local = auth.local
    read = Annotated[Caller, Depends(auth.require("read"))]
    keys = Annotated[Caller, Depends(auth.require("keys"))]
    admin = Annotated[Caller, Depends(auth.require("admin"))]

    def team_only() -> None:
        if local:
            raise ApiError(404, "not_found", "not available in km ui (single user, local store)")

    # -- sign-in ---------------------------------------------------------------------------------

    @app.post(
        "/auth/login",
        tags=["browser"],
        response_model=models.Me,
        responses=error_responses(400, 404, *AUTHENTICATED),
    )
    async def login(body: LoginIn, request: Request) -> JSONResponse:
        """Sign in with e-mail and password; sets an HTTP-only session cookie."""
        team_only()
        host = request.client.host if request.client else "?"
        account = body.email.strip().lower()
        wait = math.ceil(auth.login_throttle.wait(account, host))
        if wait > 0:
            raise ApiError(
                429,
                "login_throttled",
                f"too many failed sign-ins for this account or from this address; try again in {wait} s",
                {"Retry-After": str(wait)},
            )
        user = await run_in_threadpool(accounts.verify_login, engine, body.email, body.password)
        if user is None:
            auth.login_throttle.failed(account, host)
            raise ApiError(401, "invalid_credentials", "wrong e-mail or password")
        auth.login_throttle.succeeded(account, host)
        try:
            token, _csrf = accounts.start_session(engine, user)
        except tenancy.TenancyError as exc:
            raise ApiError(403, "no_organization", str(exc)) from None
        session = accounts.load_session(engine, token)
        assert session is not None
        caller = Caller(session.org, set(), "", "", "session", session.user, session.role, session.csrf_token)
        response = JSONResponse(_me(caller, engine, False))
        set_session_cookie(response, request, SESSION_COOKIE, token, accounts.SESSION_TTL_NS // 10**9)
        return response

    @app.post("/auth/logout", tags=["browser"], status_code=204, responses=error_responses(*AUTHENTICATED))
    def logout(request: Request) -> Response:
        auth.identify(request)  # CSRF-checked
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            accounts.end_session(engine, token)
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/auth/me", tags=["browser"], responses=error_responses(*AUTHENTICATED))
    def me(request: Request) -> models.Me:
        """Who is signed in, their organization and role, and the CSRF token for unsafe requests."""
        try:
            caller = auth.identify(request, csrf=False)
        except ApiError as exc:
            raise ApiError(401, "not_signed_in", "sign in first") from exc
        if caller.mode == "key":
            raise ApiError(401, "not_signed_in", "this endpoint is for browsers; API keys have no session")
        return models.Me.model_validate(_me(caller, engine, local))

    @app.post(
        "/auth/switch-org",
        tags=["browser"],
        response_model=models.Me,
        responses=error_responses(400, 404, *AUTHENTICATED),
    )
    def switch_org(body: SwitchOrgIn, request: Request, caller: read) -> JSONResponse:
        team_only()
        if caller.user is None:
            raise ApiError(403, "not_a_browser", "only signed-in members can switch organization")
        try:
            token, _ = accounts.start_session(engine, caller.user, body.org_id)
        except tenancy.TenancyError as exc:
            raise ApiError(403, "not_a_member", str(exc)) from None
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            accounts.end_session(engine, old)
        session = accounts.load_session(engine, token)
        assert session is not None
        new = Caller(session.org, set(), "", "", "session", session.user, session.role, session.csrf_token)
        response = JSONResponse(_me(new, engine, False))
        set_session_cookie(response, request, SESSION_COOKIE, token, accounts.SESSION_TTL_NS // 10**9)
        return response

    def signed_in_user(caller: Caller) -> accounts.User:
        if caller.mode != "session" or caller.user is None:
            raise ApiError(403, "not_a_browser", "only a signed-in user can answer their invitations")
        return caller.user

    @app.post("/auth/invitations/{org_id}", tags=["browser"], responses=error_responses(404, *AUTHENTICATED))
    def accept_invitation(org_id: str, caller: read) -> models.Me:
        """Accept an organization's invitation (listed in `/auth/me`); answers the new *Me*."""
        team_only()
        try:
            accounts.accept_invitation(engine, signed_in_user(caller), org_id)
        except tenancy.TenancyError as exc:
            raise ApiError(404, "no_invitation", str(exc)) from None
        return models.Me.model_validate(_me(caller, engine, False))

    @app.delete(
        "/auth/invitations/{org_id}",
        tags=["browser"],
        status_code=204,
        responses=error_responses(404, *AUTHENTICATED),
    )
    def decline_invitation(org_id: str, caller: read) -> Response:
        team_only()
        try:
            accounts.decline_invitation(engine, signed_in_user(caller), org_id)
        except tenancy.TenancyError as exc:
            raise ApiError(404, "no_invitation", str(exc)) from None
        return Response(status_code=204)

    # -- live ------------------------------------------------------------------------------------

    @app.get(
        "/api/v1/live",
        tags=["read"],
        response_class=StreamingResponse,
        responses=error_responses(*AUTHENTICATED),
    )
    async def live(
        request: Request,
        caller: read,
        session_id: Annotated[str | None, Query(max_length=36, pattern=models.NO_NUL)] = None,
        method: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        tool: Annotated[str | None, Query(max_length=200, pattern=models.NO_NUL)] = None,
        kind: Literal["request", "notification", "response", "error", "invalid"] | None = None,
        errors: bool = False,
        q: Annotated[str | None, Query(max_length=500, pattern=models.NO_NUL)] = None,
        min_level: Annotated[
            Literal["low", "medium", "high", "critical"] | None,
            Query(description="only events with a risk level at least this high"),
        ] = None,
    ) -> StreamingResponse:
        """New events as they are stored, as Server-Sent Events (`event: event`, data = Event JSON).
        The stream ends with `event: revoked` within seconds of the credential that opened it
        ending (sign-out, expiry, removal, role change, key revocation)."""
        flt = LiveFilter(session_id, method, tool, kind, errors, q, min_level)

        async def allowed() -> bool:
            return await run_in_threadpool(auth.still_allowed, request, caller, "read")

        return StreamingResponse(
            stream(hub, caller.org.id, flt, request.is_disconnected, allowed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- settings --------------------------------------------------------------------------------

    @app.get("/api/v1/keys", tags=["settings"], responses=error_responses(404, *AUTHENTICATED))
    def list_keys(caller: keys) -> models.ApiKeyList:
        """The organization's keys (for a member: the keys they created)."""
        team_only()
        items = tenancy.list_keys(engine, caller.org)
        if "admin" not in caller.permissions:
            items = [k for k in items if caller.user_id and k.created_by == caller.user_id]
        return models.ApiKeyList.model_validate({"items": [k.to_dict() for k in items]})

    @app.post(
        "/api/v1/keys",
        tags=["settings"],
        status_code=201,
        responses=error_responses(400, 404, *AUTHENTICATED),
    )
    def create_key(body: KeyIn, caller: keys) -> models.CreatedKey:
        """Create an API key; the response is the only place the key ever appears. Members may
        create ``ingest`` keys only. The key carries the caller's user (a key's: its creator), so
        it never does more than that user's current role allows."""
        team_only()
        if body.scope != "ingest" and "admin" not in caller.permissions:
            raise ApiError(
                403, "insufficient_role", f"role {caller.role!r} may create ingest keys only; ask an admin"
            )
        key = tenancy.create_key(
            engine,
            caller.org,
            body.scope,
            body.name,
            actor=caller.actor,
            created_by=caller.user_id,
        )
        record = tenancy.authenticate(engine, key)
        assert record is not None
        return models.CreatedKey.model_validate({"key": key, "item": record.to_dict()})

    @app.delete(
        "/api/v1/keys/{key_id}",
        tags=["settings"],
        status_code=204,
        responses=error_responses(404, *AUTHENTICATED),
    )
    def revoke_key(key_id: str, caller: keys) -> Response:
        """Revoke a key (a member: only a key they created)."""
        team_only()
        if len(key_id) != 36:
            raise ApiError(404, "not_found", "no such key")
        if "admin" not in caller.permissions:
            own = [k for k in tenancy.list_keys(engine, caller.org) if k.id == key_id]
            if not own or caller.user_id is None or own[0].created_by != caller.user_id:
                raise ApiError(
                    403, "insufficient_role", "members can revoke only the keys they created; ask an admin"
                )
        try:
            tenancy.revoke_key(engine, key_id, caller.org, actor=caller.actor)
        except tenancy.TenancyError:
            raise ApiError(404, "not_found", "no such key in this organization") from None
        auth.forget_keys()
        return Response(status_code=204)

    @app.get("/api/v1/members", tags=["settings"], responses=error_responses(404, *AUTHENTICATED))
    def list_members(caller: admin) -> models.MemberList:
        """Members and pending invitations (``status`` "active" or "invited")."""
        team_only()
        return models.MemberList.model_validate({"items": accounts.list_members(engine, caller.org)})

    def member(caller: Caller, user_id: str) -> dict[str, Any]:
        found = next((m for m in accounts.list_members(engine, caller.org) if m["user_id"] == user_id), None)
        if found is None:
            raise ApiError(404, "not_found", "no such member in this organization")
        return found

    def owners_only(caller: Caller, *roles: str) -> None:
        if "owner" in roles and caller.role != "owner":
            raise ApiError(403, "insufficient_role", "only an owner can make, change or remove owners")

    @app.post(
        "/api/v1/members",
        tags=["settings"],
        status_code=201,
        responses=error_responses(400, 404, 409, *AUTHENTICATED),
    )
    def add_member(body: MemberIn, caller: admin) -> models.Member:
        """Invite an address. A new address becomes a user of this organization with the given
        password; an existing user keeps their own and accepts after signing in. The answer is
        the same in both cases (status "invited" until they first sign in or accept)."""
        team_only()
        owners_only(caller, body.role)
        if not body.password and not sso:
            raise ApiError(400, "password_required", "give an initial password (used if the address is new)")
        try:
            user = accounts.invite(
                engine, caller.org, body.email, body.role, body.password or None, actor=caller.actor
            )
        except accounts.AlreadyMember as exc:
            raise ApiError(409, "already_member", str(exc)) from None
        except tenancy.TenancyError as exc:
            raise ApiError(400, "invalid_member", str(exc)) from None
        return models.Member(user_id=user.id, email=user.email, role=body.role, status="invited")

    @app.patch(
        "/api/v1/members/{user_id}",
        tags=["settings"],
        responses=error_responses(400, 404, 409, *AUTHENTICATED),
    )
    def change_role(user_id: str, body: RoleIn, caller: admin) -> models.Member:
        team_only()
        target = member(caller, user_id)
        owners_only(caller, body.role, target["role"])
        try:
            accounts.change_role(engine, caller.org, user_id, body.role, actor=caller.actor)
        except accounts.LastOwner as exc:
            raise ApiError(409, "last_owner", str(exc)) from None
        except tenancy.TenancyError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        auth.forget_keys()  # the member's keys follow their new role at once
        return models.Member.model_validate({**target, "role": body.role})

    @app.delete(
        "/api/v1/members/{user_id}",
        tags=["settings"],
        status_code=204,
        responses=error_responses(404, 409, *AUTHENTICATED),
    )
    def remove_member(user_id: str, caller: admin) -> Response:
        """Remove a member (their keys stop working) or withdraw an invitation."""
        team_only()
        owners_only(caller, member(caller, user_id)["role"])
        try:
            accounts.remove_member(engine, caller.org, user_id, actor=caller.actor)
        except accounts.LastOwner as exc:
            raise ApiError(409, "last_owner", str(exc)) from None
        except tenancy.TenancyError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        auth.forget_keys()
        return Response(status_code=204)

    @app.patch("/api/v1/org", tags=["settings"], responses=error_responses(400, 404, *AUTHENTICATED))
    def patch_org(body: OrgPatch, caller: admin) -> models.Org:
        team_only()
        if "retention_days" not in body.model_fields_set:
            raise ApiError(422, "invalid_request", 'nothing to change: send {"retention_days": <days>}')
        try:
            org = tenancy.set_retention(engine, caller.org, body.retention_days, actor=caller.actor)
        except tenancy.TenancyError as exc:
            raise ApiError(422, "plan_limit", str(exc)) from None
        return models.Org.model_validate(org.to_dict())

    # -- the front end ---------------------------------------------------------------------------

    def not_found_page(request: Request) -> Response | None:
        """A browser asking for a page that does not exist gets the app (status 404), which shows
        its Not Found page; API clients keep the JSON error."""
        path = request.url.path
        if request.method not in ("GET", "HEAD") or path.startswith(API_PREFIXES):
            return None
        if "text/html" not in request.headers.get("accept", "") or not (STATIC / "index.html").exists():
            return None
        return FileResponse(STATIC / "index.html", status_code=404, headers={"Cache-Control": "no-cache"})

    if (STATIC / "assets").is_dir():
        app.mount("/assets", DashboardAssets(STATIC / "assets"), name="assets")

    def index(request: Request) -> Response:
        page = STATIC / "index.html"
        if not page.exists():
            return HTMLResponse(
                "<!doctype html><title>Kilometers</title><p>The dashboard is not installed: "
                "<code>km doctor</code> says how to fix it.</p>",
                status_code=503,
            )
        if SESSION_COOKIE not in request.cookies:
            return FileResponse(page, headers={"Cache-Control": "no-cache"})
        return HTMLResponse(
            preloading_me(page.read_bytes()), headers={"Cache-Control": "no-cache", "Vary": "Cookie"}
        )

    app.state.not_found_page = not_found_page
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    for page_name in PAGES:
        app.add_api_route(f"/{page_name}", index, methods=["GET"], include_in_schema=False)
        app.add_api_route(f"/{page_name}/{{rest:path}}", index, methods=["GET"], include_in_schema=False)
