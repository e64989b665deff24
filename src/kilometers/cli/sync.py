"""``km sync`` (upload the backlog to the team server now) and ``km status`` (config, store, backlog)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from .. import config, paths
from .common import db_option, echo_json, fail, open_engine

NOT_CONFIGURED = (
    "no team server is configured: run `km init --api-url URL --api-key KEY` "
    "(or set KM_API_URL and KM_API_KEY)"
)


def _settings(db_url: str | None, api_url: str | None = None) -> config.Settings:
    try:
        return config.load({"db_url": db_url, "api_url": api_url})
    except config.ConfigError as exc:
        fail(str(exc), 2)


def _store_location(url: str | None) -> str:
    from sqlalchemy.engine import make_url

    from ..store import db

    resolved = db.resolve_url(url)
    try:
        return make_url(resolved).render_as_string(hide_password=True)
    except Exception:
        return resolved.split("@")[-1]


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _when(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "never"
    return datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@click.command("sync")
@db_option
@click.option("--api-url", help="Team server to upload to (default: from the config or KM_API_URL).")
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Retries in a row when the server is unreachable or busy, before giving up.",
)
def sync_cmd(db_url: str | None, api_url: str | None, retries: int) -> None:
    """Upload every event not yet on the team server, now, with a progress bar.

    Safe to run at any time, also while `km monitor` runs: the server stores each event once.
    The API key comes from the config file or KM_API_KEY, never from the command line.
    """
    settings = _settings(db_url, api_url)
    if not (settings.api_url and settings.api_key):
        fail(NOT_CONFIGURED, 2)
    from ..sync.client import AuthError, QuotaExceeded, TransientError, UploadError
    from ..sync.uploader import Uploader

    engine = open_engine(settings.db_url)
    with Uploader(engine, settings.api_url, settings.api_key, settings.upload_batch_size) as uploader:
        backlog = uploader.backlog()
        kept = (
            f"the {_plural(backlog.events, 'event')} not uploaded are kept in the local store; "
            if backlog.events
            else ""
        )
        try:
            if backlog.events == 0 and backlog.sessions == 0:
                uploader.check()  # nothing to send, but say so only if the server and key work
                click.echo(f"nothing to upload: {settings.api_url} has every event of this store")
                return
            if backlog.events == 0:
                result = uploader.sync(retries=retries)
            else:
                with click.progressbar(
                    length=backlog.events,
                    label=f"uploading to {settings.api_url}",
                    file=sys.stderr,
                    show_pos=True,
                ) as bar:
                    result = uploader.sync(progress=bar.update, retries=retries)
        except AuthError as exc:
            fail(f"{exc}.\n{kept}check the key (`km status` shows its prefix) and set a valid one with "
                 "`km init --api-key KEY` or KM_API_KEY")  # fmt: skip
        except QuotaExceeded as exc:
            fail(f"{exc}.\n{kept}ask the server's admin to raise the limit, then run `km sync` again")
        except TransientError as exc:
            fail(f"{exc}.\n{kept}run `km sync` again when the server is reachable")
        except UploadError as exc:
            fail(f"{exc}.\n{kept}check the API URL (`km status`) and the server's version")
        except Exception as exc:  # the local store, or a bug: one line, never a traceback
            fail(f"the upload stopped ({exc!r}).\n{kept}run `km sync` again; if this repeats, report it")
    line = f"uploaded {_plural(result.events, 'event')} to {settings.api_url}"
    details = []
    if result.duplicates:
        details.append(f"{result.duplicates} already there")
    if result.rejected:
        details.append(f"{result.rejected} refused by the server")
    if result.sessions:
        details.append(_plural(result.sessions, "session update"))
    click.echo(line + (f" ({'; '.join(details)})" if details else ""))
    for message in result.messages[:5]:
        click.echo(f"km: {message}", err=True)
    if result.rejected:
        sys.exit(1)


@click.command("status")
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status_cmd(db_url: str | None, as_json: bool) -> None:
    """Show the config file, the store and what is waiting to be uploaded, per server.

    Never shows the API key, only its first characters.
    """
    settings = _settings(db_url)
    config_path = paths.config_file()
    info: dict[str, Any] = {
        "config_file": str(config_path),
        "config_file_exists": config_path.exists(),
        "store": _store_location(settings.db_url),
        "api_url": settings.api_url,
        "api_key": None,
        "upload_batch_size": settings.upload_batch_size,
        "upload_interval": settings.upload_interval,
        "backlog": None,
    }
    backlog = None
    if settings.api_url and settings.api_key:
        from ..sync.client import key_hint
        from ..sync.uploader import Uploader

        info["api_key"] = key_hint(settings.api_key)
        engine = open_engine(settings.db_url)
        with Uploader(engine, settings.api_url, settings.api_key, settings.upload_batch_size) as uploader:
            backlog = uploader.backlog()
        info["backlog"] = {
            "events": backlog.events,
            "by_server": backlog.by_server,
            "sessions": backlog.sessions,
            "rejected_events": backlog.rejected,
            "last_upload_ns": backlog.last_upload_ns,
            "quota_exceeded": (
                {"since_ns": backlog.quota_ns, "message": backlog.quota_message}
                if backlog.quota_ns is not None
                else None
            ),
        }
    if as_json:
        echo_json(info)
        return
    exists = "" if info["config_file_exists"] else " (not created yet: `km init`)"
    click.echo(f"config file:  {config_path}{exists}")
    click.echo(f"store:        {info['store']}")
    if backlog is None:
        if settings.api_url or settings.api_key:
            missing = "API key (KM_API_KEY)" if settings.api_url else "API URL (KM_API_URL)"
            click.echo(f"team server:  {settings.api_url or '-'} — not forwarding: no {missing}")
        else:
            click.echo("team server:  none (events stay local; `km init --api-url URL --api-key KEY`)")
        return
    click.echo(f"team server:  {settings.api_url} (key {info['api_key']})")
    click.echo(
        f"uploads:      up to {settings.upload_batch_size} events every {settings.upload_interval:g} s"
    )
    click.echo(f"last upload:  {_when(backlog.last_upload_ns)}")
    if backlog.events == 0 and backlog.sessions == 0:
        click.echo("backlog:      none, everything is uploaded")
    else:
        extra = f", {_plural(backlog.sessions, 'session update')}" if backlog.sessions else ""
        click.echo(f"backlog:      {_plural(backlog.events, 'event')}{extra} (`km sync` uploads them now)")
        width = max((len(name) for name in backlog.by_server), default=0)
        for name, count in backlog.by_server.items():
            click.echo(f"  {name:<{width}}  {count}")
    if backlog.rejected:
        click.echo(f"refused:      {_plural(backlog.rejected, 'event')} refused by the server (kept locally)")
    if backlog.quota_ns is not None:
        click.echo(
            f"over limit:   since {_when(backlog.quota_ns)}: {backlog.quota_message} Events are kept "
            "locally; `km sync` uploads them once the month ends or the plan's limit is raised"
        )
