"""Precision and recall of every detector family on its labelled corpus (printed; run with ``-s`` to see)."""

from __future__ import annotations

from collections.abc import Callable

import analysis_corpus_danger
import analysis_corpus_pii
import analysis_corpus_pinning
import analysis_corpus_poisoning
import analysis_corpus_secrets
import pytest
from analysis_corpus import Case, evaluate, run_case

from kilometers.analysis import RULES
from kilometers.analysis.leaves import Leaves
from kilometers.analysis.secrets import scan as scan_secrets

FAMILIES: dict[str, Callable[[], list[Case]]] = {
    "secret": analysis_corpus_secrets.cases,
    "pii": analysis_corpus_pii.cases,
    "danger": analysis_corpus_danger.cases,
    "poisoning": analysis_corpus_poisoning.cases,
    "pinning": analysis_corpus_pinning.cases,
}
MIN_PRECISION = 0.95
MIN_RECALL = 0.95


@pytest.mark.parametrize("family", list(FAMILIES))
def test_precision_and_recall(family: str) -> None:
    cases = FAMILIES[family]()
    score = evaluate(family, cases)
    print()
    print(score.report())
    assert score.cases >= 300
    assert score.positives >= 80 and score.fp + score.tn >= 100
    assert score.precision >= MIN_PRECISION, score.report()
    assert score.recall >= MIN_RECALL, score.report()


def test_every_rule_of_the_corpora_is_in_the_catalog() -> None:
    seen: set[str] = set()
    for family, make in FAMILIES.items():
        for case in make():
            if case.positive:
                seen.update(f.rule for f in run_case(case))
            assert all(rule in RULES for rule in case.expect), (family, case.expect)
    unknown = seen - set(RULES)
    assert not unknown
    # the corpora exercise (almost) every rule in the catalog; policy.blocked is emitted by the
    # pipeline's block-mode gate, not by a detector (tests/integration/test_security.py covers it)
    untested = set(RULES) - seen - {"policy.denied_tool", "policy.undeclared_tool", "policy.blocked"}
    assert not untested, untested


def test_corpus_is_deterministic() -> None:
    first = [(c.note, c.expect, repr(c.data)[:200]) for c in analysis_corpus_secrets.cases()]
    second = [(c.note, c.expect, repr(c.data)[:200]) for c in analysis_corpus_secrets.cases()]
    assert first == second


def test_finding_messages_never_carry_secrets() -> None:
    """No message of any finding on any corpus case contains something the secret detector would flag."""
    checked = 0
    for family, make in FAMILIES.items():
        for case in make():
            for finding in run_case(case):
                assert not scan_secrets(Leaves(finding.message, min_len=1)), (family, case.note, finding)
                checked += 1
    assert checked > 1000
