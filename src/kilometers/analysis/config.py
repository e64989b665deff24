"""What the analyzer checks, what it redacts, and how it scores."""

from __future__ import annotations

import difflib
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

        A value of the wrong type is an error (:class:`SettingError`, naming its key), never
        converted: ``secrets = "false"`` must not mean true.
        """
        known = {f.name for f in fields(cls)} | {"weights", "thresholds", "bump_per_extra", "max_bump"}
        for key in data:
            if key not in known:
                raise SettingError((key,), "is not a setting" + did_you_mean(key, known))
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
                kwargs[name] = boolean(data[name], (name,))
        for name in ("max_scan_chars", "max_findings"):
            if name in data:
                kwargs[name] = count(data[name], (name,))
        for name in ("disabled_rules", "allow_values"):
            if name in data:
                kwargs[name] = frozenset(strings(data[name], (name,)))
        if "deny_tools" in data:
            kwargs["deny_tools"] = tuple(strings(data["deny_tools"], ("deny_tools",)))
        if "severity_overrides" in data:
            overrides = table(data["severity_overrides"], ("severity_overrides",))
            for rule, sev in overrides.items():
                if sev not in SEVERITY_RANK:
                    raise SettingError(
                        ("severity_overrides", rule), f"{sev!r} is not one of {', '.join(SEVERITY_RANK)}"
                    )
            kwargs["severity_overrides"] = MappingProxyType(cast(dict[str, Severity], overrides))
        kwargs["scoring"] = _scoring(data)
        return cls(**kwargs)


class SettingError(ValueError):
    """A setting that cannot be used; ``key`` is its path (``("severity_overrides", "pii")``)."""

    def __init__(self, key: tuple[str, ...], problem: str) -> None:
        super().__init__(f"{'.'.join(key)} {problem}")
        self.key = key
        self.problem = problem

    def within(self, *outer: str) -> SettingError:
        """The same error for a setting inside the table ``outer``."""
        return SettingError(outer + self.key, self.problem)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def boolean(value: Any, key: tuple[str, ...]) -> bool:
    if not isinstance(value, bool):
        raise SettingError(key, f"must be true or false, not {value!r}")
    return value


def count(value: Any, key: tuple[str, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingError(key, f"must be a whole number, 0 or more, not {value!r}")
    return value


def strings(value: Any, key: tuple[str, ...]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SettingError(key, f"must be a list of strings, not {value!r}")
    return value


def table(value: Any, key: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SettingError(key, f"must be a table, not {value!r}")
    return dict(value)


def _scoring(data: Mapping[str, Any]) -> Scoring:
    weights = dict(DEFAULT_WEIGHTS)
    for sev, w in table(data.get("weights", {}), ("weights",)).items():
        if sev not in SEVERITY_RANK:
            raise SettingError(("weights", sev), "is not a severity")
        weights[sev] = count(w, ("weights", sev))
    thresholds: tuple[tuple[Level, int], ...] = DEFAULT_THRESHOLDS
    if "thresholds" in data:
        given = table(data["thresholds"], ("thresholds",))
        for level, value in given.items():
            if level not in LEVELS or level == "none":
                raise SettingError(("thresholds", level), "is not a level")
            count(value, ("thresholds", level))
        merged = {lvl: given.get(lvl, dict(DEFAULT_THRESHOLDS)[lvl]) for lvl, _ in DEFAULT_THRESHOLDS}
        thresholds = tuple(sorted(((k, int(v)) for k, v in merged.items()), key=lambda t: -t[1]))
    return Scoring(
        weights=MappingProxyType(weights),
        bump_per_extra=count(data.get("bump_per_extra", 5), ("bump_per_extra",)),
        max_bump=count(data.get("max_bump", 10), ("max_bump",)),
        thresholds=thresholds,
    )


DEFAULT_CONFIG = AnalysisConfig()
