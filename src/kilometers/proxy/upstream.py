"""The upstream side of ``km proxy``: keep-alive HTTP/1.1 connections to one origin (plain or
TLS), with h11 doing the protocol."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import h11

READ_SIZE = 1 << 16


class UpstreamError(Exception):
    """The upstream could not be reached or broke the HTTP exchange; the text is for the user."""

    def __init__(self, message: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class UpstreamResponse:
    """The status and headers of an upstream answer; its body is read with :meth:`chunks`."""

    def __init__(
        self, pool: UpstreamPool, conn: _Connection, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self.status = status
        self.headers = headers
        """(lower-case name, value) pairs, in the order received."""

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (de-chunked; content codings untouched). Raises UpstreamError."""
        conn = self._conn
        if conn is None:
            return
        while True:
            event = await conn.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._conn = None
                self._pool.release(conn)
                return
            else:
                raise UpstreamError(f"unexpected HTTP event from the upstream: {type(event).__name__}")

    async def aclose(self) -> None:
        """Give the connection back when the body was read to its end; otherwise close it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _Connection:
    """One HTTP/1.1 connection to the upstream, with h11 doing the protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(our_role=h11.CLIENT, max_incomplete_event_size=1 << 20)
        self.idle_since = 0.0

    def usable(self, expiry: float) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < expiry
            and self.h11.our_state is h11.IDLE
        )

    async def next_event(self) -> Any:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self.close()
                raise UpstreamError(f"the upstream broke the HTTP protocol: {exc}") from None
            if event is h11.NEED_DATA:
                try:
                    data = await self.reader.read(READ_SIZE)
                except OSError as exc:
                    self.close()
                    raise UpstreamError(f"the upstream connection failed: {exc!r}") from None
                self.h11.receive_data(data)
                continue
            if event is h11.PAUSED:
                self.close()
                raise UpstreamError("the upstream sent more than one answer")
            return event

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class UpstreamPool:
    """Keep-alive connections to one upstream origin (plain or TLS).

    Lean on purpose: every request of every client goes through here, and a general-purpose
    client (httpx) costs several times more CPU per request. HTTP(S)_PROXY variables are not used.
    """

    def __init__(
        self,
        scheme: str,
        host: str,
        port: int,
        verify: ssl.SSLContext | str | bool = True,
        connect_timeout: float = 10.0,
        max_idle: int = 64,
        idle_expiry: float = 3.0,
    ) -> None:
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.idle_expiry = idle_expiry
        """Seconds an idle connection is reused: less than servers' usual keep-alive (5 s)."""
        self.ssl: ssl.SSLContext | None = upstream_ssl_context(verify) if scheme == "https" else None
        self.authority = host if port == (443 if scheme == "https" else 80) else f"{host}:{port}"
        if ":" in host and not host.startswith("["):
            self.authority = f"[{host}]" if port == (443 if scheme == "https" else 80) else f"[{host}]:{port}"
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                    limit=READ_SIZE,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise UpstreamError(
                f"connecting timed out after {self.connect_timeout:g}s", timeout=True
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect: {exc!r}") from None
        return _Connection(reader, writer)

    def release(self, conn: _Connection) -> None:
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            conn.idle_since = time.monotonic()
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        conn: _Connection | None = None
        while self._idle:
            candidate = self._idle.pop()
            if candidate.usable(self.idle_expiry):
                conn = candidate
                break
            candidate.close()
        if conn is None:
            conn = await self._connect()
        all_headers = [(b"host", self.authority.encode()), *headers]
        if body or method not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS"):
            all_headers.append((b"content-length", str(len(body)).encode()))
        try:
            data = conn.h11.send(h11.Request(method=method, target=target, headers=all_headers))
            if body:
                data += conn.h11.send(h11.Data(data=body))
            data += conn.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            conn.close()
            raise UpstreamError(f"km cannot forward this request: {exc}") from None
        try:
            conn.writer.write(data)
            while True:
                event = await conn.next_event()
                if isinstance(event, h11.InformationalResponse):
                    continue  # 100 Continue, 103 Early Hints: the body was sent already
                break
        except UpstreamError:
            raise
        except OSError as exc:
            conn.close()
            raise UpstreamError(f"the upstream connection failed: {exc!r}") from None
        except asyncio.CancelledError:
            conn.close()
            raise
        if not isinstance(event, h11.Response):
            conn.close()
            raise UpstreamError("the upstream closed the connection without an answer")
        headers_out = [(bytes(k).lower(), bytes(v)) for k, v in event.headers.raw_items()]
        return UpstreamResponse(self, conn, event.status_code, headers_out)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle = []


def upstream_ssl_context(verify: ssl.SSLContext | str | bool) -> ssl.SSLContext:
    """The TLS context for an upstream: system-independent certifi CAs, a CA path, or no checks."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()
