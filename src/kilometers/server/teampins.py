"""Team-wide pins: what every developer's km was shown, compared across the team.

Local pinning (analysis/pinning.py) sees one machine: a server that shows a poisoned tool
description to one developer and a clean one to everyone else (a targeted rug pull) goes
unnoticed there. The team server keeps, per server identity (the command line or URL as
uploaded, with the ``serverInfo`` name **and version**: :func:`identity_of`), every tool
definition each reporter (the uploading user or key, and the machine) was shown in a
``tools/list`` answer (table ``team_tools``), and flags on that answer:

===============================  ==============================================================  ========
rule                             when                                                            severity
===============================  ==============================================================  ========
pin.team_drift                   the definition differs from the one other reporters were        high
                                 shown last for the same server version, or from the team's
                                 approved definition
pin.changed_without_version      the definition differs from the one this reporter was shown     high
                                 before, and the server's version did not change
===============================  ==============================================================  ========

Both are compared on the pin of the definition (:func:`~kilometers.analysis.pin_of`: name,
description, input and output schema, annotations), as it is stored (secrets redacted).
An owner or admin approves the current definitions of a server identity (:func:`approve`);
:func:`pin_set` is what `km pins sync` fetches, signed (:mod:`.signing`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from sqlalchemy import Connection, Engine, func, select, update

from ..analysis import Finding, canonical_json, pin_of
from ..analysis.pinning import PIN_FIELDS
from ..model import format_ts
from ..store.db import upsert
from ..store.schema import team_servers, team_tools

DRIFT_RULE = "pin.team_drift"
CHANGED_RULE = "pin.changed_without_version"
MAX_TOOL = 200
"""Longest tool name stored as it is (a longer one is cut and keeps its hash, see :func:`tool_key`)."""
MAX_REPORTER = 320
PIN_SET_VERSION = 1


class NotFound(LookupError):
    pass


class Ambiguous(ValueError):
    """Reporters are shown different definitions of these tools: the approval must choose."""

    def __init__(self, tools: dict[str, list[str]]) -> None:
        self.tools = tools
        listed = "; ".join(f"{t}: {', '.join(d[:12] for d in shas)}" for t, shas in sorted(tools.items()))
        super().__init__(
            f"developers were shown different definitions of {len(tools)} tool(s) ({listed}); "
            'choose one per tool: {"tools": {"<tool>": "<sha256>"}}'
        )


def identity_of(transport: str, command: list[Any], server: dict[str, Any] | None) -> dict[str, Any]:
    """A server as the team sees it: its command line as the client ran it (stdio) or its URL,
    with the name and version it gave in ``serverInfo``."""
    info = server or {}
    name = info.get("name") if isinstance(info.get("name"), str) else None
    version = info.get("version") if isinstance(info.get("version"), str) else None
    if transport == "stdio":
        where: dict[str, Any] = {"command": [str(c) for c in command]}
    else:
        where = {"url": normal_url(str(command[0]) if command else "")}
    return {**where, "server_name": name, "server_version": version}


def key_of(identity: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(identity)).hexdigest()


def normal_url(url: str) -> str:
    """Scheme and host in lower case, no default port, no trailing ``/``, no fragment."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and (parts.scheme.lower(), port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), host, parts.path.rstrip("/") or "/", parts.query, ""))


def tool_key(name: str) -> str:
    """The stored name of a tool: itself, or for a name longer than :data:`MAX_TOOL` its start
    and the SHA-256 of the whole (so two long names never share a row)."""
    if len(name) <= MAX_TOOL:
        return name
    return name[:120] + "…" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def label_of(identity: dict[str, Any]) -> str:
    name = identity.get("server_name") or identity.get("url") or " ".join(identity.get("command") or [])
    version = identity.get("server_version")
    return f"{name} {version}" if version else str(name)


def _listed_tools(row: dict[str, Any]) -> list[Any] | None:
    """The tools of a stored ``tools/list`` answer (None for anything else)."""
    if (row["method"], row["kind"], row["direction"]) != ("tools/list", "response", "server_to_client"):
        return None
    if row["truncated"] or not row["payload"]:
        return None
    try:
        message = orjson.loads(row["payload"])
    except orjson.JSONDecodeError:
        return None
    result = message.get("result") if isinstance(message, dict) else None
    tools = result.get("tools") if isinstance(result, dict) else None
    return tools if isinstance(tools, list) else None


@dataclass
class _Seen:
    """What the team was shown of one server identity: ``tool -> reporter -> sha256 -> last_ns``."""

    tools: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def add(self, tool: str, reporter: str, sha: str, ns: int) -> None:
        shas = self.tools.setdefault(tool, {}).setdefault(reporter, {})
        shas[sha] = max(ns, shas.get(sha, ns))

    def previous(self, tool: str, reporter: str, ns: int) -> str | None:
        """The definition ``reporter`` was shown last at or before ``ns``."""
        shas = self.tools.get(tool, {}).get(reporter, {})
        before = [(last, sha) for sha, last in shas.items() if last <= ns]
        return max(before)[1] if before else None

    def latest(self, tool: str) -> dict[str, str]:
        """``reporter -> the definition shown to them last``."""
        return {r: max(shas.items(), key=lambda kv: kv[1])[0] for r, shas in self.tools.get(tool, {}).items()}


def _greatest(conn: Connection, *args: Any) -> Any:
    return func.greatest(*args) if conn.dialect.name == "postgresql" else func.max(*args)


def _least(conn: Connection, *args: Any) -> Any:
    return func.least(*args) if conn.dialect.name == "postgresql" else func.min(*args)


def observe(
    conn: Connection,
    org_id: str,
    session_row: dict[str, Any],
    server_json: str | None,
    rows: list[dict[str, Any]],
    reporter: str,
) -> dict[int, list[Finding]]:
    """Record the tool definitions in the batch's ``tools/list`` answers (``rows``, in order) as
    shown to ``reporter``, in the batch's transaction; the findings per row index."""
    listings = [(i, tools) for i, row in enumerate(rows) if (tools := _listed_tools(row)) is not None]
    if not listings:
        return {}
    server = orjson.loads(server_json) if server_json else None
    identity = identity_of(session_row["transport"], orjson.loads(session_row["command"]), server)
    key = key_of(identity)
    label = label_of(identity)
    host = session_row.get("host")
    who = (f"{reporter}@{host}" if host else reporter)[:MAX_REPORTER]
    now = time.time_ns()
    stmt = upsert(conn, team_servers).values(
        org_id=org_id,
        server_key=key,
        server=label[:200],
        identity=orjson.dumps(identity).decode(),
        updated_ns=now,
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["org_id", "server_key"], set_={"updated_ns": stmt.excluded.updated_ns}
        )
    )
    approved_text = conn.execute(
        select(team_servers.c.approved).where(
            team_servers.c.org_id == org_id, team_servers.c.server_key == key
        )
    ).scalar()
    approved: dict[str, Any] = orjson.loads(approved_text) if approved_text else {}
    seen = _Seen()
    for tool, rep, sha, last in conn.execute(
        select(team_tools.c.tool, team_tools.c.reporter, team_tools.c.sha256, team_tools.c.last_ns).where(
            team_tools.c.org_id == org_id, team_tools.c.server_key == key
        )
    ):
        seen.add(tool, rep, sha, last)
    out: dict[int, list[Finding]] = {}
    for index, tools in listings:
        row = rows[index]
        ts = row["ts_ns"]
        found: list[Finding] = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            name = tool_key(tool["name"])
            sha = pin_of(tool)["sha256"]
            path = f"/result/tools/{i}"
            found.extend(_compare(seen, approved, name, who, sha, ts, label, path))
            seen.add(name, who, sha, ts)
            definition = {k: tool[k] for k in PIN_FIELDS if k in tool}
            insert = upsert(conn, team_tools).values(
                org_id=org_id,
                server_key=key,
                tool=name,
                reporter=who,
                sha256=sha,
                definition=orjson.dumps(definition).decode(),
                first_ns=ts,
                last_ns=ts,
                event_id=row["id"],
            )
            ex = insert.excluded
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=["org_id", "server_key", "tool", "reporter", "sha256"],
                    set_={
                        "first_ns": _least(conn, team_tools.c.first_ns, ex.first_ns),
                        "last_ns": _greatest(conn, team_tools.c.last_ns, ex.last_ns),
                    },
                )
            )
        if found:
            out[index] = found
    return out


def _compare(
    seen: _Seen, approved: dict[str, Any], name: str, who: str, sha: str, ts: int, label: str, path: str
) -> list[Finding]:
    found: list[Finding] = []
    before = seen.previous(name, who, ts)
    if before is not None and before != sha:
        found.append(
            Finding(
                CHANGED_RULE,
                "high",
                path,
                f"tool {name!r} of {label} changed since this developer was last shown it "
                f"({before[:12]} → {sha[:12]}), without a version change",
            )
        )
    others = {r: s for r, s in seen.latest(name).items() if r != who and s != sha}
    reasons = []
    if others:
        reasons.append(f"{len(others)} other developer(s) were shown a different definition")
    want = (approved.get("tools") or {}).get(name)
    if isinstance(want, dict) and want.get("sha256") not in (None, sha):
        reasons.append(f"the team approved {str(want['sha256'])[:12]}")
    if reasons:
        found.append(
            Finding(
                DRIFT_RULE,
                "high",
                path,
                f"tool {name!r} of {label} differs from the team's for the same version "
                f"(shown {sha[:12]}; {'; '.join(reasons)})",
            )
        )
    return found


# -- reading and approving -------------------------------------------------------------------------


def _tools_of(conn: Connection, org_id: str, key: str) -> list[Any]:
    return list(
        conn.execute(
            select(team_tools)
            .where(team_tools.c.org_id == org_id, team_tools.c.server_key == key)
            .order_by(team_tools.c.tool, team_tools.c.first_ns)
        )
    )


def _server_row(conn: Connection, org_id: str, ref: str) -> Any:
    """A server by its key or a unique start of it (at least 8 hex digits)."""
    ref = ref.lower()
    if len(ref) < 8 or len(ref) > 64 or any(c not in "0123456789abcdef" for c in ref):
        raise NotFound(f"no server {ref!r}: give its key (at least 8 hex digits, see /api/v1/servers)")
    rows = conn.execute(
        select(team_servers)
        .where(team_servers.c.org_id == org_id, team_servers.c.server_key.startswith(ref, autoescape=True))
        .limit(2)
    ).all()
    if len(rows) != 1:
        raise NotFound(
            f"no server {ref!r}" if not rows else f"{ref!r} names several servers; give more of it"
        )
    return rows[0]


def _describe(server: Any, tool_rows: list[Any]) -> dict[str, Any]:
    approved = orjson.loads(server.approved) if server.approved else {}
    approved_tools = approved.get("tools") or {}
    seen = _Seen()
    for r in tool_rows:
        seen.add(r.tool, r.reporter, r.sha256, r.last_ns)
    tools: dict[str, dict[str, Any]] = {}
    for r in tool_rows:
        entry = tools.setdefault(r.tool, {"name": r.tool, "definitions": {}})
        definition = entry["definitions"].setdefault(
            r.sha256, {"sha256": r.sha256, "definition": orjson.loads(r.definition), "reporters": []}
        )
        definition["reporters"].append(
            {"reporter": r.reporter, "first_seen": format_ts(r.first_ns), "last_seen": format_ts(r.last_ns)}
        )
    out = []
    for name, entry in sorted(tools.items()):
        latest = seen.latest(name)
        current = sorted(set(latest.values()))
        changed = [r for r, shas in seen.tools.get(name, {}).items() if len(shas) > 1]
        want = approved_tools.get(name, {}).get("sha256")
        definitions = list(entry["definitions"].values())
        for d in definitions:
            d["current_for"] = sorted(r for r, s in latest.items() if s == d["sha256"])
            d["approved"] = d["sha256"] == want
        out.append(
            {
                "name": name,
                "drift": len(current) > 1 or (want is not None and any(s != want for s in current)),
                "changed_without_version": bool(changed),
                "approved_sha256": want,
                "definitions": definitions,
            }
        )
    return {
        "key": server.server_key,
        "server": server.server,
        "identity": orjson.loads(server.identity),
        "updated_at": format_ts(server.updated_ns),
        "approved_at": format_ts(server.approved_ns) if server.approved_ns else None,
        "approved_by": server.approved_by,
        "tools": out,
    }


def servers(engine: Engine, org_id: str) -> list[dict[str, Any]]:
    """Every server identity of the organization, with a summary of its tools."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(team_servers).where(team_servers.c.org_id == org_id).order_by(team_servers.c.server)
        ).all()
        described = [_describe(s, _tools_of(conn, org_id, s.server_key)) for s in rows]
    return [
        {
            **{k: v for k, v in d.items() if k != "tools"},
            "tools": len(d["tools"]),
            "drift": sorted(t["name"] for t in d["tools"] if t["drift"]),
            "changed_without_version": sorted(t["name"] for t in d["tools"] if t["changed_without_version"]),
        }
        for d in described
    ]


def server_tools(engine: Engine, org_id: str, ref: str) -> dict[str, Any]:
    with engine.connect() as conn:
        server = _server_row(conn, org_id, ref)
        return _describe(server, _tools_of(conn, org_id, server.server_key))


def approve(
    engine: Engine, org_id: str, ref: str, actor: str, choices: dict[str, str] | None = None
) -> dict[str, Any]:
    """Approve the current definition of every tool of a server identity (the one each reporter
    was shown last; where they differ, ``choices`` picks by SHA-256, else :class:`Ambiguous`)."""
    from .tenancy import audit

    choices = choices or {}
    with engine.begin() as conn:
        server = _server_row(conn, org_id, ref)
        rows = _tools_of(conn, org_id, server.server_key)
        seen = _Seen()
        definitions: dict[tuple[str, str], Any] = {}
        for r in rows:
            seen.add(r.tool, r.reporter, r.sha256, r.last_ns)
            definitions[(r.tool, r.sha256)] = orjson.loads(r.definition)
        unknown = [t for t in choices if t not in seen.tools]
        if unknown:
            raise NotFound(f"server {server.server!r} has no tool {unknown[0]!r}")
        chosen: dict[str, Any] = {}
        ambiguous: dict[str, list[str]] = {}
        for name in seen.tools:
            current = sorted(set(seen.latest(name).values()))
            pick = choices.get(name)
            if pick is not None:
                if (name, pick) not in definitions:
                    raise NotFound(f"tool {name!r} was never shown with definition {pick!r}")
                sha = pick
            elif len(current) == 1:
                sha = current[0]
            else:
                ambiguous[name] = current
                continue
            chosen[name] = {"sha256": sha, "definition": definitions[(name, sha)]}
        if ambiguous:
            raise Ambiguous(ambiguous)
        now = time.time_ns()
        conn.execute(
            update(team_servers)
            .where(team_servers.c.org_id == org_id, team_servers.c.server_key == server.server_key)
            .values(approved=orjson.dumps({"tools": chosen}).decode(), approved_by=actor, approved_ns=now)
        )
        audit(
            conn, org_id, actor, "pins.approved", {"server_key": server.server_key, "tools": sorted(chosen)}
        )
    return server_tools(engine, org_id, server.server_key)


def pin_set(engine: Engine, org_id: str) -> bytes:
    """The organization's approved definitions, as the canonical JSON that is signed."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(team_servers)
            .where(team_servers.c.org_id == org_id, team_servers.c.approved.is_not(None))
            .order_by(team_servers.c.server_key)
        ).all()
    servers_out = [
        {
            "key": r.server_key,
            "identity": orjson.loads(r.identity),
            "approved_at": format_ts(r.approved_ns),
            "tools": {n: t["definition"] for n, t in (orjson.loads(r.approved).get("tools") or {}).items()},
        }
        for r in rows
    ]
    return canonical_json(
        {
            "version": PIN_SET_VERSION,
            "org": org_id,
            "issued_at": format_ts(time.time_ns()),
            "servers": servers_out,
        }
    )
