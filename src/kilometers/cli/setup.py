"""``km init`` (write the config file) and ``km db upgrade`` (migrate a store)."""

from __future__ import annotations

import click

from .. import config, paths
from .common import db_option, fail


@click.command("init")
@click.option("--db", "db_url", help="Store URL to use by default.")
@click.option("--exclude-ping/--include-ping", default=None)
@click.option("--payload-limit", type=click.IntRange(min=0))
@click.option("--force", is_flag=True, help="Replace an existing config file instead of updating it.")
def init_cmd(db_url: str | None, exclude_ping: bool | None, payload_limit: int | None, force: bool) -> None:
    """Write km's config file (TOML) in the platform config dir (or $KM_HOME)."""
    path = paths.config_file()
    try:
        current = config.Settings() if force else config.load(path=path)
    except config.ConfigError as exc:
        fail(f"{exc} (use --force to replace it)", 2)
    if db_url is not None:
        current.db_url = db_url
    if exclude_ping is not None:
        current.exclude_ping = exclude_ping
    if payload_limit is not None:
        current.payload_limit = payload_limit
    written = config.write_file(current, path)
    click.echo(f"wrote {written}")
    click.echo(f"events are stored in {current.db_url or paths.default_db_path()}")


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
        fail(f"migration failed: {exc}")
    click.echo(f"schema at revision {db.current_revision(engine)} ({db.resolve_url(settings.db_url)})")
