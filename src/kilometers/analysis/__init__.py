"""Sans-IO security analysis of MCP traffic: secrets, personal data, dangerous tool calls,
tool poisoning, rug pulls (pinning) and policy, scored on one scale.

Typical use, one analyzer per session::

    analyzer = Analyzer(AnalysisConfig(), pins=Pins(stored_pins_or_None))
    risk, redacted_payload = analyzer.analyze_event(event, redact=True)
    event_risk = risk.to_dict()   # {"score": 70, "level": "high", "findings": [...]}
    store(analyzer.pins.to_dict())

or, for a decoded message: ``analyzer.analyze(direction, kind, method, tool, message) -> Risk``.
``redact(message, config) -> Redaction`` and ``redact_json(text, config)`` redact without
a session. Rule ids are listed in :data:`RULES`; the scale is documented in
:mod:`kilometers.analysis.findings`.
"""

from __future__ import annotations

from .analyzer import Analysis, Analyzer, analyze
from .config import AnalysisConfig
from .findings import LEVELS, NO_RISK, SEVERITIES, Finding, Level, Risk, Scoring, Severity, mask
from .pinning import Pins, canonical_json, pin_of
from .redact import PLACEHOLDER, Redaction, redact, redact_json
from .rules import RULES, Rule

__all__ = [
    "LEVELS",
    "NO_RISK",
    "PLACEHOLDER",
    "RULES",
    "SEVERITIES",
    "Analysis",
    "AnalysisConfig",
    "Analyzer",
    "Finding",
    "Level",
    "Pins",
    "Redaction",
    "Risk",
    "Rule",
    "Scoring",
    "Severity",
    "analyze",
    "canonical_json",
    "mask",
    "pin_of",
    "redact",
    "redact_json",
]
