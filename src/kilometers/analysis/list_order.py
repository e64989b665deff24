"""Two identical ``tools/list`` calls of one session that list the same tools in another order.

A client that puts the tool list in its model's prompt caches that prompt; a server that shuffles
the order between identical calls (same params, same cursor, the same set of tools) invalidates
the cache on every call. The second answer gets a ``protocol.tools_reordered`` finding (low).
A changed set is not a reordering (pinning reports new and removed tools).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..model import Event
from .findings import Finding, Scoring

TOOLS_REORDERED_RULE = "protocol.tools_reordered"
MAX_REQUESTS = 1000
"""Pending ``tools/list`` requests remembered at most (their answers may never come)."""


def _params_key(params: Any) -> bytes:
    """The request's params without ``_meta`` (a trace id or a progress token differ per call)."""
    if not isinstance(params, dict):
        return b"null"
    return orjson.dumps({k: v for k, v in params.items() if k != "_meta"}, option=orjson.OPT_SORT_KEYS)


def _tool_names(result: Any) -> list[str] | None:
    tools = result.get("tools") if isinstance(result, dict) else None
    if not isinstance(tools, list):
        return None
    return [t["name"] if isinstance(t, dict) and isinstance(t.get("name"), str) else "" for t in tools]


class ListOrder:
    """Per session: the order of the last answer to each distinct ``tools/list`` request."""

    def __init__(self) -> None:
        self._pending: dict[str, bytes] = {}
        """request event id -> its params key"""
        self._orders: dict[bytes, list[str]] = {}

    def observe(self, event: Event) -> None:
        if event.method != "tools/list":
            return
        message = event.decoded()
        if message is None or not isinstance(message.value, dict):
            return
        if event.kind == "request":
            if len(self._pending) >= MAX_REQUESTS:
                self._pending.pop(next(iter(self._pending)))
            self._pending[event.id] = _params_key(message.value.get("params"))
            return
        if event.kind != "response" or event.request_event_id is None:
            return
        key = self._pending.pop(event.request_event_id, None)
        names = _tool_names(message.value.get("result"))
        if key is None or names is None:
            return
        before = self._orders.get(key)
        self._orders[key] = names
        if before is None or before == names or sorted(before) != sorted(names):
            return
        finding = Finding(
            TOOLS_REORDERED_RULE,
            "low",
            "/result/tools",
            f"the same tools/list call listed its {len(names)} tools in another order"
            " (clients' prompt caches miss)",
        )
        previous = (event.risk or {}).get("findings") or []
        findings = [Finding.from_dict(f) for f in previous if isinstance(f, dict)]
        event.risk = Scoring().risk([*findings, finding]).to_dict()
