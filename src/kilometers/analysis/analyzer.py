"""The analyzer: one object per session, fed every message, returning its :class:`Risk`.

Which detectors run on which message:

=====================================  ==================================================
message                                detectors
=====================================  ==================================================
every message (any direction/kind)     secrets, PII
``tools/call`` request                 dangerous operations, policy
``resources/read`` request             dangerous operations (credential files, metadata URLs)
``*/list`` and ``initialize`` results  poisoning (all rules); ``tools/list``: pinning, and
                                       the tool definitions are remembered (annotations,
                                       names) for the calls that follow
``tools/call``, ``resources/read``,    prompt-injection subset of poisoning, capped at
``prompts/get`` results, and           ``medium``
``sampling/createMessage`` requests
=====================================  ==================================================

The analyzer keeps state between messages (tool definitions, pins, pagination of
``tools/list``, the poisoning scans of the last listings), so feed it the messages of one
session in order. It does no IO.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from . import danger, pii, poisoning, secrets
from .config import DEFAULT_CONFIG, AnalysisConfig
from .findings import Finding, Risk
from .leaves import Hit, Leaves
from .names import first_match
from .pinning import Pins
from .redact import apply, key_hits, redact_findings, redactable, rename_keys, unscanned
from .redact import redact as redaction
from .resolve import findings_from_hits

if TYPE_CHECKING:
    from ..model import Event

CONTENT_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})
LISTINGS_KEPT = 8
"""Listings (``tools/list``, ``prompts/list``... results) whose poisoning scan is remembered."""


@dataclass(frozen=True, slots=True)
class Analysis:
    risk: Risk
    redacted: Any = None
    """With ``redact=True``: the redacted message, or None when nothing was redacted."""

    @property
    def changed(self) -> bool:
        return self.redacted is not None


class Analyzer:
    """Security analysis of one session's messages.

    ``pins``: the stored :class:`~kilometers.analysis.pinning.Pins` of this server (a fresh
    ``Pins()`` pins on first use); read them back from :attr:`pins` to store them.
    ``other_servers``: tool names of the client's other servers, for name collisions;
    ``server_labels``: what to call those servers in findings (see :meth:`Pins.check`).
    ``tools``: tool definitions already known (e.g. from an earlier session).
    """

    def __init__(
        self,
        config: AnalysisConfig | None = None,
        *,
        pins: Pins | None = None,
        other_servers: Mapping[str, Iterable[str]] | None = None,
        server_labels: Mapping[str, str] | None = None,
        tools: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.config = config or DEFAULT_CONFIG
        self.pins = pins if pins is not None else Pins()
        self.other_servers = other_servers
        self.server_labels = server_labels
        self.tools: dict[str, Mapping[str, Any]] = {}
        """Tool definitions by name, from the ``tools/list`` results seen."""
        self._info: dict[str, danger.ToolInfo] = {}
        self.tools_complete = False
        """A complete ``tools/list`` was seen (so calls of other tools are undeclared)."""
        self._page_names: list[str] = []
        self._listings: dict[tuple[bytes, frozenset[str]], list[Hit]] = {}
        """The poisoning scans of the last listings, by their text's digest and the tools known then."""
        self.learn_tools(tools)

    # -- public ----------------------------------------------------------------------------------

    def analyze(self, direction: str, kind: str, method: str | None, tool: str | None, message: Any) -> Risk:
        """The risk of one decoded JSON-RPC message (or a bare string for an invalid line)."""
        return self.process(direction, kind, method, tool, message).risk

    def process(
        self,
        direction: str,
        kind: str,
        method: str | None,
        tool: str | None,
        message: Any,
        *,
        redact: bool = False,
    ) -> Analysis:
        """:meth:`analyze`, optionally also redacting the message (one detection pass for both)."""
        cfg = self.config
        groups: list[tuple[Leaves | None, list[Hit]]] = []
        # a repeated long text (an SDK tool result's structuredContent) is scanned once: its hits
        # are given to every copy (leaves.expand) before they are resolved and redacted
        leaves = Leaves(message, max_chars=cfg.max_scan_chars, dedupe=True)
        main: list[Hit] = []
        if cfg.secrets:
            main.extend(secrets.scan(leaves, cfg.allow_values))
        if cfg.pii:
            main.extend(pii.scan(leaves))
        params = message.get("params") if isinstance(message, dict) else None
        result = message.get("result") if isinstance(message, dict) else None
        if kind == "request" and method == "tools/call" and isinstance(params, dict):
            name = tool if tool is not None else params.get("name")
            name = name if isinstance(name, str) else None
            if cfg.danger:
                info = self._info.get(name) if name is not None else None
                groups.append((None, danger.scan_call(name, params.get("arguments"), info)))
            if cfg.policy:
                groups.append((None, self._policy(name)))
            if cfg.poisoning:
                main.extend(poisoning.scan_arguments(leaves))
        elif kind == "request" and method == "resources/read" and isinstance(params, dict) and cfg.danger:
            groups.append((None, danger.scan_resource(params.get("uri"))))
        elif kind == "response" and isinstance(result, dict) and direction == "server_to_client":
            if method in poisoning.LISTING_METHODS or method == "initialize":
                if cfg.poisoning:
                    groups.append(self._scan_listing(message))
                if method == "tools/list":
                    groups.append((None, self._tools_listed(result)))
            elif method in CONTENT_METHODS and cfg.content_injection:
                main.extend(poisoning.scan_content(leaves))
        elif (
            kind == "request"
            and method == "sampling/createMessage"
            and direction == "server_to_client"
            and cfg.content_injection
        ):
            # the server writes the prompt the client's model will read
            main.extend(poisoning.scan_content(leaves))
        main = leaves.expand(main)
        groups.append((leaves, main))
        renamed: dict[str, str] = {}
        if leaves.keys and (cfg.secrets or cfg.pii):  # a map keyed by tokens or e-mail addresses
            named, renamed = key_hits(leaves, cfg, cfg.secrets, cfg.pii)
            groups.append((None, named))
        findings = findings_from_hits(groups, cfg)
        redacted = None
        if redact:
            # what was not scanned is not kept either (and the finding says so)
            partial, notes = unscanned(leaves, cfg)
            findings.extend(notes)
            chosen = [h for h in main if redactable(h, cfg) and cfg.rule_enabled(h.rule)]
            if chosen or partial:
                redacted = apply(leaves, chosen + partial)
            if renamed:
                redacted = rename_keys(message if redacted is None else redacted, renamed)
            if findings:  # a message may quote a value (a tool's name) that holds a secret
                findings = redact_findings(findings, cfg)
        risk = cfg.scoring.risk(findings)
        return Analysis(risk, redacted)

    def analyze_payload(
        self, direction: str, kind: str, method: str | None, tool: str | None, payload: str | None
    ) -> Risk:
        """:meth:`analyze` for a payload kept as JSON text (a truncated one is scanned as text)."""
        return self.process_payload(direction, kind, method, tool, payload)[0]

    def process_payload(
        self,
        direction: str,
        kind: str,
        method: str | None,
        tool: str | None,
        payload: str | None,
        *,
        redact: bool = False,
    ) -> tuple[Risk, str | None]:
        """(risk, redacted payload text or None when unchanged) for a JSON text payload."""
        if payload is None:
            return Risk(), None
        try:
            message: Any = orjson.loads(payload)
            is_json = True
        except orjson.JSONDecodeError:
            message, is_json = payload, False
        analysis = self.process(direction, kind, method, tool, message, redact=redact)
        if analysis.redacted is None:
            return analysis.risk, None
        text = orjson.dumps(analysis.redacted).decode() if is_json else str(analysis.redacted)
        return analysis.risk, text

    def analyze_event(self, event: Event, *, redact: bool = False) -> tuple[Risk, str | None]:
        """(risk, redacted payload or None) of a captured :class:`~kilometers.model.Event`.

        The message decoded at capture (:meth:`Event.decoded`) is analysed as it is, not parsed
        again; with ``redact``, a redacted payload replaces it in the event's message too (the
        caller stores the returned text as the payload), so what travels on to the sinks is the
        redacted message. An event without one (read back from a store) has its payload parsed."""
        message = event.decoded()
        if message is None:
            return self.process_payload(
                event.direction, event.kind, event.method, event.tool, event.payload, redact=redact
            )
        analysis = self.process(
            event.direction, event.kind, event.method, event.tool, message.value, redact=redact
        )
        if analysis.redacted is None:
            return analysis.risk, None
        text = orjson.dumps(analysis.redacted).decode()
        event.message = replace(message, text=text, value=analysis.redacted)
        return analysis.risk, text

    def learn_tools(self, tools: Iterable[Any]) -> None:
        """Remember tool definitions (annotations, names) for the analysis of later calls."""
        for t in tools:
            if isinstance(t, Mapping) and isinstance(t.get("name"), str):
                self.tools[t["name"]] = t
                self._info[t["name"]] = danger.ToolInfo.from_definition(t)

    # -- internals -------------------------------------------------------------------------------

    def _scan_listing(self, message: dict[str, Any]) -> tuple[None, list[Hit]]:
        """:func:`poisoning.scan_listing`, its hits carrying their JSON pointers, remembered for
        the last few listings: clients list a server's tools again and again, and an unchanged
        listing (same text, same tools known) has the same findings. A numeric id is no string
        leaf, so it is not part of the key."""
        known = frozenset(self.tools)
        same = message if isinstance(message.get("id"), str) else {**message, "id": None}
        try:
            # by digest: a listing can be megabytes, and only its findings are kept
            key = (hashlib.blake2b(orjson.dumps(same), digest_size=16).digest(), known)
        except (orjson.JSONEncodeError, TypeError):  # not encodable as it came (a lone surrogate)
            key = None
        hits = self._listings.pop(key, None) if key is not None else None
        if hits is None:
            leaves, found = poisoning.scan_listing(message, self.tools)
            pointers = leaves.pointers({h.leaf for h in found if h.path is None and h.leaf >= 0})
            hits = [h if h.path is not None else replace(h, path=pointers.get(h.leaf, "")) for h in found]
            if key is not None and len(self._listings) >= LISTINGS_KEPT:
                del self._listings[next(iter(self._listings))]
        if key is not None:
            self._listings[key] = hits  # the most recent last
        return None, [replace(h) for h in hits]

    def _tools_listed(self, result: Mapping[str, Any]) -> list[Hit]:
        tools = result.get("tools")
        if not isinstance(tools, list):
            return []
        if not self._page_names:
            # a new listing starts: forget definitions not listed again
            self.tools = {}
            self._info = {}
        self.learn_tools(tools)
        complete = not result.get("nextCursor")
        findings: list[Finding] = []
        if self.config.pinning:  # (pins keep redacted names: only then are they worked out)
            tools = _as_pinned(tools, self.config)
            findings = self.pins.check(
                tools,
                complete=complete,
                earlier_pages=self._page_names,
                other_servers=self.other_servers,
                labels=self.server_labels,
            )
        if complete:
            self._page_names = []
            self.tools_complete = True
        else:
            self._page_names.extend(
                t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)
            )
        return [Hit(f.rule, f.severity, f.message, path=f.path) for f in findings]

    def _policy(self, name: str | None) -> list[Hit]:
        hits: list[Hit] = []
        if name is None:
            return hits
        pattern = first_match([name], self.config.deny_tools)  # case and look-alikes too
        if pattern is not None:
            hits.append(
                Hit(
                    "policy.denied_tool",
                    "high",
                    f"tool {name!r} matches deny pattern {pattern!r}",
                    path="/params/name",
                )
            )
        if self.tools_complete and name not in self.tools:
            hits.append(
                Hit(
                    "policy.undeclared_tool",
                    "medium",
                    f"tool {name!r} was not in the server's tools/list",
                    path="/params/name",
                )
            )
        return hits


def _as_pinned(tools: list[Any], config: AnalysisConfig) -> list[Any]:
    """The listed tools as pins keep them (and stores show them): a name holding a secret (or
    personal data, when that is redacted) redacted as in the stored event. The gate compares a
    call's name the same way (:meth:`kilometers.security.Gate`)."""
    names = [t.get("name") if isinstance(t, dict) and isinstance(t.get("name"), str) else "" for t in tools]
    result = redaction(names, config)
    if not result.changed:
        return tools
    return [
        t if new == old else {**t, "name": new}
        for t, old, new in zip(tools, names, result.message, strict=True)
    ]


def analyze(
    direction: str,
    kind: str,
    method: str | None,
    tool: str | None,
    message: Any,
    config: AnalysisConfig | None = None,
) -> Risk:
    """One-off analysis of a single message with a fresh (stateless) analyzer."""
    return Analyzer(config).analyze(direction, kind, method, tool, message)
