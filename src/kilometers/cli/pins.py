"""``km pins list|diff|approve``: the tool definitions km pinned per server (rug-pull detection)."""

from __future__ import annotations

import time
from typing import Any

import click
import orjson

from .common import db_option, echo_json, fail, open_engine


def _rows(engine: Any) -> dict[str, dict[str, Any]]:
    from sqlalchemy import select

    from ..store.schema import LOCAL_ORG, pins

    with engine.connect() as conn:
        rows = conn.execute(select(pins.c.server, pins.c.data).where(pins.c.org_id == LOCAL_ORG)).all()
    return {name: orjson.loads(data) for name, data in rows}


@click.group("pins")
def pins_group() -> None:
    """Pinned tool definitions: km trusts a server's tools on first sight and flags any change."""


@pins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per server.")
@db_option
def pins_list(as_json: bool, db_url: str | None) -> None:
    """Servers, their pinned tools, and tools whose definition changed since."""
    from ..analysis import Pins

    engine = open_engine(db_url)
    for server, state in sorted(_rows(engine).items()):
        pins = Pins.from_state(state)
        if as_json:
            echo_json({"server": server, "tools": sorted(pins.to_dict()), "changed": sorted(pins.pending)})
            continue
        changed = pins.pending
        mark = click.style(f"{len(changed)} changed", fg="red", bold=True) if changed else "no changes"
        click.echo(f"{click.style(server, bold=True)}: {len(pins.to_dict())} tools pinned, {mark}")
        for name in sorted(changed):
            click.echo(f"  ✗ {name}: {', '.join(pins.changed_fields(name)) or 'definition'} changed")


@pins_group.command("diff")
@click.argument("server")
@db_option
def pins_diff(server: str, db_url: str | None) -> None:
    """What changed in SERVER's tools since they were pinned (exit 1 when something did)."""
    from ..analysis import Pins

    engine = open_engine(db_url)
    state = _rows(engine).get(server)
    if state is None:
        fail(f"no pinned tools for server {server!r} (see `km pins list`)")
    pins = Pins.from_state(state)
    if not pins.pending:
        click.echo(f"{server}: every tool matches its pin")
        return
    for name in sorted(pins.pending):
        click.echo(f"{name}: {', '.join(pins.changed_fields(name)) or 'definition'} changed")
    raise SystemExit(1)


@pins_group.command("approve")
@click.argument("server")
@click.option("--tool", help="Approve only this tool (default: every changed tool of SERVER).")
@db_option
def pins_approve(server: str, tool: str | None, db_url: str | None) -> None:
    """Accept SERVER's changed tool definitions as the new pins."""
    from sqlalchemy import update

    from ..analysis import Pins
    from ..store.schema import LOCAL_ORG, pins

    engine = open_engine(db_url)
    state = _rows(engine).get(server)
    if state is None:
        fail(f"no pinned tools for server {server!r} (see `km pins list`)")
    current = Pins.from_state(state)
    if tool is not None and tool not in current.pending:
        fail(f"{tool!r} has no pending change on {server!r}")
    names = [tool] if tool else sorted(current.pending)
    current.approve(tool)
    with engine.begin() as conn:
        conn.execute(
            update(pins)
            .where(pins.c.org_id == LOCAL_ORG, pins.c.server == server)
            .values(data=orjson.dumps(current.state()).decode(), updated_ns=time.time_ns())
        )
    click.echo(f"approved {len(names)} tool(s) of {server}: {', '.join(names) or '-'}")
