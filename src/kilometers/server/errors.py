"""The one error shape of the HTTP API: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    """The body of every error answer (declared in the OpenAPI schema for each error status)."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "malformed request (the body says why)",
    401: "missing, invalid or revoked credentials",
    402: "plan limit reached",
    403: "the caller lacks the scope or role this call needs",
    404: "not found in the caller's organization",
    405: "method not allowed; the Allow header lists the path's methods",
    409: "conflicts with the current state",
    413: "request body too large",
    415: "unsupported Content-Encoding",
    422: "invalid parameters or body",
    429: "rate limited; see Retry-After",
    503: "database unavailable; see Retry-After",
}


AUTHENTICATED = (401, 403, 422, 429, 503)
"""What every route behind a key or session can answer: no or bad credentials, a missing scope or
CSRF token, invalid parameters, the rate limit, the database down."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with the error shape."""
    json = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    return {s: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[s], "content": json} for s in statuses}
