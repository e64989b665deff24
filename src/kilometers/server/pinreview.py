"""The dashboard's Pins view: per server, each pinned tool definition next to the latest one seen,
and approving or rejecting a change, on `km ui` (the local store's pins, as `km pins approve`)
and on `km serve` (the team's approved definitions, as ``POST /api/v1/servers/{key}/approve``).

One shape for both: a tool has a ``pinned`` definition (local: the one trusted on first use or
approved since; team: the approved one, else the first one any developer was shown) and a
``latest`` one (the last seen), and a ``status``:

===========  ====================================================================================
pinned       the latest definition is the pinned one
changed      the latest definition differs: approve it (it becomes the pin) or reject it
rejected     the change was rejected: the pin stays, and a listing with the change is flagged again
removed      the tool is no longer listed (local pins only)
===========  ====================================================================================

Local pins keep hashes, not definitions: a definition is found again in the stored
``tools/list`` answers by its pin (:func:`~kilometers.analysis.pin_of`); ``null`` when none is
stored any more (retention)."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, select, update

from ..analysis import Pins, pin_of
from ..analysis.pinning import PIN_FIELDS
from ..store.schema import LOCAL_ORG, events, pins, team_servers
from . import teampins
from .tenancy import audit

Status = Literal["pinned", "changed", "rejected", "removed"]
LISTINGS_READ = 2000
"""Stored ``tools/list`` answers read (newest first) to find the local pins' definitions."""


class PinnedTool(BaseModel):
    name: str
    status: Status
    changed_fields: list[str] = Field(description="pinned fields that differ: description, inputSchema, …")
    pinned_sha256: str | None
    latest_sha256: str | None
    pinned: dict[str, Any] | None = Field(description="the pinned definition (null: no longer stored)")
    latest: dict[str, Any] | None = Field(description="the latest definition seen (null: no longer stored)")
    collides_with: list[str] = Field(default_factory=list, description="other servers offering this name")
    drift: bool = Field(default=False, description="team: developers are shown different definitions now")


class PinnedServer(BaseModel):
    key: str
    server: str
    runs: str = Field(description="what the server runs: its command line or URL")
    approved_at: str | None = None
    approved_by: str | None = None
    changed: int = Field(description="tools whose latest definition waits for approval")
    tools: list[PinnedTool]


class PinReview(BaseModel):
    mode: Literal["local", "team"]
    items: list[PinnedServer]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    tool: str | None = Field(default=None, max_length=400, description="one tool (default: every change)")


class NotFound(LookupError):
    pass


class NothingToDecide(ValueError):
    pass


def _changed_fields(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    before = (old or {}).get("fields") or {}
    after = (new or {}).get("fields") or {}
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _runs(info: dict[str, Any]) -> str:
    identity = info.get("identity") or {}
    return str(identity.get("url") or " ".join(identity.get("command") or []) or "(pinned by name)")


# -- km ui: the local store's pins ----------------------------------------------------------------


def _stored_definitions(engine: Engine, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """``sha256 -> definition`` for the wanted pins, from the newest stored tools/list answers."""
    found: dict[str, dict[str, Any]] = {}
    if not wanted:
        return found
    query = (
        select(events.c.payload)
        .where(
            events.c.org_id == LOCAL_ORG,
            events.c.method == "tools/list",
            events.c.kind == "response",
            events.c.truncated.is_(False),
            events.c.payload.is_not(None),
        )
        .order_by(events.c.ts_ns.desc())
        .limit(LISTINGS_READ)
    )
    with engine.connect() as conn:
        for (payload,) in conn.execute(query):
            try:
                message = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            result = message.get("result") if isinstance(message, dict) else None
            tools = result.get("tools") if isinstance(result, dict) else None
            for tool in tools if isinstance(tools, list) else ():
                if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                    continue
                sha = pin_of(tool)["sha256"]
                if sha in wanted and sha not in found:
                    found[sha] = {k: tool[k] for k in PIN_FIELDS if k in tool}
            if wanted <= found.keys():
                break
    return found


def _local_rows(engine: Engine, key: str | None = None) -> list[Any]:
    query = select(pins).where(pins.c.org_id == LOCAL_ORG).order_by(pins.c.server, pins.c.server_key)
    if key is not None:
        query = query.where(pins.c.server_key == key)
    with engine.connect() as conn:
        return list(conn.execute(query))


def _sha(pin: Any) -> str | None:
    if isinstance(pin, str):
        return pin
    return str(pin["sha256"]) if isinstance(pin, dict) and isinstance(pin.get("sha256"), str) else None


def local_review(engine: Engine, key: str | None = None) -> list[PinnedServer]:
    rows = _local_rows(engine, key)
    states = [(r, orjson.loads(r.data)) for r in rows]
    wanted: set[str] = set()
    for _, state in states:
        current = Pins.from_state(state)
        wanted.update(s for p in current.to_dict().values() if (s := _sha(p)))
        wanted.update(s for p in current.pending.values() if (s := _sha(p)))
        rejected = state.get("rejected")
        wanted.update(str(s) for s in (rejected.values() if isinstance(rejected, dict) else ()))
    definitions = _stored_definitions(engine, wanted)
    out = []
    for row, state in states:
        current = Pins.from_state(state)
        rejected = state.get("rejected") if isinstance(state.get("rejected"), dict) else {}
        collisions = current.collisions
        tools = []
        for name, pin in sorted(current.to_dict().items()):
            new = current.pending.get(name)
            pinned_sha, latest_sha = _sha(pin), _sha(new) if new else _sha(pin)
            status: Status = "pinned"
            if new is not None:
                status = "changed"
            elif isinstance(pin, dict) and pin.get("removed"):
                status = "removed"
            elif name in rejected:
                status = "rejected"
                latest_sha = str(rejected[name]) or latest_sha
            tools.append(
                PinnedTool(
                    name=name,
                    status=status,
                    changed_fields=_changed_fields(pin, new) if new else [],
                    pinned_sha256=pinned_sha,
                    latest_sha256=latest_sha,
                    pinned=definitions.get(pinned_sha or ""),
                    latest=definitions.get(latest_sha or ""),
                    collides_with=[s or row.server for s in collisions.get(name, [])],
                )
            )
        info = orjson.loads(row.info) if row.info else {}
        out.append(
            PinnedServer(
                key=row.server_key,
                server=row.server,
                runs=_runs(info),
                changed=sum(t.status == "changed" for t in tools),
                tools=tools,
            )
        )
    return out


def local_decide(engine: Engine, key: str, tool: str | None, approve: bool) -> PinnedServer:
    """Approve (as `km pins approve`) or reject the pending changes of one local server."""
    rows = _local_rows(engine, key)
    if not rows:
        raise NotFound(f"no pinned server {key!r}")
    state = orjson.loads(rows[0].data)
    current = Pins.from_state(state)
    if tool is not None and tool not in current.pending and tool not in current.collisions:
        raise NothingToDecide(f"{tool!r} has no pending change on {rows[0].server!r}")
    rejected = dict(state.get("rejected") or {}) if isinstance(state.get("rejected"), dict) else {}
    if approve:
        names = current.approve(tool)
        for name in names:
            rejected.pop(name, None)
    else:
        names = sorted(current.pending) if tool is None else [tool]
        pending = current.pending
        for name in names:
            if name in pending:
                rejected[name] = _sha(pending[name]) or ""
        current = Pins.from_state({**state, "pending": {k: v for k, v in pending.items() if k not in names}})
    if not names:
        raise NothingToDecide(f"{rows[0].server!r} has no pending change")
    new_state = current.state()
    if rejected:
        new_state["rejected"] = rejected
    with engine.begin() as conn:
        conn.execute(
            update(pins)
            .where(pins.c.org_id == LOCAL_ORG, pins.c.server_key == rows[0].server_key)
            .values(data=orjson.dumps(new_state).decode(), updated_ns=time.time_ns())
        )
    return local_review(engine, rows[0].server_key)[0]


# -- km serve: the team's approved definitions ---------------------------------------------------


def _team_tool(tool: dict[str, Any], rejected: dict[str, Any]) -> PinnedTool:
    definitions = tool["definitions"]
    latest = max(definitions, key=lambda d: max(r["last_seen"] for r in d["reporters"]))
    first = min(definitions, key=lambda d: min(r["first_seen"] for r in d["reporters"]))
    pinned = next((d for d in definitions if d["approved"]), None) or first
    status: Status = "pinned"
    if latest["sha256"] != pinned["sha256"]:
        status = "rejected" if rejected.get(tool["name"]) == latest["sha256"] else "changed"
    return PinnedTool(
        name=tool["name"],
        status=status,
        changed_fields=_changed_fields(pin_of(pinned["definition"]), pin_of(latest["definition"])),
        pinned_sha256=pinned["sha256"],
        latest_sha256=latest["sha256"],
        pinned=pinned["definition"],
        latest=latest["definition"],
        drift=tool["drift"],
    )


def _rejected_of(engine: Engine, org_id: str, key: str) -> dict[str, Any]:
    with engine.connect() as conn:
        text = conn.execute(
            select(team_servers.c.approved).where(
                team_servers.c.org_id == org_id, team_servers.c.server_key == key
            )
        ).scalar()
    value = orjson.loads(text).get("rejected") if text else None
    return value if isinstance(value, dict) else {}


def _team_server(engine: Engine, org_id: str, described: dict[str, Any]) -> PinnedServer:
    rejected = _rejected_of(engine, org_id, described["key"])
    tools = [_team_tool(t, rejected) for t in described["tools"]]
    identity = described["identity"]
    return PinnedServer(
        key=described["key"],
        server=described["server"],
        runs=_runs({"identity": identity}),
        approved_at=described["approved_at"],
        approved_by=described["approved_by"],
        changed=sum(t.status == "changed" for t in tools),
        tools=tools,
    )


def team_review(engine: Engine, org_id: str) -> list[PinnedServer]:
    return [
        _team_server(engine, org_id, teampins.server_tools(engine, org_id, s["key"]))
        for s in teampins.servers(engine, org_id)
    ]


def team_decide(
    engine: Engine, org_id: str, key: str, tool: str | None, approve: bool, actor: str
) -> PinnedServer:
    """Approve the latest definition of a tool (or of every changed one) as the team's, or keep
    the pinned one (reject): every other tool keeps its approved definition."""
    try:
        server = _team_server(engine, org_id, teampins.server_tools(engine, org_id, key))
    except teampins.NotFound as exc:
        raise NotFound(str(exc)) from None
    targets = [t for t in server.tools if (t.name == tool if tool is not None else t.status == "changed")]
    if not targets or (tool is not None and targets[0].status == "pinned"):
        raise NothingToDecide(f"{tool or 'no tool'!r} has no pending change on {server.server!r}")
    names = {t.name for t in targets}
    choices = {}
    for t in server.tools:
        if t.name in names:
            choices[t.name] = t.latest_sha256 if approve else t.pinned_sha256
        else:
            keep = t.pinned_sha256 if t.status != "pinned" else t.latest_sha256
            choices[t.name] = keep
    rejected = _rejected_of(engine, org_id, server.key)
    teampins.approve(engine, org_id, server.key, actor, {k: v for k, v in choices.items() if v})
    for t in targets:
        if approve:
            rejected.pop(t.name, None)
        else:
            rejected[t.name] = t.latest_sha256
    with engine.begin() as conn:
        text = conn.execute(
            select(team_servers.c.approved).where(
                team_servers.c.org_id == org_id, team_servers.c.server_key == server.key
            )
        ).scalar()
        approved = orjson.loads(text) if text else {}
        approved["rejected"] = rejected
        conn.execute(
            update(team_servers)
            .where(team_servers.c.org_id == org_id, team_servers.c.server_key == server.key)
            .values(approved=orjson.dumps(approved).decode())
        )
        if not approve:
            audit(conn, org_id, actor, "pins.rejected", {"server_key": server.key, "tools": sorted(names)})
    return _team_server(engine, org_id, teampins.server_tools(engine, org_id, server.key))
