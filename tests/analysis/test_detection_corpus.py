"""The detection corpus (tests/analysis/detection): its hard guarantees. Precision and recall
are reported by ``bench/bench_detection.py``, not asserted here."""

from __future__ import annotations

import pytest
from detection.cases import SPLITS, Case, discover, leaks, ordinary_steps, result_text, run

from kilometers.analysis import RULES, SEVERITIES, Analyzer

FAMILIES = discover()
LOW = SEVERITIES.index("low")


def test_the_families_are_discovered() -> None:
    assert {"secrets", "pii"} <= set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_has_positives_and_negatives_in_both_splits(family: str) -> None:
    cases = FAMILIES[family]()
    assert all(c.family == family for c in cases)
    for split in SPLITS:
        part = [c for c in cases if c.split == split]
        assert sum(c.positive for c in part) >= 20, split
        assert sum(not c.positive for c in part) >= 10, split
    prefix = "secret." if family == "secrets" else family + "."
    for case in cases:
        assert all(e.endswith("*") or e in RULES for e in case.expect), case.note
        assert all(e.startswith(prefix) for e in case.expect), case.note


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_generation_is_deterministic(family: str) -> None:
    first = [(c.split, c.note, c.values, repr(c.steps)) for c in FAMILIES[family]()]
    second = [(c.split, c.note, c.values, repr(c.steps)) for c in FAMILIES[family]()]
    assert first == second


def test_no_generated_secret_is_stored_in_clear() -> None:
    cases = [c for c in FAMILIES["secrets"]() if c.positive]
    assert sum(len(c.values) for c in cases) >= 200
    clear = [(c.split, c.note) for c in cases if leaks(c, run(c))]
    assert clear == []


@pytest.mark.parametrize("server", sorted(ordinary_steps()))
def test_ordinary_traffic_of_real_servers_has_no_finding_above_low(server: str) -> None:
    analyzer = Analyzer()
    above = []
    for direction, kind, method, tool, message in ordinary_steps()[server]:
        risk = analyzer.analyze(direction, kind, method, tool, message)
        above.extend(f.to_dict() for f in risk.findings if SEVERITIES.index(f.severity) > LOW)
    assert above == []


def test_leaks_sees_values_in_raw_and_json_escaped_form() -> None:
    value = 'pa"ss\\word-1234'
    case = Case("secrets", (result_text("nothing here"),), {"secret.*"}, values=(value,))
    assert leaks(case, run(case)) == []
    case = Case("secrets", (result_text(f"note {value}"),), {"secret.*"}, values=(value,))
    assert leaks(case, run(case)) == [value]


def test_case_validation() -> None:
    with pytest.raises(ValueError, match="split"):
        Case("secrets", (result_text("x"),), split="train")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step"):
        Case("secrets", ())
    case = Case("danger", (result_text("x"),), ["danger.*"])
    assert case.positive and case.expects("danger.shell") and not case.expects("secret.jwt")
