"""Detection quality on the generated corpus (tests/analysis/detection): per-family precision
and recall (tune and held-out separately, and overall; also counting only findings of medium
and above), the generated secrets stored in clear after redaction, and the findings above
``low`` on the recorded ordinary traffic of real servers.

    .venv/bin/python bench/bench_detection.py [--family NAME] [--misses tune|heldout|all]

``--misses`` lists the cases counted wrong (by default none: tune rules on the tune part only,
and keep the held-out part unseen).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "analysis"))

from detection.cases import (  # noqa: E402
    SPLITS,
    Case,
    Outcome,
    Score,
    discover,
    evaluate,
    leaks,
    ordinary_steps,
    run,
)

from kilometers.analysis import SEVERITIES, AnalysisConfig, Analyzer, Finding  # noqa: E402

LOW = SEVERITIES.index("low")
PII_REDACTED = AnalysisConfig(redact_pii=True)


def ordinary_findings() -> dict[str, list[Finding]]:
    """Findings above low on each recorded session of a real server (one analyzer per session)."""
    out: dict[str, list[Finding]] = {}
    for name, steps in ordinary_steps().items():
        analyzer = Analyzer()
        found: list[Finding] = []
        for direction, kind, method, tool, msg in steps:
            risk = analyzer.analyze(direction, kind, method, tool, msg)
            found.extend(f for f in risk.findings if SEVERITIES.index(f.severity) > LOW)
        out[name] = found
    return out


def stored_in_clear(
    cases: list[Case], outcomes: dict[int, Outcome]
) -> dict[str, tuple[int, int, list[Case]]]:
    """Per family: (values in clear, values checked, cases leaking). Secrets as km stores them by
    default; personal data as stored with ``redact_pii`` on."""
    out: dict[str, tuple[int, int, list[Case]]] = {}
    for case in cases:
        if not case.positive or not case.values:
            continue
        outcome = run(case, PII_REDACTED) if case.family == "pii" else outcomes[id(case)]
        left = leaks(case, outcome)
        clear, total, leaked = out.get(case.family, (0, 0, []))
        out[case.family] = (clear + len(left), total + len(case.values), leaked + ([case] if left else []))
    return out


def _show(score: Score, limit: int) -> None:
    for case, own in score.misses[:limit]:
        what = "FN" if case.positive else "FP"
        found = [(f.rule, f.severity, f.message[:70]) for f in own]
        print(f"      {what} {case.note}: {found}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", action="append", help="only these families (repeatable)")
    parser.add_argument("--misses", choices=["none", "tune", "heldout", "all"], default="none")
    parser.add_argument("--limit", type=int, default=40, help="misses listed per family and split")
    args = parser.parse_args()

    families = discover()
    if args.family:
        families = {k: v for k, v in families.items() if k in args.family}
    start = time.perf_counter()
    cases: list[Case] = []
    for make in families.values():
        cases.extend(make())
    outcomes = {id(c): run(c) for c in cases}
    elapsed = time.perf_counter() - start

    print(f"detection corpus: {len(cases)} cases, {len(families)} families ({elapsed:.1f} s)")
    for floor in ("info", "medium"):
        scores = evaluate(cases, min_severity=floor, outcomes=outcomes)
        print(f"\nfindings counted: {floor} and above" if floor != "info" else "\nfindings counted: all")
        overall = Score("all", "both")
        for family in families:
            both = Score(family, "both")
            for split in SPLITS:
                s = scores.get((family, split), Score(family, split))
                print("  " + s.line())
                both.add(s)
                if floor == "info" and args.misses in (split, "all"):
                    _show(s, args.limit)
            print("  " + dataclasses.replace(both, misses=[]).line())
            overall.add(both)
        print("  " + overall.line())

    print("\nsensitive values stored in clear (personal data: with redact_pii on):")
    for family, (clear, total, leaked) in stored_in_clear(cases, outcomes).items():
        print(f"  {family:10s} {clear} of {total}")
        for case in leaked[: args.limit]:
            if args.misses == "all" or case.split == args.misses:
                print(f"      clear: {case.split} {case.note}")

    print("\nfindings above low on ordinary traffic of real servers:")
    for name, found in ordinary_findings().items():
        print(
            f"  {name:24s} {len(found)}" + "".join(f"\n      {f.rule} {f.severity} {f.path}" for f in found)
        )


if __name__ == "__main__":
    main()
