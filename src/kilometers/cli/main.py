"""The ``km`` command: a thin layer that parses arguments and calls the library.

Each command's module is imported when that command runs (``km --help`` lists them from
:data:`COMMANDS`, whose summaries tests/test_cli_lazy.py keeps equal to the commands' own)."""

from __future__ import annotations

import importlib

import click

from .. import __version__

COMMANDS: dict[str, tuple[str, str, str]] = {
    "admin": ("server", "admin_group", "Manage organizations and API keys on a team server's database."),
    "agent": (
        "agent",
        "agent_group",
        "The background recorder of this data directory (started by the first `km monitor`).",
    ),
    "completion": ("selfupdate", "completion_cmd", "Print the shell completion script for km."),
    "config": (
        "settings",
        "config_cmd",
        "Show every setting: its value and where it came from (flags > environment > config file >",
    ),
    "db": ("setup", "db_group", "Manage the store's schema."),
    "doctor": (
        "doctor",
        "doctor_cmd",
        "Check km's installation, config, store, wrapped clients, servers and team server.",
    ),
    "events": ("read", "events_cmd", "List recorded messages (the newest LIMIT, oldest first)."),
    "export": (
        "export",
        "export_cmd",
        "Write recorded sessions and events to a file: jsonl (lossless, for km import), csv or har.",
    ),
    "findings": (
        "read",
        "findings_cmd",
        "List security findings (secrets, personal data, dangerous calls, poisoning, pinning, policy).",
    ),
    "import": ("export", "import_cmd", "Load a `km export --format jsonl` file into the store."),
    "init": ("setup", "init_cmd", "Write km's config file (TOML) in the platform config dir (or $KM_HOME)."),
    "monitor": (
        "monitor",
        "monitor",
        "Run COMMAND as an MCP server, relay stdio unchanged and record every message (with --url",
    ),
    "pins": (
        "pins",
        "pins_group",
        "Pinned tool definitions: km trusts a server's tools on first sight and flags any change.",
    ),
    "policy": (
        "policy",
        "policy_group",
        "Policy files: `log` or `block` mode, tool lists, analysis settings.",
    ),
    "proxy": (
        "proxy",
        "proxy_cmd",
        "Record a remote MCP server's traffic: point the client at km instead of UPSTREAM.",
    ),
    "replay": (
        "replay",
        "replay_cmd",
        "Send SESSION's recorded requests to CMD (after `--`) and compare its answers with the",
    ),
    "self-update": (
        "selfupdate",
        "self_update_cmd",
        "Upgrade km the way it was installed (uv tool, pipx, or install.sh's venv).",
    ),
    "serve": ("server", "serve_cmd", "Run the team server (ingestion and query API)."),
    "sessions": ("read", "sessions_cmd", "List recorded sessions, newest first."),
    "show": ("read", "show_cmd", "Show one event in full, with the request or response it pairs with."),
    "stats": (
        "read",
        "stats_cmd",
        "Per method and tool: calls, errors, latency p50/p95/p99 and bytes (--radar: the deprecation",
    ),
    "status": (
        "sync",
        "status_cmd",
        "Show the config file, the store and what is waiting to be uploaded, per server.",
    ),
    "sync": ("sync", "sync_cmd", "Upload every event not yet on the team server, now, with a progress bar."),
    "tail": ("read", "tail_cmd", "Print the latest messages, one line each; with -f, follow new ones live."),
    "ui": ("ui", "ui_cmd", "Open the dashboard on your local recordings (127.0.0.1 only, token-protected)."),
    "unwrap": (
        "wrap",
        "unwrap_cmd",
        "Undo `km wrap`: give every wrapped server entry back its original command.",
    ),
    "wrap": ("wrap", "wrap_cmd", "Route every MCP server of your clients' configs through `km monitor`."),
}
"""name: (module under kilometers.cli, its attribute, the start of its summary: enough of it for
``km --help``, which cuts it at 80 columns)."""


def _summary(text: str, limit: int) -> str:
    """``text`` cut as click cuts a command's help for the list of commands."""
    return click.Command(None, help=text).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A group whose commands are imported when used, not when ``km`` starts."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, attr, _ = COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = [(name, _summary(COMMANDS[name][2], limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="km")
def cli() -> None:
    """Kilometers: see, debug and secure MCP traffic.

    Put `km monitor --` in front of an MCP server's command in your client's config;
    then read what happened with `km sessions`, `km events`, `km tail` and `km stats`.
    """
    from ..log import setup

    setup()  # library modules log; this one handler prints their lines on stderr


def main() -> None:
    cli()
