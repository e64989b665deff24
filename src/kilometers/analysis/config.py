"""What the analyzer checks, what it redacts, and how it scores."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, cast

from .findings import DEFAULT_THRESHOLDS, DEFAULT_WEIGHTS, LEVELS, SEVERITY_RANK, Level, Scoring, Severity

FAMILIES: tuple[str, ...] = ("secret", "pii", "danger", "poisoning", "pinning", "policy")


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    secrets: bool = True
    pii: bool = True
    danger: bool = True
    poisoning: bool = True
    """Poisoning rules on ``*/list`` and ``initialize`` results."""
    content_injection: bool = True
    """The prompt-injection subset of the poisoning rules on tool results, resources and prompts
    (severity capped at ``medium``)."""
    pinning: bool = True
    policy: bool = True
    redact_secrets: bool = True
    redact_pii: bool = False
    disabled_rules: frozenset[str] = frozenset()
    """Rule ids or prefixes (``"pii.phone"``, ``"pii"``, ``"danger.shell_exec"``) never reported."""
    severity_overrides: Mapping[str, Severity] = field(default_factory=lambda: MappingProxyType({}))
    """Rule id (or prefix) -> severity, applied to every finding of the rule."""
    allow_values: frozenset[str] = frozenset()
    """Exact values never reported as secrets (known test tokens, published example keys)."""
    deny_tools: tuple[str, ...] = ()
    """Glob patterns of tool names whose calls are reported as ``policy.denied_tool``."""
    scoring: Scoring = field(default_factory=Scoring)
    max_scan_chars: int = 2_000_000
    """Characters of string content scanned per message (the rest is not analysed)."""
    max_findings: int = 50
    """Findings kept per message (the most severe first)."""

    def rule_enabled(self, rule: str) -> bool:
        if not self.disabled_rules:
            return True
        return not any(rule == d or rule.startswith(d.rstrip(".") + ".") for d in self.disabled_rules)

    def severity_for(self, rule: str, severity: Severity) -> Severity:
        if not self.severity_overrides:
            return severity
        override = self.severity_overrides.get(rule)
        if override is None:
            best = ""
            for prefix, value in self.severity_overrides.items():
                if rule.startswith(prefix.rstrip(".") + ".") and len(prefix) > len(best):
                    best, override = prefix, value
        return override if override is not None else severity

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisConfig:
        """From a config-file section, e.g. ``[analysis]`` in TOML::

        redact_pii = true
        disabled_rules = ["pii.phone"]
        severity_overrides = {"danger.shell_exec" = "low"}
        deny_tools = ["*delete*"]
        weights = {low = 10, medium = 40, high = 70, critical = 90}
        thresholds = {low = 1, medium = 40, high = 70, critical = 90}
        """
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"weights", "thresholds", "bump_per_extra", "max_bump"}
        if unknown:
            raise ValueError(f"unknown analysis settings: {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {}
        for name in (
            "secrets",
            "pii",
            "danger",
            "poisoning",
            "content_injection",
            "pinning",
            "policy",
            "redact_secrets",
            "redact_pii",
        ):
            if name in data:
                kwargs[name] = bool(data[name])
        for name in ("max_scan_chars", "max_findings"):
            if name in data:
                kwargs[name] = int(data[name])
        if "disabled_rules" in data:
            kwargs["disabled_rules"] = frozenset(_strings(data["disabled_rules"], "disabled_rules"))
        if "allow_values" in data:
            kwargs["allow_values"] = frozenset(_strings(data["allow_values"], "allow_values"))
        if "deny_tools" in data:
            kwargs["deny_tools"] = tuple(_strings(data["deny_tools"], "deny_tools"))
        if "severity_overrides" in data:
            overrides = dict(data["severity_overrides"])
            for rule, sev in overrides.items():
                if sev not in SEVERITY_RANK:
                    raise ValueError(
                        f"severity_overrides[{rule!r}]: {sev!r} is not one of {', '.join(SEVERITY_RANK)}"
                    )
            kwargs["severity_overrides"] = MappingProxyType(cast(dict[str, Severity], overrides))
        kwargs["scoring"] = _scoring(data)
        return cls(**kwargs)


def _strings(value: Any, name: str) -> Iterable[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of strings")
    return [str(v) for v in value]


def _scoring(data: Mapping[str, Any]) -> Scoring:
    weights = dict(DEFAULT_WEIGHTS)
    for sev, w in dict(data.get("weights", {})).items():
        if sev not in SEVERITY_RANK:
            raise ValueError(f"weights: {sev!r} is not a severity")
        weights[sev] = int(w)
    thresholds: tuple[tuple[Level, int], ...] = DEFAULT_THRESHOLDS
    if "thresholds" in data:
        given = dict(data["thresholds"])
        for level in given:
            if level not in LEVELS or level == "none":
                raise ValueError(f"thresholds: {level!r} is not a level")
        merged = {lvl: given.get(lvl, dict(DEFAULT_THRESHOLDS)[lvl]) for lvl, _ in DEFAULT_THRESHOLDS}
        thresholds = tuple(sorted(((k, int(v)) for k, v in merged.items()), key=lambda t: -t[1]))
    return Scoring(
        weights=MappingProxyType(weights),
        bump_per_extra=int(data.get("bump_per_extra", 5)),
        max_bump=int(data.get("max_bump", 10)),
        thresholds=thresholds,
    )


DEFAULT_CONFIG = AnalysisConfig()
