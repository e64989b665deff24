"""Replacing detected values by ``[REDACTED:<rule>]`` inside a decoded message.

Only the detected span is replaced (``"token=ghp_…"`` becomes
``"token=[REDACTED:secret.github_token]"``); keys, structure and every other value stay
as they were. Containers on the way to a changed string are copied; the input is never
modified. Secrets are always redacted (unless ``redact_secrets`` is off), personal data
only with ``AnalysisConfig(redact_pii=True)``.

Text past the scan bound (``max_scan_chars``) was not checked, so it is not kept either: it
becomes ``[REDACTED:redaction.partial]`` and the finding :data:`PARTIAL_RULE` says how much.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from . import pii, secrets
from .config import DEFAULT_CONFIG, AnalysisConfig
from .findings import Finding
from .leaves import Hit, Leaves, PathPart
from .resolve import findings_from_hits

PLACEHOLDER = "[REDACTED:{rule}]"
PARTIAL_RULE = "redaction.partial"
"""The finding (and placeholder) of text past the scan bound, neither scanned nor kept."""


@dataclass(frozen=True, slots=True)
class Redaction:
    message: Any
    """The redacted message (the input object itself when nothing changed)."""
    changed: bool
    findings: tuple[Finding, ...]
    """The findings of the redacted values (never containing the values)."""


def redactable(hit: Hit, config: AnalysisConfig) -> bool:
    if not hit.redact or hit.leaf < 0:
        return False
    if hit.rule.startswith("secret."):
        return config.redact_secrets
    if hit.rule.startswith("pii."):
        return config.redact_pii
    return False


def omits_unscanned(config: AnalysisConfig) -> bool:
    """Whether redaction drops the text past the scan bound (when it redacts anything at all)."""
    return (config.redact_secrets or config.redact_pii) and config.rule_enabled(PARTIAL_RULE)


def unscanned(leaves: Leaves, config: AnalysisConfig) -> tuple[list[Hit], list[Finding]]:
    """The text past the scan bound as redaction hits (none when redaction is off) and the
    finding that says it was not scanned (none when nothing was cut or the rule is disabled)."""
    if not leaves.omitted or not config.rule_enabled(PARTIAL_RULE):
        return [], []
    cut = omits_unscanned(config)
    first = leaves.omitted[0][0]
    message = (
        f"only the first {config.max_scan_chars:,} characters were scanned; "
        f"{leaves.omitted_chars():,} more were " + ("not kept" if cut else "kept unscanned")
    )
    severity = config.severity_for(PARTIAL_RULE, "medium")
    finding = Finding(PARTIAL_RULE, severity, leaves.pointers([first]).get(first, ""), message)
    if not cut:
        return [], [finding]
    hits = [
        Hit(PARTIAL_RULE, "medium", message, i, start, len(leaves.text(i)), redact=True)
        for i, start in leaves.omitted
    ]
    return hits, [finding]


def _redact_string(value: str, spans: list[tuple[int, int, str]]) -> str:
    spans.sort(key=lambda s: (s[0], -s[1]))
    merged: list[tuple[int, int, str]] = []
    for start, end, rule in spans:
        if merged and start < merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end, merged[-1][2])
            continue
        merged.append((start, end, rule))
    out: list[str] = []
    pos = 0
    for start, end, rule in merged:
        out.append(value[pos:start])
        out.append(PLACEHOLDER.format(rule=rule))
        pos = end
    out.append(value[pos:])
    return "".join(out)


def _apply(obj: Any, tree: Any) -> Any:
    if isinstance(tree, str):
        return tree
    if isinstance(obj, dict):
        new_dict = dict(obj)
        for k, sub in tree.items():
            new_dict[k] = _apply(obj[k], sub)
        return new_dict
    if isinstance(obj, list):
        new_list = list(obj)
        for i, sub in tree.items():
            new_list[i] = _apply(obj[i], sub)
        return new_list
    return obj


def apply(leaves: Leaves, hits: Iterable[Hit]) -> Any | None:
    """The root of ``leaves`` with every hit's span replaced; None when no hit applies."""
    by_leaf: dict[int, list[tuple[int, int, str]]] = {}
    for h in hits:
        by_leaf.setdefault(h.leaf, []).append((h.start, h.end, h.rule))
    if not by_leaf:
        return None
    paths = leaves.paths(by_leaf)
    if isinstance(leaves.root, str):
        return _redact_string(leaves.root, by_leaf[0])
    tree: dict[PathPart, Any] = {}
    for index, spans in by_leaf.items():
        path = paths.get(index)
        if not path:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _redact_string(leaves.text(index), spans)
    return _apply(leaves.root, tree)


def redact(message: Any, config: AnalysisConfig | None = None) -> Redaction:
    """Detect secrets (and PII when configured) in a decoded message and redact them."""
    config = config or DEFAULT_CONFIG
    leaves = Leaves(message, max_chars=config.max_scan_chars)
    hits: list[Hit] = []
    if config.redact_secrets:
        hits.extend(h for h in secrets.scan(leaves, config.allow_values) if config.rule_enabled(h.rule))
    if config.redact_pii:
        hits.extend(h for h in pii.scan(leaves) if config.rule_enabled(h.rule))
    chosen = [h for h in hits if redactable(h, config)]
    partial, notes = unscanned(leaves, config)
    new = apply(leaves, chosen + partial)
    findings = (*findings_from_hits([(leaves, chosen)], config), *notes)
    if new is None:
        return Redaction(message, False, findings)
    return Redaction(new, True, findings)


def redact_findings(findings: Sequence[Finding], config: AnalysisConfig | None = None) -> list[Finding]:
    """The findings with what their messages quote redacted as the message is: a detector that
    names what it saw (a tool called ``tool:ghp_…RM…`` read as ``rm``) must not store a secret the
    payload no longer holds. One scan for the whole list."""
    result = redact([f.message for f in findings], config)
    if not result.changed:
        return list(findings)
    return [
        f if m == f.message else replace(f, message=m) for f, m in zip(findings, result.message, strict=True)
    ]


def redact_json(text: str, config: AnalysisConfig | None = None) -> tuple[str, tuple[Finding, ...]]:
    """:func:`redact` for JSON text: returns the (re-encoded only if changed) text and the findings.

    Text that is not JSON (a truncated payload) is redacted as one string.
    """
    try:
        message: Any = orjson.loads(text)
        is_json = True
    except orjson.JSONDecodeError:
        message, is_json = text, False
    result = redact(message, config)
    if not result.changed:
        return text, result.findings
    if not is_json:
        return str(result.message), result.findings
    return orjson.dumps(result.message).decode(), result.findings
