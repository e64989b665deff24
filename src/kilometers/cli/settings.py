"""``km config``: every setting, its effective value and where that value came from."""

from __future__ import annotations

import click

from .. import config
from .common import echo_json, fail


def _value(name: str, value: object) -> str:
    if name == "db_url":
        from ..store import db

        return db.display_url(value if isinstance(value, str) else None)  # never a password
    return config.shown(name, value)


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per setting.")
@click.option(
    "--markdown", is_flag=True, help="The table of every setting (as in docs/configuration.md) and exit."
)
def config_cmd(as_json: bool, markdown: bool) -> None:
    """Show every setting: its value and where it came from (flags > environment > config file >
    defaults). Secrets are shown only as set or unset."""
    if markdown:
        click.echo(config.markdown_table(), nl=False)
        return
    try:
        settings, origins = config.resolve()
    except config.ConfigError as exc:
        fail(str(exc), 2)
    rows = [
        (spec, _value(spec.name, getattr(settings, spec.name)), origins[spec.name]) for spec in config.SPECS
    ]
    if as_json:
        for spec, value, origin in rows:
            echo_json(
                {
                    "setting": f"{spec.section}.{spec.key}",
                    "variable": spec.env,
                    "value": value,
                    "from": origin,
                }
            )
        return
    width = max(len(f"{spec.section}.{spec.key}") for spec in config.SPECS)
    value_width = min(40, max(len(value) for _, value, _ in rows))
    for spec, value, origin in rows:
        click.echo(f"{spec.section + '.' + spec.key:<{width}}  {value:<{value_width}}  {origin}")
