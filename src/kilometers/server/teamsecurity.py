"""The team server's security routes: the organization's PII redaction setting, the team-wide
tool definitions per server identity (drift), their approval, and the signed pin set that
`km pins sync` fetches (see :mod:`.teampins` and :mod:`.signing`)."""

import math
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from . import models, pinreview, signing, teampins, tenancy
from .auth import Auth, Caller
from .errors import AUTHENTICATED, ApiError, error_responses


class SecurityPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    redact_pii: bool = Field(description="redact personal data in uploads (secrets are always redacted)")


class ApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    tools: dict[Annotated[str, Field(max_length=400)], Annotated[str, Field(pattern="^[0-9a-f]{64}$")]] = (
        Field(
            default_factory=dict,
            description="tool -> SHA-256 of the definition to approve, where developers were shown several",
        )
    )


def register(app: FastAPI, engine: Engine, auth: Auth) -> None:
    read = Annotated[Caller, Depends(auth.require("read"))]
    admin = Annotated[Caller, Depends(auth.require("admin"))]

    def team_only() -> None:
        if auth.local:
            raise ApiError(404, "not_found", "not available in km ui (single user, local store)")

    def pins_reader(request: Request) -> Caller:
        """A developer's ingest key (what `km pins sync` is configured with) or any reader."""
        caller = auth.identify(request)
        if not {"ingest", "read"} & caller.permissions:
            raise ApiError(403, "insufficient_scope", "reading the pin set needs an ingest or read key")
        wait = auth.limiter.take(caller.rate_key)
        if wait > 0:
            raise ApiError(429, "rate_limited", "too many requests for this key; retry later",
                           {"Retry-After": str(max(1, math.ceil(wait)))})  # fmt: skip
        return caller

    @app.patch("/api/v1/org/security", tags=["settings"], responses=error_responses(400, 404, *AUTHENTICATED))
    def patch_org_security(body: SecurityPatch, caller: admin) -> models.Org:
        """Whether the server redacts personal data in this organization's uploads from the next
        batch on (owners and admins)."""
        team_only()
        org = tenancy.set_redact_pii(engine, caller.org, body.redact_pii, actor=caller.actor)
        return models.Org.model_validate(org.to_dict())

    @app.get("/api/v1/servers", tags=["security"], responses=error_responses(404, *AUTHENTICATED))
    def list_servers(caller: read) -> models.TeamServerList:
        """The MCP servers the organization's developers ran, per identity (command or URL, and the
        serverInfo name and version), with the tools whose definitions differ (drift)."""
        team_only()
        return models.TeamServerList.model_validate({"items": teampins.servers(engine, caller.org.id)})

    @app.get("/api/v1/servers/{key}/tools", tags=["security"], responses=error_responses(404, *AUTHENTICATED))
    def server_tools(key: str, caller: read) -> models.TeamServerTools:
        """Every definition of every tool of one server identity, who was shown it, and when."""
        team_only()
        try:
            return models.TeamServerTools.model_validate(teampins.server_tools(engine, caller.org.id, key))
        except teampins.NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None

    @app.post(
        "/api/v1/servers/{key}/approve",
        tags=["security"],
        responses=error_responses(400, 404, 409, *AUTHENTICATED),
    )
    def approve_server(key: str, caller: admin, body: ApproveIn | None = None) -> models.TeamServerTools:
        """Approve the current tool definitions of a server identity as the team's pins (owners
        and admins); where developers were shown different ones, ``tools`` picks one per tool."""
        team_only()
        try:
            approved = teampins.approve(
                engine, caller.org.id, key, caller.actor, body.tools if body else None
            )
            return models.TeamServerTools.model_validate(approved)
        except teampins.NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except teampins.Ambiguous as exc:
            raise ApiError(409, "ambiguous_definitions", str(exc)) from None

    @app.get("/api/v1/pins/review", tags=["security"], responses=error_responses(*AUTHENTICATED))
    def pin_review(caller: read) -> pinreview.PinReview:
        """Each server's pinned tool definitions next to the latest seen, for the Pins view: on
        km ui the local pins (`km pins list`), on a team server the team's approved definitions."""
        if auth.local:
            return pinreview.PinReview(mode="local", items=pinreview.local_review(engine))
        return pinreview.PinReview(mode="team", items=pinreview.team_review(engine, caller.org.id))

    def decide(
        key: str, body: pinreview.Decision | None, caller: Caller, approve: bool
    ) -> pinreview.PinnedServer:
        tool = body.tool if body else None
        try:
            if auth.local:
                return pinreview.local_decide(engine, key, tool, approve)
            return pinreview.team_decide(engine, caller.org.id, key, tool, approve, caller.actor)
        except pinreview.NotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except pinreview.NothingToDecide as exc:
            raise ApiError(409, "nothing_pending", str(exc)) from None

    @app.post(
        "/api/v1/pins/review/{key}/approve",
        tags=["security"],
        responses=error_responses(404, 409, *AUTHENTICATED),
    )
    def approve_pins(
        key: str, caller: admin, body: pinreview.Decision | None = None
    ) -> pinreview.PinnedServer:
        """Accept a server's changed tool definition (``tool``) or every change as the new pin, as
        `km pins approve` does (owners and admins; on km ui, the local user)."""
        return decide(key, body, caller, approve=True)

    @app.post(
        "/api/v1/pins/review/{key}/reject",
        tags=["security"],
        responses=error_responses(404, 409, *AUTHENTICATED),
    )
    def reject_pins(
        key: str, caller: admin, body: pinreview.Decision | None = None
    ) -> pinreview.PinnedServer:
        """Keep the pinned definition of a changed tool (or of every changed one): the change is
        marked rejected, and a listing that shows it again is flagged again (owners and admins)."""
        return decide(key, body, caller, approve=False)

    @app.get("/api/v1/pins", tags=["security"], responses=error_responses(404, *AUTHENTICATED))
    async def signed_pins(caller: Annotated[Caller, Depends(pins_reader)]) -> models.SignedPins:
        """The team's approved tool definitions, signed (Ed25519): `km pins sync` verifies
        ``signature`` over the UTF-8 bytes of ``pin_set`` with ``public_key``, the key it pinned."""
        team_only()
        key = await run_in_threadpool(signing.signing_key, engine, caller.org.id)
        payload = await run_in_threadpool(teampins.pin_set, engine, caller.org.id)
        return models.SignedPins(
            algorithm=signing.ALGORITHM,
            public_key=key.public_b64,
            fingerprint=signing.fingerprint(key.public),
            pin_set=payload.decode(),
            signature=key.sign(payload),
        )
