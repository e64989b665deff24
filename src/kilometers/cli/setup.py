"""``km init`` (write the config file) and ``km db upgrade`` (migrate a store)."""

from __future__ import annotations

import sys

import click

from .. import config, paths
from .common import db_failure, db_option, fail


@click.command("init")
@click.option("--db", "db_url", help="Store URL to use by default.")
@click.option(
    "--exclude-ping/--include-ping", default=None, help="Do not record ping requests and replies (or do)."
)
@click.option(
    "--payload-limit",
    type=click.IntRange(min=0),
    help="Keep at most this many bytes of each stored payload (0 = all).",
)
@click.option("--api-url", help="Team server (`km serve`) to forward events to, e.g. https://km.example.com.")
@click.option(
    "--api-key",
    help="Ingest API key for that server (km_live_…); `-` reads it from stdin, out of the shell's "
    "history. The config file is then made private (0600).",
)
@click.option("--upload-batch-size", type=click.IntRange(min=1), help="Events per upload request at most.")
@click.option(
    "--upload-interval", type=click.FloatRange(min=0, min_open=True), help="Seconds between uploads."
)
@click.option("--force", is_flag=True, help="Replace an existing config file instead of updating it.")
def init_cmd(
    db_url: str | None,
    exclude_ping: bool | None,
    payload_limit: int | None,
    api_url: str | None,
    api_key: str | None,
    upload_batch_size: int | None,
    upload_interval: float | None,
    force: bool,
) -> None:
    """Write km's config file (TOML) in the platform config dir (or $KM_HOME).

    With --api-url and --api-key, `km monitor` also forwards every event to that team server
    (`km sync` uploads the backlog now, `km status` shows it). Pass --api-url "" to stop forwarding.
    """
    path = paths.config_file()
    try:
        # only the file's own values: KM_* variables of this shell must not be written into it
        current = config.Settings() if force else config.Settings(**config.read_file(path))
    except config.ConfigError as exc:
        fail(f"{exc} (use --force to replace it)", 2)
    try:
        if api_url is not None:
            current.api_url = config.coerce("api_url", api_url, "--api-url")
        if api_key == "-":
            api_key = sys.stdin.readline().strip()
            if not api_key:  # an empty pipe must not erase the saved key (--api-key "" does that)
                fail('--api-key -: stdin was empty, nothing was changed (pipe the key in; --api-key "" '
                     "removes the saved key)", 2)  # fmt: skip
        if api_key is not None:
            current.api_key = config.coerce("api_key", api_key, "--api-key")
    except config.ConfigError as exc:
        fail(str(exc), 2)
    if db_url is not None:
        current.db_url = db_url
    if exclude_ping is not None:
        current.exclude_ping = exclude_ping
    if payload_limit is not None:
        current.payload_limit = payload_limit
    if upload_batch_size is not None:
        current.upload_batch_size = upload_batch_size
    if upload_interval is not None:
        current.upload_interval = upload_interval
    written = config.write_file(current, path)
    click.echo(f"wrote {written}")
    click.echo(f"events are stored in {current.db_url or paths.default_db_path()}")
    if current.api_url and current.api_key:
        from ..sync.client import key_hint

        click.echo(f"and forwarded to {current.api_url} (key {key_hint(current.api_key)})")
    elif current.api_url or current.api_key:
        missing = "--api-key" if current.api_url else "--api-url"
        click.echo(f"nothing is forwarded to a team server until {missing} is set too")


@click.group("db")
def db_group() -> None:
    """Manage the store's schema."""


@db_group.command("upgrade")
@db_option
def db_upgrade(db_url: str | None) -> None:
    """Migrate the store's schema to this version of km."""
    from ..store import db

    settings = config.load({"db_url": db_url})
    engine = db.make_engine(settings.db_url)
    try:
        db.upgrade(engine)
    except Exception as exc:
        fail(db_failure("cannot migrate the store", exc, settings.db_url))
    click.echo(f"schema at revision {db.current_revision(engine)} ({db.display_url(settings.db_url)})")
