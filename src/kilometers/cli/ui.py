"""``km ui``: the dashboard over the local store, for one user, on loopback only.

A random token rides in the fragment of the URL it opens (``/#token=…``, which browsers never
send to a server); the dashboard keeps it in its origin's storage and sends it as the
``X-KM-Token`` header. No cookie: a browser would send that to every port of 127.0.0.1. Without
the token no data is served, and any Host or Origin other than this loopback address is refused
(the class of hole behind CVE-2025-49596 in the MCP Inspector's local proxy).
"""

from __future__ import annotations

import secrets
import socket
import webbrowser

import click

from .. import config
from .common import fail, freeze_startup_heap


@click.command("ui")
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0 picks a free port."
)
@click.option("--open/--no-open", "open_browser", default=True, help="Open the dashboard in a browser.")
@click.option("--db", "db_url", help="Store URL (default: the local SQLite store).")
def ui_cmd(port: int, open_browser: bool, db_url: str | None) -> None:
    """Open the dashboard on your local recordings (127.0.0.1 only, token-protected)."""
    import uvicorn

    from ..server.app import ServerSettings, create_app
    from ..store import db

    try:
        settings = config.load({"db_url": db_url})
    except config.ConfigError as exc:
        fail(str(exc), 2)
    try:
        db.open_store(settings.db_url).dispose()  # the local store migrates itself
    except Exception as exc:
        fail(f"cannot open the store at {db.resolve_url(settings.db_url)}: {exc}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port}: {exc} (try --port 0)")
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    app = create_app(
        settings=ServerSettings(
            db_url=settings.db_url,
            local_token=token,
            allowed_hosts={f"127.0.0.1:{port}", f"localhost:{port}"},
            rate_per_second=0,
            retention_interval_seconds=0,
        )
    )
    url = f"http://127.0.0.1:{port}/#token={token}"
    click.echo(f"km ui: {url}", err=True)
    click.echo("(this link is your key to the dashboard; press Ctrl-C to stop)", err=True)
    if open_browser:
        webbrowser.open(url)
    freeze_startup_heap()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=3))
    server.run(sockets=[sock])
