"""``km doctor``: check the installation, config, store, wrapped clients, servers and team server.

Every line is ✓ (fine), ✗ (broken: exit status 1), ! (worth a look) or - (for information);
the ✗ and ! lines say how to fix what they found. The checks are kilometers.diagnostics.
"""

from __future__ import annotations

import click

from ..diagnostics import Check, diagnose

MARKS = {"ok": ("✓", "green"), "fail": ("✗", "red"), "warn": ("!", "yellow"), "info": ("-", None)}


def _print(title: str, checks: list[Check]) -> None:
    click.echo(click.style(title, bold=True))
    for check in checks:
        mark, colour = MARKS[check.status]
        click.echo(f"  {click.style(mark, fg=colour)} {check.text}")
        if check.fix and check.status in ("fail", "warn"):
            click.echo(f"      fix: {check.fix}")


@click.command("doctor")
@click.option(
    "--offline", is_flag=True, help="Skip the checks that use the network (remote servers, team server)."
)
def doctor_cmd(offline: bool) -> None:
    """Check km's installation, config, store, wrapped clients, servers and team server.

    Exits with status 1 when a check fails (✗); each failure says how to fix it.
    """
    sections = diagnose(offline)
    for title, checks in sections:
        _print(title, checks)
    failed = sum(1 for _title, checks in sections for check in checks if check.status == "fail")
    click.echo(f"{failed} problem{'s' if failed != 1 else ''} found" if failed else "all checks passed")
    if failed:
        raise SystemExit(1)
