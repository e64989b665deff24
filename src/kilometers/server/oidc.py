"""Optional OpenID Connect sign-in for the team server (Authorization Code flow with PKCE).

``GET /auth/oidc/login`` sends the browser to the provider with a fresh ``state``, ``nonce`` and
PKCE verifier, kept in a short-lived signed, HTTP-only, SameSite=Lax cookie (no server-side
record). ``GET /auth/oidc/callback`` checks ``state``, exchanges the code (authlib's httpx2
client), validates the ID token (signature against the provider's JWKS; ``iss``, ``aud``,
``exp``, ``nonce``) and signs in the existing user whose e-mail is the token's verified
``email`` claim, with the same session cookie as password sign-in. Nobody is created here:
users come from ``km admin create-user`` or Settings → Members.

Whatever goes wrong ends on the login page with ``?sso_error=<code>``, which the page explains;
details for the operator go to stderr. ``GET /auth/config`` tells the login page whether the
SSO button is shown.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx2
import orjson
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy import Engine

from . import accounts, tenancy
from .auth import SESSION_COOKIE, Auth
from .errors import ApiError
from .models import AuthConfig, Sso
from .web import set_session_cookie

_log = logging.getLogger(__name__)

FLOW_COOKIE = "km_oidc"
FLOW_TTL_SECONDS = 600
CALLBACK_PATH = "/auth/oidc/callback"
METADATA_TTL_SECONDS = 3600.0
HTTP_TIMEOUT_SECONDS = 10.0
CLOCK_LEEWAY_SECONDS = 60
DEFAULT_SCOPES = "openid email profile"


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    """The provider's issuer URL; discovery is ``<issuer>/.well-known/openid-configuration``."""
    client_id: str
    client_secret: str
    name: str = "OpenID Connect"
    """Shown on the login page as "Sign in with <name>"."""
    scopes: str = DEFAULT_SCOPES
    redirect_uri: str | None = None
    """Default: ``<this server's URL as the browser reached it>/auth/oidc/callback``."""

    def __post_init__(self) -> None:
        problems = [
            name
            for name, value in (
                ("issuer", self.issuer),
                ("client id", self.client_id),
                ("client secret", self.client_secret),
            )
            if not value.strip()
        ]
        if problems:
            raise ValueError(f"OpenID Connect needs an {', a '.join(problems)}")
        if not self.issuer.startswith(("https://", "http://")):
            raise ValueError(f"the OpenID Connect issuer must be an http(s) URL, got {self.issuer!r}")
        if "openid" not in self.scopes.split():
            raise ValueError(f"the OpenID Connect scopes must include 'openid', got {self.scopes!r}")


class SignInRefused(Exception):
    """The sign-in cannot go on; ``code`` is what the login page explains to the user."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# -- the short-lived flow cookie (state, nonce, PKCE verifier), signed with HMAC-SHA256 ----------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def seal(key: bytes, data: dict[str, Any]) -> str:
    body = _b64(orjson.dumps(data))
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def unseal(key: bytes, value: str | None, now: float | None = None) -> dict[str, Any] | None:
    """The sealed data, or None when absent, tampered with, malformed or expired."""
    if not value or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        data = orjson.loads(_unb64(body))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("exp"), int | float):
        return None
    if data["exp"] < (time.time() if now is None else now):
        return None
    return data


# -- the provider --------------------------------------------------------------------------------


class OidcProvider:
    """Discovery (cached), the authorization URL, the code exchange and ID-token validation."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        # a key only this server knows, stable across restarts and replicas sharing the secret
        self.cookie_key = hashlib.sha256(b"km-oidc-flow\x00" + settings.client_secret.encode()).digest()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._jwks: dict[str, Any] | None = None

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            scope=self.settings.scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT_SECONDS,
        )

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
        except httpx2.HTTPError as exc:
            raise SignInRefused("sso_unavailable", f"cannot reach {what} at {url}: {exc!r}") from None
        if response.status_code != 200:
            raise SignInRefused("sso_unavailable", f"{what} at {url} answered HTTP {response.status_code}")
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise SignInRefused("sso_unavailable", f"{what} at {url} did not answer JSON") from None
        if not isinstance(data, dict):
            raise SignInRefused("sso_unavailable", f"{what} at {url} did not answer a JSON object")
        return data

    async def metadata(self, refresh: bool = False) -> dict[str, Any]:
        now = time.monotonic()
        if self._metadata is not None and not refresh and now - self._metadata_at < METADATA_TTL_SECONDS:
            return self._metadata
        url = f"{self.issuer}/.well-known/openid-configuration"
        data = await self._get_json(url, "the OpenID Connect discovery document")
        if str(data.get("issuer", "")).rstrip("/") != self.issuer:
            raise SignInRefused(
                "sso_unavailable",
                f"the discovery document at {url} names issuer {data.get('issuer')!r}, not {self.issuer!r}; "
                "check --oidc-issuer",
            )
        missing = [k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not data.get(k)]
        if missing:
            raise SignInRefused("sso_unavailable", f"the discovery document at {url} lacks {missing}")
        self._metadata, self._metadata_at, self._jwks = data, now, None
        return data

    async def jwks(self, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            metadata = await self.metadata()
            self._jwks = await self._get_json(str(metadata["jwks_uri"]), "the provider's signing keys")
        try:
            return KeySet.import_key_set(self._jwks)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise SignInRefused("sso_unavailable", f"the provider's JWKS is not usable: {exc!r}") from None

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, verifier: str) -> str:
        metadata = await self.metadata()
        async with self._client(redirect_uri) as client:
            url, _state = client.create_authorization_url(
                str(metadata["authorization_endpoint"]), state=state, code_verifier=verifier, nonce=nonce
            )
        return str(url)

    async def exchange(self, redirect_uri: str, code: str, verifier: str) -> dict[str, Any]:
        metadata = await self.metadata()
        try:
            async with self._client(redirect_uri) as client:
                token = await client.fetch_token(
                    str(metadata["token_endpoint"]),
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                )
        except httpx2.HTTPError as exc:
            raise SignInRefused("sso_unavailable", f"cannot reach the token endpoint: {exc!r}") from None
        except AuthlibBaseError as exc:
            raise SignInRefused("sso_failed", f"the token endpoint refused the code: {exc}") from None
        except ValueError as exc:  # not JSON
            raise SignInRefused("sso_failed", f"the token endpoint answered nonsense: {exc}") from None
        return dict(token)

    async def id_claims(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        """The ID token's claims, after checking its signature, iss, aud, exp, iat, nonce, at_hash."""
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("sso_failed", "the token response has no id_token (is 'openid' a scope?)")
        metadata = await self.metadata()
        algorithms = [
            a for a in metadata.get("id_token_signing_alg_values_supported") or ["RS256"] if a != "none"
        ]
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(id_token, await self.jwks(), registry=registry)
            except JoseError:  # the provider may have rotated its keys: fetch them once more
                decoded = jwt.decode(id_token, await self.jwks(refresh=True), registry=registry)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "values": [self.issuer, f"{self.issuer}/"]},
                    "aud": {"essential": True, "value": self.settings.client_id},
                    "exp": {"essential": True},
                },
                {
                    "nonce": nonce,
                    "client_id": self.settings.client_id,
                    "access_token": token.get("access_token"),
                },
            )
            claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
        except (JoseError, ValueError, TypeError) as exc:
            raise SignInRefused("sso_failed", f"the ID token is not valid: {exc!r}") from None
        return dict(claims)

    async def userinfo(self, token: dict[str, Any], subject: object) -> dict[str, Any]:
        """The UserInfo claims (for providers that keep email out of the ID token); their ``sub``
        must be the ID token's (OpenID Connect Core 5.3.2)."""
        metadata = await self.metadata()
        endpoint = metadata.get("userinfo_endpoint")
        access_token = token.get("access_token")
        if not endpoint or not isinstance(access_token, str):
            return {}
        try:
            async with httpx2.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS) as client:
                response = await client.get(
                    str(endpoint),
                    headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                )
        except httpx2.HTTPError as exc:
            raise SignInRefused("sso_unavailable", f"cannot reach the userinfo endpoint: {exc!r}") from None
        if response.status_code != 200 or "json" not in response.headers.get("content-type", ""):
            raise SignInRefused(
                "sso_failed", f"the userinfo endpoint answered HTTP {response.status_code} (JSON expected)"
            )
        try:
            info = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise SignInRefused("sso_failed", "the userinfo endpoint did not answer JSON") from None
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise SignInRefused("sso_failed", "the userinfo answer is not about the ID token's subject")
        return info


def check_discovery(settings: OidcSettings) -> str | None:
    """For `km serve` at start-up: None when discovery answers, else what is wrong (the server
    still starts; sign-in tries again and explains itself on the login page)."""
    try:
        asyncio.run(OidcProvider(settings).metadata())
    except SignInRefused as exc:
        return exc.detail
    return None


def verified_email(claims: dict[str, Any]) -> str:
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise SignInRefused(
            "sso_no_email", f"the provider sent no email claim for subject {claims.get('sub')}"
        )
    verified = claims.get("email_verified")
    if verified is not True and verified != "true":  # some providers send the string
        raise SignInRefused("sso_email_unverified", f"the provider has not verified {email}")
    return email


# -- routes --------------------------------------------------------------------------------------


def register(app: FastAPI, engine: Engine, auth: Auth, settings: OidcSettings | None) -> None:
    """``/auth/config`` always; ``/auth/oidc/login`` and ``/callback`` answer 404 unless configured."""
    provider = OidcProvider(settings) if settings is not None else None

    @app.get("/auth/config", tags=["browser"])
    def config() -> AuthConfig:
        """How this server signs people in: the login page shows an SSO button when ``sso.enabled``."""
        enabled = provider is not None and not auth.local
        return AuthConfig(
            mode="local" if auth.local else "team",
            sso=Sso(
                enabled=enabled,
                name=provider.settings.name if enabled and provider else None,
                login_url="/auth/oidc/login" if enabled else None,
            ),
        )

    def configured() -> OidcProvider:
        if provider is None or auth.local:
            raise ApiError(
                404,
                "sso_not_configured",
                "OpenID Connect sign-in is not configured on this server "
                "(km serve --oidc-issuer, --oidc-client-id, --oidc-client-secret)",
            )
        return provider

    def redirect_uri(request: Request, p: OidcProvider) -> str:
        return p.settings.redirect_uri or str(request.base_url).rstrip("/") + CALLBACK_PATH

    def refuse(request: Request, exc: SignInRefused) -> Response:
        _log.warning(f"km serve: OpenID Connect sign-in refused ({exc.code}): {exc.detail}")
        response = RedirectResponse("/login?" + urlencode({"sso_error": exc.code}), status_code=303)
        response.delete_cookie(FLOW_COOKIE, path="/auth/oidc")
        return response

    @app.get(
        "/auth/oidc/login",
        tags=["browser"],
        status_code=303,
        response_class=RedirectResponse,
        responses={404: {"description": "OpenID Connect sign-in is not configured"}},
    )
    async def oidc_login(request: Request) -> Response:
        """Start OpenID Connect sign-in: redirects the browser to the provider."""
        p = configured()
        state, nonce, verifier = (
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(48),
        )
        uri = redirect_uri(request, p)
        try:
            url = await p.authorization_url(uri, state, nonce, verifier)
        except SignInRefused as exc:
            return refuse(request, exc)
        flow = {"state": state, "nonce": nonce, "verifier": verifier, "exp": time.time() + FLOW_TTL_SECONDS}
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            FLOW_COOKIE,
            seal(p.cookie_key, flow),
            max_age=FLOW_TTL_SECONDS,
            httponly=True,
            samesite="lax",  # the provider's redirect back is a cross-site top-level navigation
            secure=request.url.scheme == "https",
            path="/auth/oidc",
        )
        return response

    @app.get(
        CALLBACK_PATH,
        tags=["browser"],
        status_code=303,
        response_class=RedirectResponse,
        responses={404: {"description": "OpenID Connect sign-in is not configured"}},
    )
    async def oidc_callback(request: Request) -> Response:
        """Where the provider sends the browser back; signs in and redirects to ``/`` (or to
        ``/login?sso_error=…`` when refused)."""
        p = configured()
        params = request.query_params
        try:
            host = request.client.host if request.client else "?"
            if await run_in_threadpool(auth.limiter.take, f"login:{host}") > 0:
                raise SignInRefused("sso_rate_limited", f"too many sign-in attempts from {host}")
            flow = unseal(p.cookie_key, request.cookies.get(FLOW_COOKIE))
            if flow is None:
                raise SignInRefused("sso_state", "no valid sign-in in progress (cookie absent or expired)")
            if not hmac.compare_digest(str(params.get("state", "")), str(flow["state"])):
                raise SignInRefused("sso_state", "the state parameter does not match this browser's sign-in")
            if "iss" in params and params["iss"].rstrip("/") != p.issuer:  # RFC 9207 mix-up defence
                raise SignInRefused("sso_failed", f"the response comes from issuer {params['iss']!r}")
            if "error" in params:
                detail = f"the provider answered {params['error']}: {params.get('error_description', '')}"
                denied = params["error"] == "access_denied"
                raise SignInRefused("sso_denied" if denied else "sso_failed", detail)
            code = params.get("code")
            if not code:
                raise SignInRefused("sso_failed", "the provider sent no authorization code")
            token = await p.exchange(redirect_uri(request, p), code, str(flow["verifier"]))
            claims = await p.id_claims(token, str(flow["nonce"]))
            if "email" not in claims or "email_verified" not in claims:
                claims = {**await p.userinfo(token, claims.get("sub")), **claims}
            email = verified_email(claims)
            user = await run_in_threadpool(_user_for, engine, email)
            if user is None:
                raise SignInRefused("sso_unknown_user", f"no user has the e-mail {email}")
            try:
                session_token, _csrf = await run_in_threadpool(accounts.start_session, engine, user)
            except tenancy.TenancyError as exc:
                raise SignInRefused("sso_no_organization", f"{email}: {exc}") from None
        except SignInRefused as exc:
            return refuse(request, exc)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(FLOW_COOKIE, path="/auth/oidc")
        set_session_cookie(response, request, SESSION_COOKIE, session_token, accounts.SESSION_TTL_NS // 10**9)
        return response


def _user_for(engine: Engine, email: str) -> accounts.User | None:
    try:
        return accounts.get_user(engine, email)
    except tenancy.TenancyError:  # not an address we could have stored
        return None
