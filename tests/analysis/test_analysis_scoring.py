"""The findings model, the scoring scale and the configuration."""

from __future__ import annotations

import pytest

from kilometers.analysis import NO_RISK, AnalysisConfig, Finding, Risk, Scoring, mask


def f(severity: str, rule: str = "secret.jwt", path: str = "") -> Finding:
    return Finding(rule, severity, path, "m")  # type: ignore[arg-type]


def test_finding_and_risk_dict_shape() -> None:
    risk = Scoring().risk([f("high", "secret.aws_access_key", "/params/arguments/key")])
    assert risk.to_dict() == {
        "score": 70,
        "level": "high",
        "findings": [
            {
                "rule": "secret.aws_access_key",
                "severity": "high",
                "path": "/params/arguments/key",
                "message": "m",
            }
        ],
    }
    assert Risk.from_dict(risk.to_dict()) == risk
    assert NO_RISK.to_dict() == {"score": 0, "level": "none", "findings": []}
    assert not NO_RISK and risk


@pytest.mark.parametrize(
    ("severities", "score", "level"),
    [
        ([], 0, "none"),
        (["info"], 0, "none"),
        (["info", "info", "info"], 0, "none"),
        (["low"], 10, "low"),
        (["low", "low"], 15, "low"),
        (["low"] * 9, 20, "low"),
        (["medium"], 40, "medium"),
        (["medium", "low", "info"], 45, "medium"),
        (["high"], 70, "high"),
        (["high", "high", "high", "high"], 80, "high"),
        (["critical"], 90, "critical"),
        (["critical", "high", "medium"], 100, "critical"),
        (["critical"] * 10, 100, "critical"),
    ],
)
def test_default_scale(severities: list[str], score: int, level: str) -> None:
    risk = Scoring().risk([f(s, path=f"/{i}") for i, s in enumerate(severities)])
    assert (risk.score, risk.level) == (score, level)


def test_the_bump_never_crosses_a_level_with_default_weights() -> None:
    scoring = Scoring()
    for severity, level in (("low", "low"), ("medium", "medium"), ("high", "high"), ("critical", "critical")):
        assert scoring.risk([f(severity, path=f"/{i}") for i in range(50)]).level == level


def test_findings_are_ordered_most_severe_first() -> None:
    risk = Scoring().risk([f("low", path="/a"), f("critical", path="/b"), f("medium", path="/c")])
    assert [x.severity for x in risk.findings] == ["critical", "medium", "low"]


def test_configurable_weights_thresholds_and_bump() -> None:
    config = AnalysisConfig.from_dict(
        {
            "weights": {"low": 20, "medium": 50},
            "thresholds": {"medium": 45},
            "bump_per_extra": 2,
            "max_bump": 4,
        }
    )
    risk = config.scoring.risk(
        [f("medium", path="/a"), f("low", path="/b"), f("low", path="/c"), f("low", path="/d")]
    )
    assert risk.score == 54
    assert risk.level == "medium"
    assert config.scoring.risk([f("low")]).level == "low"  # 20 < 45


def test_config_from_dict() -> None:
    config = AnalysisConfig.from_dict(
        {
            "redact_pii": True,
            "pii": False,
            "disabled_rules": ["danger.shell_exec", "poisoning"],
            "severity_overrides": {"secret.jwt": "low", "pii": "medium"},
            "allow_values": ["AKIAIOSFODNN7EXAMPLE"],
            "deny_tools": ["*delete*"],
            "max_findings": 5,
        }
    )
    assert config.redact_pii and not config.pii
    assert not config.rule_enabled("danger.shell_exec")
    assert not config.rule_enabled("poisoning.concealment")
    assert config.rule_enabled("danger.shell_execution_other") and config.rule_enabled("danger.remote_code")
    assert config.severity_for("secret.jwt", "high") == "low"
    assert config.severity_for("pii.email", "low") == "medium"
    assert config.severity_for("secret.github_token", "high") == "high"
    assert config.deny_tools == ("*delete*",)
    assert config.max_findings == 5


@pytest.mark.parametrize(
    "bad",
    [
        {"unknown_setting": 1},
        {"severity_overrides": {"pii.email": "severe"}},
        {"weights": {"extreme": 100}},
        {"thresholds": {"none": 0}},
        {"disabled_rules": "pii"},
    ],
)
def test_config_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AnalysisConfig.from_dict(bad)


def test_mask_never_reveals_more_than_a_quarter() -> None:
    assert mask("ghp_0123456789abcdefghijklmnopqrstuvwxyz") == "'ghp_…' (40 chars)"
    assert mask("hunter22") == "'hu…' (8 chars)"
    assert mask("abc") == "'…' (3 chars)"
    for n in range(0, 64):
        value = "".join(chr(0x41 + i % 26) for i in range(n))
        shown = mask(value).split("'")[1].rstrip("…")
        assert len(shown) <= min(4, n // 4)
