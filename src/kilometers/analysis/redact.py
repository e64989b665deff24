"""Replacing detected values by ``[REDACTED:<rule>]`` inside a decoded message.

Only the detected span is replaced (``"token=ghp_…"`` becomes
``"token=[REDACTED:secret.github_token]"``); keys, structure and every other value stay
as they were. Keys that may be values (:data:`~.leaves.KEY_WORD_MAX`: ``{"ghp_…": "ci"}``)
are scanned too and renamed (:func:`key_hits`, :func:`rename_keys`). Containers on the way to a
changed string are copied; the input is never modified. Secrets are always redacted (unless
``redact_secrets`` is off), personal data only with ``AnalysisConfig(redact_pii=True)``.

Text past the scan bound (``max_scan_chars``) was not checked, so it is not kept either: it
becomes ``[REDACTED:redaction.partial]`` and the finding :data:`PARTIAL_RULE` says how much.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from . import pii, secrets
from .config import DEFAULT_CONFIG, AnalysisConfig
from .findings import Finding
from .leaves import Hit, Leaves, PathPart, pointer
from .resolve import findings_from_hits

PLACEHOLDER = "[REDACTED:{rule}]"
REDACTED_MARK = "[REDACTED:"
"""How every placeholder starts."""
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


def key_hits(
    leaves: Leaves, config: AnalysisConfig, scan_secrets: bool, scan_pii: bool
) -> tuple[list[Hit], dict[str, str]]:
    """Secrets and personal data written as object keys (``{"tokens": {"ghp_…": "ci"}}``, a map
    keyed by e-mail address): their hits, each at the path of the first member so named, and the
    new names of the keys redaction replaces (pass them to :func:`rename_keys`)."""
    # as the values of plain keys (a list would read "--token" as a flag naming the next one);
    # every key is long enough to be a leaf, so leaf i is key i
    names = Leaves({str(i): k for i, k in enumerate(dict.fromkeys(leaves.keys))})
    found: list[Hit] = []
    if scan_secrets:
        found.extend(secrets.scan(names, config.allow_values))
    if scan_pii:
        found.extend(pii.scan(names))
    found = [h for h in found if config.rule_enabled(h.rule)]
    if not found:
        return [], {}
    spans: dict[int, list[tuple[int, int, str]]] = {}
    for h in found:
        if redactable(h, config):
            spans.setdefault(h.leaf, []).append((h.start, h.end, h.rule))
    renamed = {names.values[i]: _redact_string(names.values[i], s) for i, s in spans.items()}
    paths = _key_paths(leaves.root, {names.values[h.leaf] for h in found})
    hits = []
    for h in found:
        path = [renamed.get(p, p) if isinstance(p, str) else p for p in paths.get(names.values[h.leaf], ())]
        hits.append(Hit(h.rule, h.severity, h.message, path=pointer(path)))
    return hits, renamed


def _key_paths(obj: Any, wanted: set[str]) -> dict[str, tuple[PathPart, ...]]:
    """The path of the first member named by each wanted key (depth first)."""
    out: dict[str, tuple[PathPart, ...]] = {}

    def walk(node: Any, path: tuple[PathPart, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in wanted and k not in out:
                    out[k] = (*path, k)
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(obj, ())
    return out


def rename_keys(obj: Any, renamed: dict[str, str]) -> Any:
    """``obj`` with its keys renamed (containers copied on the way; the input is never modified).
    Two keys that would read the same keep both members: the later one gets `` (2)``, `` (3)``…"""
    if isinstance(obj, dict):
        out: dict[Any, Any] | None = None
        for i, (k, v) in enumerate(obj.items()):
            new_v = rename_keys(v, renamed)
            new_k = renamed.get(k, k)
            if out is None and (new_v is not v or new_k != k):
                out = dict(itertools.islice(obj.items(), i))
            if out is not None:
                name, n = new_k, 1
                while name in out or (name != k and name in obj):
                    n += 1
                    name = f"{new_k} ({n})"
                out[name] = new_v
        return obj if out is None else out
    if isinstance(obj, list):
        items = [rename_keys(v, renamed) for v in obj]
        return obj if all(a is b for a, b in zip(items, obj, strict=True)) else items
    return obj


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
    named: list[Hit] = []
    renamed: dict[str, str] = {}
    if leaves.keys:
        named, renamed = key_hits(leaves, config, config.redact_secrets, config.redact_pii)
    found = findings_from_hits([(leaves, chosen), (None, named)], config)
    if renamed:  # a finding's path may pass through a renamed key
        new = rename_keys(message if new is None else new, renamed)
        found = redact_findings(found, config)
    findings = (*found, *notes)
    if new is None:
        return Redaction(message, False, findings)
    return Redaction(new, True, findings)


def redact_findings(findings: Sequence[Finding], config: AnalysisConfig | None = None) -> list[Finding]:
    """The findings with what their messages quote redacted as the message is: a detector that
    names what it saw (a tool called ``tool:ghp_…RM…`` read as ``rm``) must not store a secret the
    payload no longer holds, nor a path that names a key holding one. One scan for the whole list."""
    texts = [f.message for f in findings] + [f.path for f in findings]  # a path may hold a key
    result = redact(texts, config)
    if not result.changed:
        return list(findings)
    n = len(findings)
    out = [
        f if m == f.message and p == f.path else replace(f, message=m, path=p)
        for f, m, p in zip(findings, result.message[:n], result.message[n:], strict=True)
    ]
    return list(dict.fromkeys(out))  # a key's finding and its value's now read the same


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
