"""The HTTP side of uploading: one client for a team server's batch endpoint, and what its
answers mean (:class:`UploadError` and its kinds, ``Retry-After``, backoff).

The API key is held by the HTTP client only: it is never logged, stored or put in an exception.
"""

from __future__ import annotations

import contextlib
import gzip
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .. import __version__

BATCH_PATH = "/api/v1/events/batch"
GZIP_MIN_BYTES = 1024


# -- errors ---------------------------------------------------------------------------------------


class UploadError(Exception):
    """An upload did not go through; nothing was lost (the events stay in the local store)."""

    kind = "upload"
    retry_after: float | None = None


class TransientError(UploadError):
    """The server is unreachable, overloaded or asks to slow down: retry later (with backoff)."""

    kind = "unreachable"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(TransientError):
    kind = "rate_limited"


class TimedOut(TransientError):
    """No answer within the timeout (which may be the caller's own short deadline)."""

    kind = "timeout"


class AuthError(UploadError):
    """401/403: the key is missing, wrong, revoked or lacks the ``ingest`` scope. Retrying won't help."""

    kind = "auth"


class QuotaExceeded(UploadError):
    """402: the organization reached its plan's limit. Wait a long while (or raise the limit)."""

    kind = "quota"

    def __init__(self, message: str, retry_after: float | None = None, server_message: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.server_message = server_message
        """The server's own words (kept by the uploader for ``km status``)."""


class Rejected(UploadError):
    """The server refused the request as a whole (400, 404, 422…): likely a wrong URL or a version gap."""

    kind = "rejected"


class TooLarge(Exception):
    """413 (handled inside the uploader by splitting)."""


class NoGzip(Exception):
    """415 on a gzip body (handled inside the uploader by sending plain JSON)."""


# -- helpers --------------------------------------------------------------------------------------


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 300.0, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: a random delay between half and all of ``min(cap, base·2^(n-1))``."""
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 1) - 1, 32))
    return ceiling / 2 + rng() * ceiling / 2


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (it may be a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN -> None


def key_hint(key: str | None) -> str:
    """What may be shown of a key: its first characters, e.g. ``km_live_abcd…``."""
    if not key:
        return ""
    shown = 12 if len(key) >= 24 else len(key) // 3
    return key[:shown] + "…"


def _server_message(response: httpx.Response) -> str:
    """The server's own explanation (``{"error": {"message": …}}`` or FastAPI's ``detail``), short."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:200]
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("code")
        elif error is not None:
            message = error
        if message is None and "detail" in body:
            message = body["detail"]
    text = str(message if message is not None else body)
    return text[:300]


def _error_code(response: httpx.Response) -> str | None:
    with contextlib.suppress(ValueError, AttributeError):
        error = response.json().get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return str(error["code"])
    return None


# -- the client -----------------------------------------------------------------------------------


class TeamClient:
    """POSTs upload requests to ``api_url``'s batch endpoint and turns each answer into a result
    or an :class:`UploadError`. Gzip-compresses bodies from ``GZIP_MIN_BYTES`` on, and stops
    compressing for good when the server (or a proxy in front of it) refuses gzip."""

    def __init__(self, api_url: str, api_key: str, *, timeout: float = 30.0, compress: bool = True) -> None:
        self.target = api_url.rstrip("/")
        self.compress = compress
        self._endpoint = self.target + BATCH_PATH
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"kilometers/{__version__}"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never show the key
        return f"TeamClient({self.target!r})"

    def close(self) -> None:
        self._client.close()

    def request(self, body: bytes, timeout: float | None) -> dict[str, Any]:
        """The server's JSON answer to ``body`` (plain JSON again after a 415 on gzip)."""
        try:
            return self.post(body, timeout)
        except NoGzip:
            self.compress = False  # a server (or a proxy in front of it) that does not take gzip
            return self.post(body, timeout)

    def post(self, body: bytes, timeout: float | None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.compress and len(body) >= GZIP_MIN_BYTES:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": max(0.05, timeout)}
        try:
            response = self._client.post(self._endpoint, content=body, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise TimedOut(f"the team server at {self.target} did not answer in time") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise TransientError(f"cannot reach the team server at {self.target} ({reason})") from None
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                raise Rejected(f"the server at {self.target} answered {status} without JSON") from None
            return data if isinstance(data, dict) else {}
        message = _server_message(response)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status in (401, 403):
            raise AuthError(
                f"the team server at {self.target} refused the API key (HTTP {status}: {message})"
            )
        if status == 402:
            raise QuotaExceeded(
                f"the organization's plan limit is reached (HTTP 402: {message})", retry_after, message
            )
        if status == 413:
            raise TooLarge(message)
        if status == 415 and self.compress:
            raise NoGzip(message)
        if status == 429:
            raise RateLimited(f"the team server asks to slow down (HTTP 429: {message})", retry_after)
        if status >= 500 or status == 408:
            raise TransientError(
                f"the team server at {self.target} failed (HTTP {status}: {message})", retry_after
            )
        if 300 <= status < 400:
            where = response.headers.get("location", "?")
            raise Rejected(f"the team server URL {self.target} redirects to {where}; set the API URL to that")
        raise Rejected(f"the team server at {self.target} refused the upload (HTTP {status}: {message})")
