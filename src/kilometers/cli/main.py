"""The ``km`` command: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import click

from .. import __version__
from .agent import agent_group
from .doctor import doctor_cmd
from .export import export_cmd, import_cmd
from .monitor import monitor
from .pins import pins_group
from .policy import policy_group
from .proxy import proxy_cmd
from .read import events_cmd, findings_cmd, sessions_cmd, show_cmd, stats_cmd, tail_cmd
from .replay import replay_cmd
from .selfupdate import completion_cmd, self_update_cmd
from .server import admin_group, serve_cmd
from .settings import config_cmd
from .setup import db_group, init_cmd
from .sync import status_cmd, sync_cmd
from .ui import ui_cmd
from .wrap import unwrap_cmd, wrap_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="km")
def cli() -> None:
    """Kilometers: see, debug and secure MCP traffic.

    Put `km monitor --` in front of an MCP server's command in your client's config;
    then read what happened with `km sessions`, `km events`, `km tail` and `km stats`.
    """
    from ..log import setup

    setup()  # library modules log; this one handler prints their lines on stderr


cli.add_command(monitor)
cli.add_command(proxy_cmd)
cli.add_command(sessions_cmd)
cli.add_command(events_cmd)
cli.add_command(show_cmd)
cli.add_command(tail_cmd)
cli.add_command(stats_cmd)
cli.add_command(findings_cmd)
cli.add_command(pins_group)
cli.add_command(policy_group)
cli.add_command(init_cmd)
cli.add_command(db_group)
cli.add_command(serve_cmd)
cli.add_command(admin_group)
cli.add_command(ui_cmd)
cli.add_command(export_cmd)
cli.add_command(import_cmd)
cli.add_command(replay_cmd)
cli.add_command(sync_cmd)
cli.add_command(status_cmd)
cli.add_command(config_cmd)
cli.add_command(wrap_cmd)
cli.add_command(unwrap_cmd)
cli.add_command(doctor_cmd)
cli.add_command(agent_group)
cli.add_command(self_update_cmd)
cli.add_command(completion_cmd)


def main() -> None:
    cli()
