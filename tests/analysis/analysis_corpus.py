"""The labelled corpus framework: cases, how each family is run, precision and recall.

A case is positive when it names the rule(s) it expects, negative when it expects none.
Counting is per case and per family:

* positive case: a true positive when one of its expected rules is reported, else a false
  negative (a finding of another rule of the family does not count as a hit);
* negative case: a false positive when *any* rule of the family is reported, else a true negative.

Every generated value comes from a seeded ``random.Random``: the corpus is the same on every
run, and no secret-looking literal is stored in the repository.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kilometers.analysis import Analyzer, Finding, Pins

C2S = "client_to_server"
S2C = "server_to_client"


@dataclass(frozen=True)
class Case:
    family: str
    expect: frozenset[str]
    """Rule ids of which at least one must be reported; empty for a negative case."""
    data: Any
    note: str = ""
    kind: str = "text"
    """How ``data`` becomes messages; see :func:`run_case`."""

    @property
    def positive(self) -> bool:
        return bool(self.expect)


def pos(family: str, rule: str | Iterable[str], data: Any, note: str = "", kind: str = "text") -> Case:
    rules = frozenset([rule] if isinstance(rule, str) else rule)
    return Case(family, rules, data, note, kind)


def neg(family: str, data: Any, note: str = "", kind: str = "text") -> Case:
    return Case(family, frozenset(), data, note, kind)


# -- running -------------------------------------------------------------------------------------


def _tool_result(text: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {"content": [{"type": "text", "text": text}], "isError": False},
    }


def run_case(case: Case) -> list[Finding]:
    """The findings for one case.

    kinds: ``text`` (a string, sent as a tool result), ``args`` (a dict of tool arguments,
    sent in a ``tools/call`` request of a neutral tool), ``message`` (``(direction, kind,
    method, tool, message)``), ``call`` (``(tool, arguments, definition | None)``),
    ``listing`` (a ``tools/list`` result: ``{"tools": [...]}``; or ``(method, result)``),
    ``pins`` (``(old tools, new tools, other servers)``).
    """
    if case.kind == "text":
        return list(
            Analyzer().analyze(S2C, "response", "tools/call", "read_file", _tool_result(case.data)).findings
        )
    if case.kind == "args":
        message = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "save_note", "arguments": case.data},
        }
        return list(Analyzer().analyze(C2S, "request", "tools/call", "save_note", message).findings)
    if case.kind == "message":
        direction, kind, method, tool, message = case.data
        return list(Analyzer().analyze(direction, kind, method, tool, message).findings)
    if case.kind == "call":
        tool, arguments, definition = case.data
        analyzer = Analyzer()
        if definition is not None:
            analyzer.learn_tools([definition])
        message = {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        return list(analyzer.analyze(C2S, "request", "tools/call", tool, message).findings)
    if case.kind == "listing":
        method, result = case.data if isinstance(case.data, tuple) else ("tools/list", case.data)
        message = {"jsonrpc": "2.0", "id": 2, "result": result}
        return list(Analyzer().analyze(S2C, "response", method, None, message).findings)
    if case.kind == "pins":
        old, new, others = case.data
        pins = Pins()
        pins.check(old)
        return pins.check(new, other_servers=others)
    raise ValueError(case.kind)


# -- scoring -------------------------------------------------------------------------------------


@dataclass
class Score:
    family: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    per_rule: dict[str, list[int]] = field(default_factory=dict)
    """rule -> [hits, misses] over positive cases expecting it."""
    false_positives: list[tuple[Case, list[Finding]]] = field(default_factory=list)
    false_negatives: list[tuple[Case, list[Finding]]] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def cases(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def positives(self) -> int:
        return self.tp + self.fn

    def report(self) -> str:
        lines = [
            f"{self.family:10s} cases={self.cases:4d} "
            f"(positive {self.positives}, negative {self.fp + self.tn})  "
            f"TP={self.tp} FP={self.fp} FN={self.fn} TN={self.tn}  "
            f"precision={self.precision:.3f} recall={self.recall:.3f}"
        ]
        for rule, (hit, miss) in sorted(self.per_rule.items()):
            lines.append(f"    {rule:32s} {hit:4d}/{hit + miss:<4d} recall={hit / (hit + miss):.3f}")
        for case, found in self.false_positives[:15]:
            lines.append(f"    FP {case.note!r}: {[(f.rule, f.message) for f in found][:3]}")
        for case, found in self.false_negatives[:15]:
            lines.append(f"    FN {sorted(case.expect)} {case.note!r}: {[f.rule for f in found]}")
        return "\n".join(lines)


def evaluate(family: str, cases: Iterable[Case], runner: Callable[[Case], list[Finding]] = run_case) -> Score:
    score = Score(family)
    prefix = family + "."
    for case in cases:
        found = [f for f in runner(case) if f.rule.startswith(prefix)]
        rules = {f.rule for f in found}
        if case.positive:
            ok = bool(rules & case.expect)
            if ok:
                score.tp += 1
            else:
                score.fn += 1
                score.false_negatives.append((case, found))
            for rule in case.expect:
                entry = score.per_rule.setdefault(rule, [0, 0])
                entry[0 if rule in rules else 1] += 1
        elif found:
            score.fp += 1
            score.false_positives.append((case, found))
        else:
            score.tn += 1
    return score


# -- generators ----------------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = string.ascii_letters + string.digits + "+/"
URLSAFE = string.ascii_letters + string.digits + "-_"


class Gen:
    """Deterministic random values for the corpus."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def chars(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def pick(self, items: list[Any] | tuple[Any, ...]) -> Any:
        return self.r.choice(items)

    def word(self) -> str:
        return self.pick(WORDS)

    def sentence(self, n: int = 8) -> str:
        return " ".join(self.word() for _ in range(n)).capitalize() + "."

    def uuid(self) -> str:
        h = self.chars(32, HEX)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


WORDS = [
    "project",
    "report",
    "meeting",
    "update",
    "release",
    "server",
    "client",
    "config",
    "status",
    "build",
    "deploy",
    "review",
    "notes",
    "team",
    "customer",
    "invoice",
    "order",
    "payment",
    "account",
    "system",
    "service",
    "network",
    "storage",
    "backup",
    "schedule",
    "weekly",
    "draft",
    "final",
    "version",
    "change",
    "issue",
    "bug",
    "feature",
    "test",
    "result",
    "summary",
    "analysis",
    "data",
    "model",
    "query",
    "index",
    "table",
    "document",
    "folder",
    "file",
    "image",
    "chart",
    "metric",
    "budget",
    "plan",
    "roadmap",
    "sprint",
    "task",
    "owner",
    "deadline",
    "priority",
]


def embed(value: str, gen: Gen) -> list[tuple[str, str]]:
    """A secret inside different realistic texts: (text, context note)."""
    return [
        (value, "bare"),
        (f"{gen.sentence(6)} The value is {value} and {gen.sentence(5).lower()}", "prose"),
        (f"# settings\nLOG_LEVEL=info\nSERVICE_VALUE={value}\nPORT=8080\n", "env file"),
        (
            f'{{"service": {{"endpoint": "https://api.example.com", "value": "{value}", "retries": 3}}}}',
            "json text",
        ),
    ]


def message_variants(value: str) -> list[tuple[str, Mapping[str, Any]]]:
    """Placements inside MCP messages other than a tool-result text."""
    return [("args", {"content": f"note: {value}"})]
