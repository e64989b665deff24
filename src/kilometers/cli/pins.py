"""``km pins list|diff|approve``: the tool definitions km pinned per server (rug-pull detection).

A server is what it runs (its command line or URL, and the name it gives itself), not what it
is called: SERVER may be any name it ran under, or the start of its id (``km pins list``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import click
import orjson

from .common import db_option, echo_json, fail, open_engine


@dataclass
class _Row:
    key: str
    name: str
    info: dict[str, Any]
    state: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys([*(self.info.get("names") or []), self.name]))

    @property
    def runs(self) -> str:
        """What the server runs, for people: its command line or URL, and its own name."""
        identity = self.info.get("identity") or {}
        where = identity.get("url") or " ".join(identity.get("command") or []) or "(pinned by name)"
        own = identity.get("server_name")
        return f"{where} ({own})" if own else where


def _rows(engine: Any) -> list[_Row]:
    from sqlalchemy import select

    from ..store.schema import LOCAL_ORG, pins

    with engine.connect() as conn:
        rows = conn.execute(
            select(pins.c.server_key, pins.c.server, pins.c.info, pins.c.data)
            .where(pins.c.org_id == LOCAL_ORG)
            .order_by(pins.c.server, pins.c.server_key)
        ).all()
    return [_Row(k, n, orjson.loads(i) if i else {}, orjson.loads(d)) for k, n, i, d in rows]


def _find(rows: list[_Row], server: str) -> _Row:
    """The one server called ``server`` (any name it ran under) or whose id starts with it."""
    found = [r for r in rows if server in r.names] or [r for r in rows if r.key.startswith(server.lower())]
    if not found:
        fail(f"no pinned tools for server {server!r} (see `km pins list`)")
    if len(found) > 1:
        which = "; ".join(f"{r.key[:12]}: {r.runs}" for r in found)
        fail(f"{server!r} names {len(found)} different servers ({which}); give the id instead")
    return found[0]


def _colliding(row: _Row, collisions: dict[str, list[str]], rows: list[_Row]) -> dict[str, list[str]]:
    """``tool -> names of the servers it collides with`` (``row``'s own name: listed twice)."""
    labels = {r.key: r.name for r in rows}
    return {t: [labels.get(s, row.name if s == "" else s) for s in v] for t, v in collisions.items()}


@click.group("pins")
def pins_group() -> None:
    """Pinned tool definitions: km trusts a server's tools on first sight and flags any change."""


@pins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per server.")
@db_option
def pins_list(as_json: bool, db_url: str | None) -> None:
    """Servers, their pinned tools, tools whose definition changed since, and name collisions."""
    from ..analysis import Pins

    engine = open_engine(db_url)
    rows = _rows(engine)
    for row in rows:
        pins = Pins.from_state(row.state)
        collisions = _colliding(row, pins.collisions, rows)
        if as_json:
            echo_json(
                {
                    "server": row.name,
                    "id": row.key,
                    "names": row.names,
                    "identity": row.info.get("identity"),
                    "tools": sorted(pins.to_dict()),
                    "changed": sorted(pins.pending),
                    "collisions": collisions,
                }
            )
            continue
        changed = pins.pending
        mark = click.style(f"{len(changed)} changed", fg="red", bold=True) if changed else "no changes"
        more = f", {len(collisions)} colliding" if collisions else ""
        click.echo(f"{click.style(row.name, bold=True)}: {len(pins.to_dict())} tools pinned, {mark}{more}")
        also = [n for n in row.names if n != row.name]
        click.echo(f"  id {row.key[:12]}: {row.runs}" + (f"; also run as {', '.join(also)}" if also else ""))
        for name in sorted(changed):
            click.echo(f"  ✗ {name}: {', '.join(pins.changed_fields(name)) or 'definition'} changed")
        for name, servers in sorted(collisions.items()):
            click.echo(f"  ! {name}: name also offered by {', '.join(servers)}")


@pins_group.command("diff")
@click.argument("server")
@db_option
def pins_diff(server: str, db_url: str | None) -> None:
    """What changed in SERVER's tools since they were pinned, and which of its tool names
    other servers offer too (exit 1 when either)."""
    from ..analysis import Pins

    engine = open_engine(db_url)
    rows = _rows(engine)
    row = _find(rows, server)
    pins = Pins.from_state(row.state)
    if not pins.pending and not pins.collisions:
        click.echo(f"{row.name}: every tool matches its pin")
        return
    for name in sorted(pins.pending):
        click.echo(f"{name}: {', '.join(pins.changed_fields(name)) or 'definition'} changed")
    for name, servers in sorted(_colliding(row, pins.collisions, rows).items()):
        click.echo(f"{name}: name also offered by {', '.join(servers)}")
    raise SystemExit(1)


@pins_group.command("approve")
@click.argument("server")
@click.option("--tool", help="Approve only this tool (default: every changed or colliding tool of SERVER).")
@db_option
def pins_approve(server: str, tool: str | None, db_url: str | None) -> None:
    """Accept SERVER's changed tool definitions as the new pins, and its name collisions with
    the servers it collides with now (a collision with another server later is reported)."""
    from sqlalchemy import update

    from ..analysis import Pins
    from ..store.schema import LOCAL_ORG, pins

    engine = open_engine(db_url)
    row = _find(_rows(engine), server)
    current = Pins.from_state(row.state)
    if tool is not None and tool not in current.pending and tool not in current.collisions:
        fail(f"{tool!r} has no pending change or collision on {row.name!r}")
    names = current.approve(tool)
    with engine.begin() as conn:
        conn.execute(
            update(pins)
            .where(pins.c.org_id == LOCAL_ORG, pins.c.server_key == row.key)
            .values(data=orjson.dumps(current.state()).decode(), updated_ns=time.time_ns())
        )
    click.echo(f"approved {len(names)} tool(s) of {row.name}: {', '.join(names) or '-'}")
