"""``km proxy --upstream URL``: a reverse proxy for a remote MCP server (Streamable HTTP or SSE).

Point the MCP client at km's address instead of the server's; every request goes to the same
path on the upstream, unchanged, and every JSON-RPC message is recorded. See docs/http.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from .. import config
from .common import db_failure, recording_options, recording_policy, recording_settings

if TYPE_CHECKING:
    from ..agent.proxy import AgentRecording
    from ..host import Host
    from ..security import Policy

DEFAULT_LISTEN = config.Settings().proxy_listen
NOT_RECORDED = "traffic is forwarded but not recorded until it can be opened"
SWITCH_INTERVAL = 0.0005
"""Seconds a busy recorder thread may hold the GIL before the event loop gets it back."""


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``[IPv6]:PORT`` -> (host, port)."""
    text = value.strip()
    host, port_text = "127.0.0.1", text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise click.BadParameter(f"expected [ADDRESS]:PORT, got {value!r}")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
        host = host or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise click.BadParameter(f"port {port} is out of range (0-65535)")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def header_timeout_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (h11), with a deadline on each request's head: a client that
    connects and sends nothing, or its headers a byte at a time (slowloris), is disconnected after
    ``seconds``. uvicorn itself only times out idle keep-alive connections."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._deadline = self.loop.call_later(seconds, self._too_slow)  # a new request begins
            super().data_received(data)
            if self._deadline is not None and self.conn.their_state is not h11.IDLE:
                self._deadline.cancel()  # the head is complete
                self._deadline = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().connection_lost(exc)

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return Protocol


def start_recording(settings: config.Settings, policy: Policy) -> Host | AgentRecording:
    """Who records the sessions: the user's agent (started now if none runs, so that the store is
    opened before km listens; a blocking policy still decides here, on the forwarding path), else
    this process's host (the agent is off or cannot start)."""
    if settings.agent:
        from ..agent.link import AgentUnavailable, serving
        from ..agent.proxy import AgentRecording
        from ..paths import data_dir

        try:
            status = serving(settings, data_dir())
        except AgentUnavailable as exc:
            click.echo(f"km proxy: {exc}; recording without the agent", err=True)
        else:
            if status.get("store_error"):
                from ..store.db import display_url

                click.echo(
                    f"km proxy: cannot open the store {display_url(settings.db_url)}: "
                    f"{status['store_error']}; {NOT_RECORDED}",
                    err=True,
                )
            return AgentRecording(settings, policy, data_dir())
    return start_host(settings, policy)


def start_host(settings: config.Settings, policy: Policy) -> Host:
    """The process's recording pipeline, before km listens: the store opened and migrated once,
    the sinks every HTTP session shares. A store that cannot be opened is reported; traffic is
    still forwarded, and the store sink retries opening it."""
    from ..host import Host

    host = Host(settings, policy=policy, server_side=True).start()
    if host.store_error is not None:
        click.echo(
            f"km proxy: {db_failure('cannot open the store', host.store_error, settings.db_url)}; "
            + NOT_RECORDED,
            err=True,
        )
    return host


@click.command("proxy")
@click.option("--upstream", required=True, help="URL of the remote MCP server (its MCP endpoint).")
@click.option(
    "--listen",
    help=f"Address to listen on, HOST:PORT (port 0 picks a free one; default {DEFAULT_LISTEN}; "
    "also KM_PROXY_LISTEN).",
)
@click.option("--name", help="Name of this server in the records (default: from the URL).")
@recording_options
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0.1),
    help="Seconds without traffic after which a session is closed in the records (default 600; "
    "also KM_PROXY_IDLE_TIMEOUT).",
)
@click.option(
    "--max-sessions",
    type=click.IntRange(min=1),
    help="Sessions recorded at once at most; past it, the one idle longest is closed in the records "
    "(default 100; also KM_PROXY_MAX_SESSIONS).",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0.1),
    help="Seconds a client has to send a request's headers; slower connections are closed (default 10; "
    "also KM_PROXY_HEADER_TIMEOUT).",
)
@click.option(
    "--upstream-ca",
    type=click.Path(exists=True, dir_okay=True),
    help="CA bundle (PEM file or directory) to verify the upstream's TLS certificate with "
    "(also KM_PROXY_UPSTREAM_CA).",
)
@click.option("--tls-cert", type=click.Path(exists=True), help="Serve HTTPS with this certificate (PEM).")
@click.option("--tls-key", type=click.Path(exists=True), help="Private key for --tls-cert (PEM).")
def proxy_cmd(
    upstream: str,
    listen: str | None,
    name: str | None,
    db_url: str | None,
    exclude_ping: bool | None,
    include_method: tuple[str, ...],
    exclude_method: tuple[str, ...],
    payload_limit: int | None,
    policy: str | None,
    redact_pii: bool | None,
    otel: bool | None,
    otel_payloads: bool | None,
    otel_legacy_names: bool | None,
    idle_timeout: float | None,
    max_sessions: int | None,
    header_timeout: float | None,
    upstream_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Record a remote MCP server's traffic: point the client at km instead of UPSTREAM.

    Streamable HTTP (POST/GET/DELETE, JSON or SSE answers, resumption) and the legacy HTTP+SSE
    transport pass through unchanged; OAuth (401, /.well-known/...) too. Authorization headers
    and cookies are forwarded but never stored.
    """
    import uvicorn

    from ..proxy.http import HttpProxy, ProxyOptions, display_url

    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"expected an http:// or https:// URL, got {upstream!r}", param_hint="--upstream"
        )
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    settings = recording_settings(
        locals(),
        proxy_listen=listen,
        proxy_idle_timeout=idle_timeout,
        proxy_max_sessions=max_sessions,
        proxy_header_timeout=header_timeout,
        proxy_upstream_ca=upstream_ca,
    )
    host, port = parse_listen(settings.proxy_listen)
    upstream_ca = settings.proxy_upstream_ca
    if upstream_ca and not os.path.exists(upstream_ca):
        raise click.BadParameter(
            f"{upstream_ca!r} does not exist", param_hint="--upstream-ca / KM_PROXY_UPSTREAM_CA"
        )
    rules = recording_policy(settings)  # one that cannot be used stops km before it listens
    pipeline = start_recording(settings, rules)

    sys.setswitchinterval(SWITCH_INTERVAL)
    options = ProxyOptions(
        upstream=upstream,
        name=name,
        open_session=pipeline.open_session,
        on_shutdown=pipeline.close,
        blocks=rules.mode == "block",
        idle_timeout=settings.proxy_idle_timeout,
        max_sessions=settings.proxy_max_sessions,
        verify=upstream_ca if upstream_ca else True,
    )
    app = HttpProxy(options)

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP given explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    # so, and with Nagle on, every answer waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        pipeline.close()
        click.echo(
            f"km proxy: cannot listen on {host}:{port}: {exc.strerror or exc}. Choose another --listen.",
            err=True,
        )
        sys.exit(2)
    sock.listen(2048)
    bound_port = sock.getsockname()[1]
    scheme = "https" if tls_cert else "http"
    shown_host = f"[{host}]" if ":" in host else host
    ours = f"{scheme}://{shown_host}:{bound_port}"
    endpoint = ours + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    click.echo(
        f"km proxy: listening on {ours}, forwarding to {display_url(upstream)}\n"
        f"km proxy: point your MCP client at {display_url(endpoint)}",
        err=True,
    )
    if not _is_loopback(host):
        click.echo(
            f"km proxy: warning: {host} is not a loopback address; anyone who can reach it can use "
            "this server through km (and any credentials the upstream accepts from them).",
            err=True,
        )
    server_config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # the client's address is the peer's: X-Forwarded-For is not trusted
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=3,
        http=header_timeout_protocol(settings.proxy_header_timeout),
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
    server = uvicorn.Server(server_config)
    server.run(sockets=[sock])
    app.sessions.join()
    pipeline.close(timeout=options.stop_timeout)  # the sessions still open, then the shared sinks
    sys.stderr.flush()
