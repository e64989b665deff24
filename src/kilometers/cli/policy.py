"""``km policy check FILE``: validate a policy file without running anything."""

from __future__ import annotations

from pathlib import Path

import click

from .common import POLICY_EXIT, fail


@click.group("policy")
def policy_group() -> None:
    """Policy files: `log` or `block` mode, tool lists, analysis settings."""


@policy_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def policy_check(file: str) -> None:
    """Check FILE as `km monitor --policy FILE` would load it: `ok: ...` and exit status 0, or
    the file, line and problem and exit status 78."""
    from ..security import Policy, PolicyError

    try:
        policy = Policy.load(Path(file).expanduser())
    except PolicyError as exc:
        fail(str(exc), POLICY_EXIT)
    click.echo(f"ok: {policy.summary()}")
