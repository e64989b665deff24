"""``km wrap`` and ``km unwrap``: put km in front of every MCP server in the clients' configs, and
take it out again (restoring the original entries exactly)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ..clients import CHOICES, ConfigLocation, find_locations, location_for, state, wrapped_files
from ..clients.entries import EntryError, km_command
from ..clients.rewrite import ConfigFileError, Plan, apply, plan_unwrap, plan_wrap
from ..clients.storeenv import StoreEnvError, Target
from .common import fail

OK, BAD, SAME = "✓", "✗", "·"

client_option = click.option(
    "--client",
    type=click.Choice(CHOICES),
    default="all",
    show_default=True,
    help="Which client's config files to change.",
)
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Change this config file only (its client is guessed from its name unless --client is given).",
)
dry_run_option = click.option("--dry-run", is_flag=True, help="Print the changes as a diff; write nothing.")


def targets(client: str, config_path: Path | None, include_state: bool = False) -> list[ConfigLocation]:
    """The existing config files to work on."""
    if config_path is not None:
        if not config_path.is_file():
            fail(f"{config_path}: no such file", 2)
        return [location_for(config_path, client)]
    candidates = find_locations(client)
    found = [location for location in candidates if location.path.is_file()]
    if include_state:  # files wrapped with --config are unwrapped by a plain `km unwrap` too
        try:
            found += wrapped_files(client, found)
        except state.StateError as exc:
            fail(str(exc))
    if not found:
        looked = "\n  ".join(str(location.path) for location in candidates)
        click.echo(f"no MCP client config file found; looked for:\n  {looked}")
        click.echo("give a file with --config PATH")
    return found


Verbs = dict[str, tuple[str, str]]


def _report(plan: Plan, dry_run: bool, verbs: Verbs) -> None:
    location = plan.location
    click.echo(click.style(f"{location.title}: {location.path}", bold=True))
    if not plan.results:
        click.echo(f"  {verbs['none'][1]}")
    for result in plan.results:
        mark, text = verbs.get(result.action, (BAD, result.action))
        where = f" (project {result.path[1]})" if result.path[0] == "projects" else ""
        detail = f": {result.detail}" if result.detail else ""
        click.echo(f"  {mark} {result.name}{where}: {text}{detail}")
    if dry_run and plan.changed:
        click.echo(plan.diff(), nl=False)


def _run(
    locations: list[ConfigLocation], dry_run: bool, make_plan: Callable[[ConfigLocation], Plan], verbs: Verbs
) -> int:
    failures = 0
    changed = 0
    for location in locations:
        try:
            plan = make_plan(location)
        except (ConfigFileError, state.StateError) as exc:
            click.echo(click.style(f"{location.title}: {location.path}", bold=True))
            click.echo(f"  {BAD} {exc}")
            failures += 1
            continue
        _report(plan, dry_run, verbs)
        failures += sum(1 for result in plan.results if result.action == "skipped")
        if dry_run or not (plan.changed or plan.remove):
            continue
        try:
            backup = apply(plan, location.client)
        except (ConfigFileError, state.StateError) as exc:
            click.echo(f"  {BAD} {exc}")
            failures += 1
            continue
        if backup is not None:
            changed += 1
            click.echo(f"  backup of the previous file: {backup}")
    if dry_run:
        click.echo("dry run: nothing was written")
    elif changed:
        click.echo("restart the clients (or reload their MCP servers) for the change to take effect")
    return failures


@click.command("wrap")
@client_option
@config_option
@dry_run_option
@click.option(
    "--km",
    "km_path",
    type=click.Path(dir_okay=False),
    help="The km executable the clients should run (default: this km's absolute path).",
)
def wrap_cmd(client: str, config_path: Path | None, dry_run: bool, km_path: str | None) -> None:
    """Route every MCP server of your clients' configs through `km monitor`.

    Finds the config files of Claude Desktop, Claude Code, Cursor, VS Code and Windsurf (or the one
    given with --config) and rewrites each server entry to run `km monitor --name NAME -- COMMAND...`
    (remote servers: `km monitor --name NAME --url URL`). Other settings, key order and layout are
    kept; a backup is written next to each file. Running it again changes nothing; `km unwrap`
    restores the original entries exactly.

    Clients start servers with their own, small environment: KM_HOME, KM_DB and KM_DATABASE_URL,
    when set in this shell, go into each entry's env, so that km records into the store this shell
    reads. Run it again after changing them.
    """
    try:
        km = str(Path(km_path).absolute()) if km_path else km_command()
    except EntryError as exc:
        fail(str(exc), 2)
    try:
        target = Target.of_shell()
        data = state.load()
    except (StoreEnvError, state.StateError) as exc:
        fail(str(exc))
    locations = targets(client, config_path)
    verbs = {
        "wrapped": (OK, "now runs through km"),
        "already": (SAME, "already runs through km"),
        "updated": (OK, "already runs through km; now records into the store this shell reads"),
        "skipped": (BAD, "left as it was"),
        "none": (SAME, "no MCP servers in this file"),
    }
    failures = _run(
        locations,
        dry_run,
        lambda location: plan_wrap(location, km, target=target, saved=state.records(data, location.path)),
        verbs,
    )
    if client != "all" and not locations:
        raise SystemExit(1)
    if failures:
        raise SystemExit(1)


@click.command("unwrap")
@client_option
@config_option
@dry_run_option
def unwrap_cmd(client: str, config_path: Path | None, dry_run: bool) -> None:
    """Undo `km wrap`: give every wrapped server entry back its original command.

    An entry that is still what `km wrap` wrote gets its original text back byte for byte (saved
    in km's config dir, never in the client's file); one edited since keeps your edits; one wrapped
    by hand is rebuilt from its `km monitor` command line.
    """
    try:
        data = state.load()
    except state.StateError as exc:
        fail(str(exc))
    locations = targets(client, config_path, include_state=config_path is None)
    verbs = {
        "restored": (OK, "original entry restored"),
        "merged": (OK, "km taken out"),
        "rebuilt": (OK, "km taken out"),
        "skipped": (BAD, "left as it was"),
        "none": (SAME, "no server here runs through km"),
    }
    failures = _run(
        locations, dry_run, lambda location: plan_unwrap(location, state.records(data, location.path)), verbs
    )
    if failures:
        raise SystemExit(1)
