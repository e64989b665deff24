"""The detection corpus: generated cases, one module per detector family, scored with the real
:class:`~kilometers.analysis.Analyzer`.

API (what a ``family_<name>.py`` module uses)::

    from .cases import Case, Gen, call, listing, result_text, resource, message

    def cases() -> list[Case]:   # deterministic: every value comes from a seeded Gen
        g = Gen(1)               # tune cases: one set of seeds and templates
        h = Gen(1001)            # held-out cases: other seeds AND other templates
        return [
            Case("secrets", (result_text(f"DB_PASSWORD={pw}"),), {"secret.generic_credential"},
                 split="tune", note="env file", values=(pw,)),
            Case("secrets", (call("save_note", {"text": "hello"}),), split="heldout", note="..."),
        ]

* :class:`Case`: ``family`` (the module's ``<name>``), ``steps`` (the messages fed in order to
  one fresh ``Analyzer``, built with :func:`result_text`, :func:`call`, :func:`listing`,
  :func:`resource`, :func:`message`), ``expect`` (rule ids of which at least one must be
  reported, or a family prefix such as ``"danger.*"``; empty for a negative case), ``split``
  (``"tune"``: rules may be tuned on it; ``"heldout"``: generated from other seeds and
  templates, never looked at while tuning), ``note`` (what the case is, shown for misses) and
  ``values`` (sensitive strings that must not survive redaction, e.g. the generated secret).
* Counting per case and family: a positive case is a true positive when one of its expected
  rules is reported (any step), else a false negative; a negative case is a false positive
  when any rule of the family is reported. :func:`evaluate` does this per (family, split), and
  ``min_severity="medium"`` counts only findings of medium and above.
* :func:`run` runs one case (analysis + redaction, as ``km`` stores events) and returns the
  findings and redacted payloads; :func:`leaks` lists the ``values`` still in clear there.
* :func:`discover` finds every ``family_*.py`` module of this package; :func:`ordinary_steps`
  replays the recorded traffic of real servers (hard negatives).

The family's findings are the rules starting with :data:`PREFIX` ``[family]`` (``secrets`` ->
``secret.``; any other family ``<name>`` -> ``<name>.``).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import random
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

from kilometers.analysis import AnalysisConfig, Analyzer, Finding
from kilometers.analysis.findings import SEVERITY_RANK
from kilometers.jsonrpc import classify

C2S = "client_to_server"
S2C = "server_to_client"
DATA = Path(__file__).resolve().parent.parent / "data"

Split = Literal["tune", "heldout"]
SPLITS: tuple[Split, ...] = ("tune", "heldout")

Step = tuple[str, str, str | None, str | None, Any]
"""``(direction, kind, method, tool, decoded message)``, as ``Analyzer.process`` takes them."""

PREFIX: Mapping[str, str] = {
    "secrets": "secret.",
    "pii": "pii.",
    "danger": "danger.",
    "poisoning": "poisoning.",
}


def prefix(family: str) -> str:
    return PREFIX.get(family, family + ".")


@dataclass(frozen=True)
class Case:
    family: str
    steps: tuple[Step, ...]
    expect: frozenset[str] | set[str] | tuple[str, ...] = frozenset()
    """Rule ids (or ``"<family prefix>*"``) of which one must be reported; empty: a negative case."""
    split: Split = "tune"
    note: str = ""
    values: tuple[str, ...] = ()
    """Sensitive values that must not survive redaction (checked by :func:`leaks`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "expect", frozenset(self.expect))
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}: {self.split!r}")
        if not self.steps:
            raise ValueError("a case needs at least one step")

    @property
    def positive(self) -> bool:
        return bool(self.expect)

    def expects(self, rule: str) -> bool:
        return any(rule == e or (e.endswith("*") and rule.startswith(e[:-1])) for e in self.expect)


# -- building steps ------------------------------------------------------------------------------


def result_text(text: str, tool: str = "read_file", *, is_error: bool = False) -> Step:
    """A ``tools/call`` result whose content is ``text``."""
    msg = {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {"content": [{"type": "text", "text": text}], "isError": is_error},
    }
    return (S2C, "response", "tools/call", tool, msg)


def structured_result(data: Any, tool: str = "query", text: str | None = None) -> Step:
    """A ``tools/call`` result with ``structuredContent`` (and its JSON as the text content)."""
    body = text if text is not None else json.dumps(data)
    msg = {
        "jsonrpc": "2.0",
        "id": 7,
        "result": {"content": [{"type": "text", "text": body}], "structuredContent": data},
    }
    return (S2C, "response", "tools/call", tool, msg)


def call(tool: str, arguments: Any) -> Step:
    """A ``tools/call`` request."""
    msg = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    return (C2S, "request", "tools/call", tool, msg)


def listing(result: Mapping[str, Any] | Sequence[Mapping[str, Any]], method: str = "tools/list") -> Step:
    """A listing result (``tools/list`` by default); a list of tools becomes ``{"tools": [...]}``."""
    body = dict(result) if isinstance(result, Mapping) else {"tools": list(result)}
    return (S2C, "response", method, None, {"jsonrpc": "2.0", "id": 2, "result": body})


def resource(uri: str, text: str) -> Step:
    """A ``resources/read`` result."""
    msg = {
        "jsonrpc": "2.0",
        "id": 5,
        "result": {"contents": [{"uri": uri, "mimeType": "text/plain", "text": text}]},
    }
    return (S2C, "response", "resources/read", None, msg)


def message(direction: str, kind: str, method: str | None, tool: str | None, msg: Any) -> Step:
    """Any other message."""
    return (direction, kind, method, tool, msg)


def replay(messages: Iterable[Mapping[str, Any]]) -> list[Step]:
    """Steps of a recorded session (requests and their responses matched by id)."""
    pending: dict[Any, tuple[str | None, str | None]] = {}
    steps: list[Step] = []
    for m in messages:
        kind = classify(m)
        method = m.get("method") if isinstance(m.get("method"), str) else None
        tool = None
        if kind == "request":
            params = m.get("params") or {}
            tool = params.get("name") if method == "tools/call" else None
            pending[m["id"]] = (method, tool)
            direction = C2S
        elif kind == "notification":
            direction = S2C if method and "list_changed" in method else C2S
        else:
            method, tool = pending.pop(m.get("id"), (None, None))
            direction = S2C
        steps.append((direction, kind, method, tool, dict(m)))
    return steps


def ordinary_steps() -> dict[str, list[Step]]:
    """Recorded sessions of the real filesystem and everything servers, and their tool listings."""
    with open(DATA / "ordinary_traffic.json", encoding="utf-8") as f:
        traffic = json.load(f)
    out = {server: replay(messages) for server, messages in traffic.items()}
    for name in ("everything_tools_list.json", "fs_tools_list.json"):
        with open(DATA / name, encoding="utf-8") as f:
            out[name.removesuffix(".json")] = [listing(result, method) for method, result in json.load(f)]
    return out


# -- running -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    findings: list[Finding] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    """Every step's payload as it would be stored (redacted JSON text)."""


def run(case: Case, config: AnalysisConfig | None = None) -> Outcome:
    """Analyse and redact the case's steps in one analyzer, as ``km`` does before storing."""
    analyzer = Analyzer(config)
    out = Outcome()
    for direction, kind, method, tool, msg in case.steps:
        payload = msg if isinstance(msg, str) else orjson.dumps(msg).decode()
        risk, redacted = analyzer.process_payload(direction, kind, method, tool, payload, redact=True)
        out.findings.extend(risk.findings)
        out.stored.append(redacted if redacted is not None else payload)
    return out


def _escaped(value: str) -> str:
    return orjson.dumps(value).decode()[1:-1]


def leaks(case: Case, outcome: Outcome) -> list[str]:
    """The case's sensitive ``values`` still readable in the stored payloads."""
    found = []
    for v in case.values:
        forms = {v, _escaped(v)}
        if any(f in text for text in outcome.stored for f in forms):
            found.append(v)
    return found


# -- scoring -------------------------------------------------------------------------------------


@dataclass
class Score:
    family: str
    split: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    misses: list[tuple[Case, list[Finding]]] = field(default_factory=list)
    """False negatives and false positives, with the family's findings."""

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def cases(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def add(self, other: Score) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self.misses.extend(other.misses)

    def line(self) -> str:
        return (
            f"{self.family:10s} {self.split:8s} cases={self.cases:4d} TP={self.tp:4d} FP={self.fp:3d} "
            f"FN={self.fn:3d} TN={self.tn:4d}  precision={self.precision:.3f} recall={self.recall:.3f}"
        )


def judge(case: Case, findings: Iterable[Finding], min_severity: str = "info") -> tuple[bool, list[Finding]]:
    """(counted as correct, the family's findings at ``min_severity`` or above) for one case."""
    floor = SEVERITY_RANK[min_severity]
    p = prefix(case.family)
    own = [f for f in findings if f.rule.startswith(p) and SEVERITY_RANK[f.severity] >= floor]
    if case.positive:
        return any(case.expects(f.rule) for f in own), own
    return not own, own


def evaluate(
    cases: Iterable[Case],
    *,
    min_severity: str = "info",
    outcomes: Mapping[int, Outcome] | None = None,
) -> dict[tuple[str, str], Score]:
    """Scores per ``(family, split)``. ``outcomes`` (by ``id(case)``) reuses earlier :func:`run` results."""
    scores: dict[tuple[str, str], Score] = {}
    for case in cases:
        outcome = outcomes[id(case)] if outcomes is not None else run(case)
        score = scores.setdefault((case.family, case.split), Score(case.family, case.split))
        ok, own = judge(case, outcome.findings, min_severity)
        if case.positive:
            score.tp += ok
            score.fn += not ok
        else:
            score.tn += ok
            score.fp += not ok
        if not ok:
            score.misses.append((case, own))
    return scores


def discover() -> dict[str, Callable[[], list[Case]]]:
    """``{family name: cases function}`` of every ``family_<name>.py`` module of this package."""
    found: dict[str, Callable[[], list[Case]]] = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda i: i.name):
        if info.name.startswith("family_"):
            module = importlib.import_module(f"{__package__}.{info.name}")
            found[info.name.removeprefix("family_")] = module.cases
    return found


# -- generated values ----------------------------------------------------------------------------

LOWER = string.ascii_lowercase
UPPER = string.ascii_uppercase
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


class Gen:
    """Deterministic random values (one ``random.Random(seed)``)."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def chars(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def pick(self, items: Sequence[Any]) -> Any:
        return items[self.r.randrange(len(items))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def word(self) -> str:
        return self.pick(WORDS)

    def sentence(self, n: int = 8) -> str:
        return " ".join(self.word() for _ in range(n)).capitalize() + "."

    def uuid(self) -> str:
        h = self.chars(32, HEX)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"

    def password(self) -> str:
        """A password as people and generators make them (words, digits, symbols; 10-24 chars)."""
        style = self.r.randrange(4)
        if style == 0:
            return self.chars(self.r.randint(12, 24), ALNUM + "!#%&*+-=?@^_")
        if style == 1:
            return f"{self.word().capitalize()}{self.r.randint(10, 9999)}{self.pick('!#%&*?@')}{self.word()}"
        if style == 2:
            return "-".join(self.word() for _ in range(3)) + str(self.r.randint(1, 99))
        return self.chars(self.r.randint(16, 32), ALNUM)


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
    "river",
    "garden",
    "window",
    "orange",
    "silver",
    "planet",
    "rocket",
    "forest",
    "castle",
    "harbor",
]
