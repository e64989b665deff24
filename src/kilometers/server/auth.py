"""Who is calling: an API key (CLI, uploader, scripts), a signed-in browser (team server), or the
local user of `km ui` (random token, in the ``X-KM-Token`` header). All three become one
:class:`Caller` with permissions.

Permissions: ``ingest`` (upload), ``read`` (query), ``keys`` (create ingest keys and revoke one's
own) and ``admin`` (every key, members, settings). Members have them by role: owner and admin
have all but ingest, a member reads and makes ingest keys (onboarding), a viewer only reads. A
key grants its scope's permissions, never more than its creator's current role allows
(:data:`KEY_ROLE_LIMITS`), and carries that role. A key with no creator (`km admin create-key`,
and every key made before keys recorded their creator) carries the role admin, never owner:
owner-only actions check ``Caller.role``, whatever the credential, and need a signed-in owner
or a key an owner made.
Browser requests with unsafe methods must carry the CSRF token and a same-origin ``Origin``.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import Engine

from ..store.schema import LOCAL_ORG
from . import accounts, tenancy
from .errors import ApiError
from .ratelimit import LoginThrottle, SharedRateLimiter

SESSION_COOKIE = "km_session"
LOCAL_HEADER = "x-km-token"
"""`km ui`'s token travels in this header only, never in a cookie: browsers send a host's cookies
to every port of it, while the dashboard keeps the token in its own origin's storage."""
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
KEY_SCOPES = {"ingest": {"ingest"}, "read": {"read"}, "admin": {"ingest", "read", "keys", "admin"}}
ROLE_PERMISSIONS = {
    "owner": {"read", "keys", "admin"},
    "admin": {"read", "keys", "admin"},
    "member": {"read", "keys"},
    "viewer": {"read"},
}
OPERATOR_KEY_ROLE = "admin"
"""The role of a key with no creator: the operator's, or one made before keys recorded their
creator (which an admin may have made with another key). Never owner."""

KEY_ROLE_LIMITS = {
    "owner": {"ingest", "read", "keys", "admin"},
    "admin": {"ingest", "read", "keys", "admin"},
    "member": {"ingest", "read", "keys"},
    "viewer": {"read"},
}
"""What a key may do, by its creator's current role (a removed creator's keys do nothing)."""
LOCAL_ORG_RECORD = tenancy.Org(LOCAL_ORG, "local", "local", None, None)


@dataclass
class Caller:
    org: tenancy.Org
    permissions: set[str]
    actor: str
    rate_key: str
    mode: str  # "key" | "session" | "local"
    user: accounts.User | None = None
    role: str | None = None
    csrf_token: str | None = None
    scope: str | None = None
    user_id: str | None = None
    """The user whose rights this caller carries: the signed-in user or the key's creator (None:
    the operator's keys, km ui)."""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class AuthSettings:
    rate_per_second: float = 50.0
    rate_burst: float = 100.0
    cache_seconds: float = 1.0
    """How long a key lookup is reused. On PostgreSQL every process also drops its lookups the
    moment keys, memberships or organizations change (:meth:`Auth.forget_keys`, called on each
    ``km_auth`` notification): this is the bound when notifications are not coming through, and
    on SQLite."""
    local_token: str | None = None
    """Set by `km ui`: the only credential accepted, for the local organization."""


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:
        return True  # non-browser clients and same-origin GETs may omit it; CSRF token still required
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")


class Auth:
    def __init__(self, engine: Engine, settings: AuthSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.limiter = SharedRateLimiter(engine, settings.rate_per_second, settings.rate_burst)
        self.login_throttle = LoginThrottle()
        self.local_csrf = secrets.token_urlsafe(32)
        self._cache: dict[str, tuple[float, Caller | None, bool]] = {}
        self._generation = 0
        """Bumped by :meth:`forget_keys`: a lookup that began before is not cached (it may have
        read the database before the change)."""

    @property
    def local(self) -> bool:
        return self.settings.local_token is not None

    # -- API keys ------------------------------------------------------------------------------

    def _key_caller(self, key: str, fresh: bool = False) -> tuple[Caller | None, bool]:
        """(caller, revoked), cached briefly so ingestion does not hit the database per request
        (``fresh``: read the database, as a live stream's re-check does)."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and not fresh and now - hit[0] < self.settings.cache_seconds:
            return hit[1], hit[2]
        generation = self._generation
        record = tenancy.authenticate(self.engine, key)
        caller, revoked = None, False
        if record is not None:
            revoked = record.revoked_ns is not None
            try:
                org = tenancy.get_org(self.engine, record.org_id)
                role = (
                    accounts.member_role(self.engine, org.id, record.created_by)
                    if record.created_by
                    else OPERATOR_KEY_ROLE
                )
                caller = Caller(
                    org,
                    KEY_SCOPES[record.scope] & KEY_ROLE_LIMITS.get(role or "", set()),
                    f"key:{record.prefix}",
                    record.id,
                    "key",
                    role=role,
                    scope=record.scope,
                    user_id=record.created_by,
                )
            except tenancy.TenancyError:
                caller = None
        if len(self._cache) > 10_000:
            self._generation += 1
        self._cache.clear()
        if generation == self._generation:
            self._cache[key] = (now, caller, revoked)
        return caller, revoked

    def _from_key(self, key: str, fresh: bool = False) -> Caller:
        challenge = {"WWW-Authenticate": 'Bearer realm="kilometers"'}
        caller, revoked = self._key_caller(key, fresh)
        if caller is None:
            raise ApiError(401, "invalid_api_key", "this API key is not valid", challenge)
        if revoked:
            raise ApiError(
                401, "revoked_api_key", "this API key has been revoked; create a new one", challenge
            )
        return caller

    def forget_keys(self) -> None:
        """Drop cached key lookups: after a revocation in this process, and in every process on
        PostgreSQL when a ``km_auth`` notification says keys, members or organizations changed."""
        self._generation += 1
        self._cache.clear()

    # -- browsers --------------------------------------------------------------------------------

    def _from_browser(self, request: Request) -> Caller | None:
        if self.local:
            token = request.headers.get(LOCAL_HEADER, "")
            expected = (self.settings.local_token or "").encode()
            if token and hmac.compare_digest(token.encode(), expected):
                return Caller(
                    LOCAL_ORG_RECORD,
                    {"read", "keys", "admin"},
                    "local",
                    "local",
                    "local",
                    role="owner",
                    csrf_token=self.local_csrf,
                )
            return None
        token = request.cookies.get(SESSION_COOKIE, "")
        if not token:
            return None
        session = accounts.load_session(self.engine, token)
        if session is None:
            return None
        return Caller(
            session.org,
            ROLE_PERMISSIONS.get(session.role, set()),
            f"user:{session.user.email}",
            "user:" + session.user.id,
            "session",
            user=session.user,
            role=session.role,
            csrf_token=session.csrf_token,
            user_id=session.user.id,
        )

    def identify(self, request: Request, csrf: bool = True, fresh: bool = False) -> Caller:
        header = request.headers.get("authorization", "")
        key = (
            header[7:].strip()
            if header.lower().startswith("bearer ")
            else request.headers.get("x-api-key", "")
        )
        if key and not self.local:
            return self._from_key(key, fresh)
        caller = self._from_browser(request)
        if caller is None:
            if self.local:
                raise ApiError(
                    401, "not_signed_in", "open the address `km ui` printed (it carries the token)"
                )
            raise ApiError(
                401,
                "missing_api_key",
                "send an API key (Authorization: Bearer km_live_…) or sign in",
                {"WWW-Authenticate": 'Bearer realm="kilometers"'},
            )
        if csrf and request.method in UNSAFE:
            sent = request.headers.get("x-csrf-token", "")
            if not same_origin(request) or not hmac.compare_digest(sent, caller.csrf_token or ""):
                raise ApiError(403, "csrf_failed", "missing or wrong X-CSRF-Token, or a cross-site request")
        return caller

    def still_allowed(self, request: Request, caller: Caller, permission: str) -> bool:
        """Whether the credential ``caller`` was identified from still grants the same access: not
        signed out, expired or revoked, still a member of the same organization, same role. Read
        from the database (another process may have made the change), for long-lived requests
        such as the live stream."""
        try:
            now = self.identify(request, csrf=False, fresh=True)
        except Exception:  # refused, or the database is down: end it (the client reconnects)
            return False
        return (
            now.mode == caller.mode
            and now.org.id == caller.org.id
            and now.role == caller.role
            and now.user_id == caller.user_id
            and permission in now.permissions
        )

    def require(self, permission: str) -> Callable[[Request], Caller]:
        def dependency(request: Request) -> Caller:
            caller = self.identify(request)
            if permission not in caller.permissions:
                if caller.mode == "key" and caller.role is None:
                    raise ApiError(
                        403,
                        "creator_not_member",
                        "the user who created this key is no longer a member; create a new key",
                    )
                what = f"scope {caller.scope!r}" if caller.mode == "key" else f"role {caller.role!r}"
                if caller.mode == "key" and permission in KEY_SCOPES[caller.scope or "ingest"]:
                    what += f" but its creator's role is {caller.role!r}"
                raise ApiError(
                    403,
                    "insufficient_scope",
                    f"this {caller.mode} has {what}; this call needs {permission!r}",
                )
            wait = self.limiter.take(caller.rate_key)
            if wait > 0:
                raise ApiError(
                    429,
                    "rate_limited",
                    "too many requests for this key; retry later",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
            return caller

        return dependency
