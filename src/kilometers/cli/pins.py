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


PINS_KEY = "pins_public_key"
"""``sync_state`` key of the team server's pin-signing public key, pinned per server URL."""
KEY_EXIT = 3
"""Exit status when the pin set is refused: a bad signature or a changed server key."""


def _fetch_pin_set(api_url: str, api_key: str) -> dict[str, str]:
    import httpx

    url = api_url.rstrip("/") + "/api/v1/pins"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    except httpx.HTTPError as exc:
        fail(f"cannot fetch the team's pin set from {url}: {exc}")
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except Exception:
            message = response.text[:200]
        fail(f"{url} answered {response.status_code}: {message}")
    try:
        body = response.json()
    except ValueError:
        body = None
    fields = ("algorithm", "public_key", "pin_set", "signature")
    if not isinstance(body, dict) or not all(isinstance(body.get(f), str) for f in fields):
        fail(f"{url} did not answer with a pin set (is it a km team server?)", KEY_EXIT)
    if body["algorithm"] != "Ed25519":
        fail(f"{url} signs its pin set with {body['algorithm']!r}; km accepts Ed25519 only", KEY_EXIT)
    return {f: body[f] for f in fields}


def _verified(answer: dict[str, str], api_url: str) -> tuple[bytes, dict[str, Any]]:
    """(the raw public key, the pin set) once the signature checks out; refuses otherwise."""
    import base64
    import binascii

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        public = base64.b64decode(answer["public_key"], validate=True)
        signature = base64.b64decode(answer["signature"], validate=True)
        Ed25519PublicKey.from_public_bytes(public).verify(signature, answer["pin_set"].encode())
        pin_set = orjson.loads(answer["pin_set"])
    except (InvalidSignature, ValueError, binascii.Error):
        fail(
            f"the pin set from {api_url} has a bad signature: refused, the local pins are unchanged", KEY_EXIT
        )
    if (
        not isinstance(pin_set, dict)
        or pin_set.get("version") != 1
        or not isinstance(pin_set.get("servers"), list)
    ):
        fail(f"the pin set from {api_url} is of an unknown version; update km", KEY_EXIT)
    return public, pin_set


def _local_identity(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity `km monitor` computes on this machine for the server the team saw."""
    import os

    from ..model import Session
    from ..security import server_identity

    if isinstance(identity.get("command"), list):
        session = Session(command=[str(c) for c in identity["command"]], cwd=os.getcwd())
    else:
        session = Session(command=[str(identity.get("url") or "")], cwd=os.getcwd(), transport="http")
    session.server = {"name": identity.get("server_name")}
    return server_identity(session)


def _write_team_pins(engine: Any, pin_set: dict[str, Any], api_url: str) -> tuple[int, int]:
    """The approved definitions as this machine's pins (servers, tools written). A tool pinned
    here with another definition takes the team's: the next listing that differs is a change."""
    from sqlalchemy import select

    from ..analysis import pin_of
    from ..security import identity_key
    from ..store.db import upsert
    from ..store.schema import LOCAL_ORG, pins

    servers = [s for s in pin_set["servers"] if isinstance(s, dict) and isinstance(s.get("identity"), dict)]
    servers.sort(key=lambda s: str(s.get("approved_at") or ""))  # the newest approval of a server wins
    tools_written = 0
    keys: set[str] = set()
    with engine.begin() as conn:
        for server in servers:
            team_identity = server["identity"]
            identity = _local_identity(team_identity)
            key = identity_key(identity)
            row = conn.execute(
                select(pins.c.server, pins.c.info, pins.c.data).where(
                    pins.c.org_id == LOCAL_ORG, pins.c.server_key == key
                )
            ).first()
            state = orjson.loads(row.data) if row else {}
            state = state if "pins" in state else {"pins": state}  # a bare pins dict (older rows)
            state.setdefault("pending", {})
            tools = server.get("tools")
            if not isinstance(tools, dict):
                tools = {}
            for name, definition in tools.items():
                if not isinstance(definition, dict):
                    continue
                tool = str(definition.get("name") or name)
                state["pins"][tool] = pin_of(definition)
                state["pending"].pop(tool, None)
                tools_written += 1
            info = orjson.loads(row.info) if row and row.info else {}
            label = team_identity.get("server_name") or (row.server if row else "server")
            names = list(dict.fromkeys([*(info.get("names") or []), label]))
            team = {
                "api_url": api_url,
                "server_key": server.get("key"),
                "server_version": team_identity.get("server_version"),
                "approved_at": server.get("approved_at"),
            }
            info = {
                **info,
                "identity": identity,
                "names": names,
                "clients": info.get("clients") or [],
                "team": team,
            }
            stmt = upsert(conn, pins).values(
                org_id=LOCAL_ORG,
                server_key=key,
                server=row.server if row else str(label)[:200],
                info=orjson.dumps(info).decode(),
                data=orjson.dumps(state).decode(),
                updated_ns=time.time_ns(),
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["org_id", "server_key"],
                    set_={c: stmt.excluded[c] for c in ("info", "data", "updated_ns")},
                )
            )
            keys.add(key)
    return len(keys), tools_written


@pins_group.command("sync")
@click.option("--api-url", help="Team server (default: from the config or KM_API_URL).")
@click.option(
    "--trust-new-key",
    is_flag=True,
    help="Accept a signing key other than the one pinned (only after checking its fingerprint "
    "with the server's operator).",
)
@db_option
def pins_sync(api_url: str | None, trust_new_key: bool, db_url: str | None) -> None:
    """Fetch the team's approved tool definitions, check their signature, and pin them here: a
    server that later shows this machine another definition raises the usual change finding.

    The server's public key is pinned on first use (its fingerprint is printed); a pin set signed
    with another key, or whose signature does not verify, is refused (exit status 3)."""
    from sqlalchemy import select

    from .. import config
    from ..server.signing import fingerprint
    from ..store.db import upsert
    from ..store.schema import sync_state

    try:
        settings = config.load({"db_url": db_url, "api_url": api_url})
    except config.ConfigError as exc:
        fail(str(exc), 2)
    if not (settings.api_url and settings.api_key):
        fail(
            "no team server is configured: run `km init --api-url URL --api-key KEY` "
            "(or set KM_API_URL and KM_API_KEY)",
            2,
        )
    target = settings.api_url
    answer = _fetch_pin_set(target, settings.api_key)
    engine = open_engine(db_url)
    with engine.connect() as conn:
        pinned = conn.execute(
            select(sync_state.c.value).where(sync_state.c.target == target, sync_state.c.key == PINS_KEY)
        ).scalar()
    public, pin_set = _verified(answer, target)
    shown = fingerprint(public)
    if pinned is not None and pinned != answer["public_key"]:
        import base64

        was = fingerprint(base64.b64decode(pinned))
        if not trust_new_key:
            fail(
                f"the signing key of {target} changed (pinned {was}, now {shown}): its pin set is refused; "
                "if its operator replaced the key, check the new fingerprint with them and run "
                "`km pins sync --trust-new-key`",
                KEY_EXIT,
            )
        click.echo(f"replacing the pinned signing key of {target} ({was}) by {shown}", err=True)
    servers, tools = _write_team_pins(engine, pin_set, target)
    if pinned != answer["public_key"]:
        with engine.begin() as conn:
            stmt = upsert(conn, sync_state).values(target=target, key=PINS_KEY, value=answer["public_key"])
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["target", "key"], set_={"value": stmt.excluded.value}
                )
            )
        if pinned is None:
            click.echo(f"pinned the signing key of {target} on first use: {shown}")
    click.echo(
        f"verified the team's pin set ({shown}): {tools} tool definition(s) of {servers} server(s) pinned"
    )
