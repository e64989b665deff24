"""Turning raw hits into findings: JSON pointers, configuration, de-duplication."""

from __future__ import annotations

from collections.abc import Iterable

from .config import AnalysisConfig
from .findings import SEVERITY_RANK, Finding, Severity, order
from .leaves import Hit, Leaves


def findings_from_hits(
    groups: Iterable[tuple[Leaves | None, list[Hit]]], config: AnalysisConfig
) -> list[Finding]:
    """One finding per (rule, path), the most severe first, at most ``config.max_findings``.

    ``groups`` pairs hits with the :class:`Leaves` their leaf indexes refer to (None when
    every hit of the group carries its own ``path``). Repeats of a rule at one path are
    merged into one finding that counts them.
    """
    groups = [g for g in groups if g[1]]
    if not groups:  # most messages: nothing found, nothing to resolve
        return []
    merged: dict[tuple[str, str], tuple[Severity, str, int]] = {}
    for leaves, hits in groups:
        wanted = [h for h in hits if config.rule_enabled(h.rule)]
        if not wanted:
            continue
        pointers: dict[int, str] = {}
        if leaves is not None:
            pointers = leaves.pointers({h.leaf for h in wanted if h.path is None and h.leaf >= 0})
        for h in wanted:
            path = h.path if h.path is not None else pointers.get(h.leaf, "")
            severity = config.severity_for(h.rule, h.severity)
            key = (h.rule, path)
            old = merged.get(key)
            if old is None:
                merged[key] = (severity, h.message, 1)
            else:
                best = severity if SEVERITY_RANK[severity] > SEVERITY_RANK[old[0]] else old[0]
                message = h.message if best != old[0] else old[1]
                merged[key] = (best, message, old[2] + 1)
    out = [
        Finding(rule, severity, path, message if count == 1 else f"{message} (+{count - 1} more)")
        for (rule, path), (severity, message, count) in merged.items()
    ]
    out.sort(key=order)
    return out[: config.max_findings]
