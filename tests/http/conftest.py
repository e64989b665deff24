"""Fixtures for the HTTP tests: real upstream servers (module-scoped) and ``km proxy`` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from http_helpers import KmProxy, Proc, StartProxy, prepare_store, start_everything, start_upstream


@pytest.fixture(scope="module")
def everything_http() -> Iterator[str]:
    """``@modelcontextprotocol/server-everything streamableHttp``; yields its MCP URL."""
    proc, url = start_everything("streamableHttp")
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def everything_sse() -> Iterator[str]:
    """``@modelcontextprotocol/server-everything sse`` (legacy HTTP+SSE); yields its SSE URL."""
    proc, url = start_everything("sse")
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def stateless_upstream() -> Iterator[str]:
    """The SDK's Streamable HTTP server without sessions (clients negotiate 2026-07-28)."""
    proc, port = start_upstream("--stateless")
    yield f"http://127.0.0.1:{port}/mcp"
    proc.stop()


@pytest.fixture(scope="module")
def auth_upstream() -> Iterator[str]:
    """The SDK's Streamable HTTP server behind a bearer-token check (401 + WWW-Authenticate)."""
    from http_helpers import SECRET_TOKEN

    proc, port = start_upstream("--auth", SECRET_TOKEN)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.stop()


@pytest.fixture
def km_proxy(km_home: Path) -> Iterator[StartProxy]:
    """Factory: ``km_proxy(upstream_url, *km_args, env=None)`` starts ``km proxy``; all are stopped
    (SIGTERM) after."""
    started: list[Proc] = []
    prepare_store(km_home)  # migrated once, before any km process opens it

    def start(upstream: str, *args: str, env: dict[str, str] | None = None) -> KmProxy:
        km = KmProxy(km_home, upstream, *args, env=env)
        started.append(km)
        return km

    yield start
    for proc in started:
        proc.stop()
