"""Rug pulls: pinning tool definitions and noticing when they change.

:class:`Pins` is sans-IO: it is built from and returns plain dicts; storing them (per
server) is the caller's job. A pin is the SHA-256 of the canonical JSON (sorted keys,
no whitespace, UTF-8) of the security-relevant part of a tool definition (``name``,
``description``, ``inputSchema``, ``outputSchema``, ``annotations``) plus one short
hash per field, so a change can say *what* changed::

    {"read_file": {"sha256": "9f2c…", "fields": {"description": "1a2b3c4d5e6f7a8b", ...}}}

=======================  ===================================================================  ========
rule                     when                                                                 severity
=======================  ===================================================================  ========
pinning.changed          a pinned tool's description or input schema changed                  high
                         only its output schema or annotations changed                        medium
pinning.new_tool         a tool appears that was not in the pinned set (not on first use)     medium
pinning.removed_tool     a pinned tool is missing from a complete listing                     low
pinning.name_collision   the same name twice in one listing, or a name (also after            medium
                         case/punctuation folding) that another server already offers
=======================  ===================================================================  ========

Only a definition that changed is ever high: the other findings say something to look at,
not that a tool turned against the user.

Trust on first use: the first listing of a server pins every tool silently. Later,
new tools are pinned (and reported once); changed tools keep their old pin, and so are
reported on every listing, until :meth:`Pins.approve` (or ``accept_changes=True``).
Removed tools are reported once (their record gets ``"removed": true``). Collisions are
reported on every listing until approved: :meth:`Pins.approve` accepts a tool's collisions
with the servers it collides with then (a server that later offers the name too is new).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from .findings import Finding, Severity
from .leaves import escape_token

PIN_FIELDS: tuple[str, ...] = ("name", "description", "inputSchema", "outputSchema", "annotations")
_MAJOR_FIELDS = frozenset({"name", "description", "inputSchema"})


def canonical_json(value: Any) -> bytes:
    """Sorted keys at every level, no insignificant whitespace, UTF-8."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def pin_of(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The pin record of one tool definition."""
    part = {k: tool[k] for k in PIN_FIELDS if k in tool}
    fields = {k: hashlib.sha256(canonical_json(v)).hexdigest()[:16] for k, v in part.items()}
    return {"sha256": hashlib.sha256(canonical_json(part)).hexdigest(), "fields": fields}


def fold_name(name: str) -> str:
    """Name for collision checks: NFKC, case-folded, without ``-``, ``_``, ``.`` and spaces."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in folded if c not in "-_. ")


def _digest(pin: Any) -> str | None:
    if isinstance(pin, str):
        return pin
    if isinstance(pin, Mapping) and isinstance(pin.get("sha256"), str):
        return str(pin["sha256"])
    return None


def _fields(pin: Any) -> Mapping[str, Any]:
    if isinstance(pin, Mapping) and isinstance(pin.get("fields"), Mapping):
        return pin["fields"]  # type: ignore[no-any-return]
    return {}


class Pins:
    """The pinned tool definitions of one server.

    ``pins``: what :meth:`to_dict` returned last time (``None`` for a server never seen:
    the first complete check pins silently). Plain hash strings are accepted as pins too.
    Collisions are kept as ``tool -> [other server, ...]``: those of the last listing
    (:attr:`collisions`) and those approved (never reported again).
    """

    def __init__(self, pins: Mapping[str, Any] | None = None) -> None:
        self.known = pins is not None
        self._pins: dict[str, Any] = dict(pins or {})
        self._pending: dict[str, dict[str, Any]] = {}
        self._collisions: dict[str, list[str]] = {}
        self._accepted: dict[str, list[str]] = {}

    def to_dict(self) -> dict[str, Any]:
        return {name: (dict(pin) if isinstance(pin, Mapping) else pin) for name, pin in self._pins.items()}

    def state(self) -> dict[str, Any]:
        """Pins, pending (changed, not yet approved) definitions and collisions, for storage."""
        state: dict[str, Any] = {"pins": self.to_dict(), "pending": self.pending}
        if self._collisions:
            state["collisions"] = self.collisions
        if self._accepted:
            state["accepted_collisions"] = {k: list(v) for k, v in self._accepted.items()}
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> Pins:
        if state is None:
            return cls()
        if "pins" not in state:  # a bare to_dict() result
            return cls(state)
        pins = cls(state["pins"])
        pins._pending = {k: dict(v) for k, v in (state.get("pending") or {}).items()}
        pins._collisions = _servers_by_tool(state.get("collisions"))
        pins._accepted = _servers_by_tool(state.get("accepted_collisions"))
        return pins

    def changed_fields(self, name: str) -> list[str]:
        """Which fields of a pending tool differ from its pin (description, inputSchema...)."""
        new = self._pending.get(name)
        old = self._pins.get(name)
        if new is None or old is None:
            return []
        before, after = _fields(old), _fields(new)
        return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

    @property
    def pending(self) -> dict[str, dict[str, Any]]:
        """Changed definitions seen but not yet accepted: ``name -> new pin``."""
        return dict(self._pending)

    @property
    def collisions(self) -> dict[str, list[str]]:
        """Collisions of the last listing not yet approved: ``tool -> [other server, ...]``
        (``""``: the tool is listed twice by this server)."""
        return {k: list(v) for k, v in self._collisions.items()}

    def approve(self, name: str | None = None) -> list[str]:
        """Accept the changed definition of one tool (or of all) as the new pin, and its
        collisions with the servers it collides with now. The tools approved."""
        names = sorted(set(self._pending) | set(self._collisions)) if name is None else [name]
        done: list[str] = []
        for n in names:
            if n in self._pending:
                self._pins[n] = self._pending.pop(n)
                done.append(n)
            if n in self._collisions:
                accepted = self._accepted.get(n, []) + self._collisions.pop(n)
                self._accepted[n] = list(dict.fromkeys(accepted))
                done.append(n)
        return sorted(set(done))

    def check(
        self,
        tools: Sequence[Any],
        *,
        complete: bool = True,
        earlier_pages: Iterable[str] = (),
        other_servers: Mapping[str, Iterable[str]] | None = None,
        labels: Mapping[str, str] | None = None,
        base: str = "/result/tools",
        accept_changes: bool = False,
    ) -> list[Finding]:
        """Compare one ``tools/list`` page with the pins and update them.

        ``complete``: this page ends the listing (no ``nextCursor``), so pins listed neither
        here nor in ``earlier_pages`` (names from the previous pages of the same listing)
        are removals. A removal is reported once; the pin is kept, so a tool that comes back
        changed is reported as changed.
        ``other_servers``: ``server -> tool names`` offered by the other servers of the same
        client, for cross-server collisions (tool shadowing by name); ``labels`` names those
        servers in messages (default: the key itself). The key is what an approval remembers,
        so it should identify the server, not its name of the day.
        """
        findings: list[Finding] = []
        first_use = not self.known
        seen: dict[str, int] = {}
        collisions: dict[str, list[str]] = {}
        for i, tool in enumerate(tools):
            if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                continue
            name: str = tool["name"]
            path = f"{base}/{i}"
            if name in seen:
                if "" not in self._accepted.get(name, ()):
                    collisions.setdefault(name, []).append("")
                    findings.append(
                        Finding(
                            "pinning.name_collision",
                            "medium",
                            f"{path}/name",
                            f"tool name {name!r} is listed twice (also at {base}/{seen[name]})",
                        )
                    )
                continue
            seen[name] = i
            pin = pin_of(tool)
            old = self._pins.get(name)
            if isinstance(old, Mapping) and old.get("removed"):
                old = {k: v for k, v in old.items() if k != "removed"}
                self._pins[name] = old
            if old is None:
                self._pins[name] = pin
                if not first_use:
                    findings.append(
                        Finding("pinning.new_tool", "medium", path, f"new tool {name!r} appeared")
                    )
            elif _digest(old) != pin["sha256"]:
                changed = [f for f in PIN_FIELDS if _fields(old).get(f) != pin["fields"].get(f)]
                if not _fields(old):
                    changed = []
                severity: Severity = "high" if not changed or set(changed) & _MAJOR_FIELDS else "medium"
                what = ", ".join(changed) if changed else "definition"
                findings.append(
                    Finding(
                        "pinning.changed",
                        severity,
                        path,
                        f"tool {name!r} changed since it was pinned ({what})",
                    )
                )
                if accept_changes:
                    self._pins[name] = pin
                    self._pending.pop(name, None)
                else:
                    self._pending[name] = pin
            else:
                self._pending.pop(name, None)
        if complete and not first_use:
            listed = set(seen).union(earlier_pages)
            for name, old in self._pins.items():
                if name in listed or (isinstance(old, Mapping) and old.get("removed")):
                    continue
                findings.append(
                    Finding("pinning.removed_tool", "low", base, f"pinned tool {name!r} is no longer listed")
                )
                record = dict(old) if isinstance(old, Mapping) else {"sha256": old, "fields": {}}
                record["removed"] = True
                self._pins[name] = record
        if other_servers:
            findings.extend(_collisions(seen, other_servers, labels or {}, self._accepted, collisions, base))
        if not earlier_pages:  # a listing starts: forget the collisions of the last one
            self._collisions = {}
        for name, servers in collisions.items():
            self._collisions[name] = list(dict.fromkeys(self._collisions.get(name, []) + servers))
        self.known = self.known or complete
        return findings


def _servers_by_tool(value: Any) -> dict[str, list[str]]:
    """``tool -> [server, ...]`` from stored state (anything else: empty)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): [s for s in v if isinstance(s, str)] for k, v in value.items() if isinstance(v, list)}


def _collisions(
    seen: Mapping[str, int],
    other_servers: Mapping[str, Iterable[str]],
    labels: Mapping[str, str],
    accepted: Mapping[str, list[str]],
    found: dict[str, list[str]],
    base: str,
) -> list[Finding]:
    """Collisions of this listing's names with the other servers' (one finding per tool, naming
    the first server); approved ones are skipped, the others added to ``found``."""
    out: list[Finding] = []
    folded: dict[str, list[tuple[str, str]]] = {}
    for server, names in other_servers.items():
        for other in names:
            folded.setdefault(fold_name(other), []).append((server, other))
    for name, i in seen.items():
        hits = [(s, o) for s, o in folded.get(fold_name(name), ()) if s not in accepted.get(name, ())]
        if not hits:
            continue
        found.setdefault(name, []).extend(s for s, _ in hits)
        server, other = hits[0]
        same = "the same name" if other == name else f"a look-alike name ({other!r})"
        label = escape_token(labels.get(server, server))
        more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
        out.append(
            Finding(
                "pinning.name_collision",
                "medium",
                f"{base}/{i}/name",
                f"tool {name!r} has {same} as a tool of server {label!r}{more}",
            )
        )
    return out
