"""The findings model and the one scoring scale.

Every analysed event carries a :class:`Risk`::

    {"score": 0-100, "level": "none|low|medium|high|critical",
     "findings": [{"rule": "secret.aws_access_key", "severity": "high",
                   "path": "/params/arguments/env/AWS_KEY", "message": "..."}]}

``rule`` ids are dotted and stable (``secret.*``, ``pii.*``, ``danger.*``, ``poisoning.*``,
``pinning.*``, ``policy.*``; see :data:`kilometers.analysis.rules.RULES`). ``path`` is an
RFC 6901 JSON pointer into the JSON-RPC message. A ``message`` never contains a secret
value, only a masked hint (:func:`mask`).

Scoring (:class:`Scoring`): each severity has a weight (default ``info`` 0, ``low`` 10,
``medium`` 40, ``high`` 70, ``critical`` 90). The score is the highest weight plus
``bump_per_extra`` (5) for every further finding of weight > 0, the bump capped at
``max_bump`` (10) and the score at 100. The level follows from the score: 0 ``none``,
1-39 ``low``, 40-69 ``medium``, 70-89 ``high``, 90-100 ``critical``. With the default
weights the bump never crosses a level, so the level is the worst finding's severity;
many findings only order events within a level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, cast

from ..model import LEVELS as LEVELS
from ..model import Level as Level

Severity = Literal["info", "low", "medium", "high", "critical"]

SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: Mapping[str, int] = MappingProxyType({s: i for i, s in enumerate(SEVERITIES)})

DEFAULT_WEIGHTS: Mapping[str, int] = MappingProxyType(
    {"info": 0, "low": 10, "medium": 40, "high": 70, "critical": 90}
)
DEFAULT_THRESHOLDS: tuple[tuple[Level, int], ...] = (
    ("critical", 90),
    ("high", 70),
    ("medium", 40),
    ("low", 1),
)


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: Severity
    path: str
    """RFC 6901 JSON pointer into the message (``""`` is the whole message)."""
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "path": self.path, "message": self.message}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        severity = str(data.get("severity", "info"))
        if severity not in SEVERITY_RANK:
            severity = "info"
        return cls(
            rule=str(data["rule"]),
            severity=cast(Severity, severity),
            path=str(data.get("path", "")),
            message=str(data.get("message", "")),
        )


@dataclass(frozen=True, slots=True)
class Risk:
    score: int = 0
    level: Level = "none"
    findings: tuple[Finding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "level": self.level, "findings": [f.to_dict() for f in self.findings]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Risk:
        level = str(data.get("level", "none"))
        return cls(
            score=int(data.get("score", 0)),
            level=level if level in LEVELS else "none",
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", ())),
        )

    def __bool__(self) -> bool:
        return bool(self.findings)


NO_RISK = Risk()


def path_key(path: str) -> tuple[tuple[int, str], ...]:
    """Sort key of a JSON pointer that compares array indexes as numbers (``/tools/2`` before
    ``/tools/10``): numeric segments as zero-padded numbers before names."""
    return tuple((0, p.zfill(20)) if p.isascii() and p.isdigit() else (1, p) for p in path.split("/"))


def order(f: Finding) -> tuple[int, tuple[tuple[int, str], ...], str]:
    """How findings are listed: worst first, then by path (array indexes in numeric order), rule."""
    return -SEVERITY_RANK[f.severity], path_key(f.path), f.rule


@dataclass(frozen=True, slots=True)
class Scoring:
    """The documented scale (see the module docstring); every number is configurable."""

    weights: Mapping[str, int] = field(default_factory=lambda: DEFAULT_WEIGHTS)
    bump_per_extra: int = 5
    max_bump: int = 10
    thresholds: tuple[tuple[Level, int], ...] = DEFAULT_THRESHOLDS
    """``(level, minimum score)`` pairs, checked in order; below all of them the level is ``none``."""

    def weight(self, severity: str) -> int:
        return self.weights.get(severity, 0)

    def score(self, findings: Iterable[Finding]) -> int:
        top = 0
        counted = 0
        for f in findings:
            w = self.weight(f.severity)
            if w > 0:
                counted += 1
                top = max(top, w)
        if counted == 0:
            return 0
        bump = min(self.max_bump, self.bump_per_extra * (counted - 1))
        return min(100, top + bump)

    def level(self, score: int) -> Level:
        for level, minimum in self.thresholds:
            if score >= minimum:
                return level
        return "none"

    def risk(self, findings: Iterable[Finding]) -> Risk:
        ordered = tuple(sorted(findings, key=order))
        if not ordered:
            return NO_RISK
        score = self.score(ordered)
        return Risk(score=score, level=self.level(score), findings=ordered)


def mask(value: str) -> str:
    """A hint that identifies a value without revealing it: a short prefix and the length.

    At most 4 characters are shown, and never more than a quarter of the value.
    """
    n = len(value)
    k = min(4, n // 4)
    shown = value[:k].replace("\n", " ")
    return f"'{shown}…' ({n} chars)"
