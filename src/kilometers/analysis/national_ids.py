"""National identity numbers with a check digit or letter (rule ``pii.national_id``, high).

Only formats whose checksum or layout makes a random match unlikely:

* Spain: DNI ``12345678Z`` and NIE ``X1234567L`` (mod-23 check letter; ``-`` allowed before it)
* Brazil: CPF ``123.456.789-09`` (two check digits; only in this layout: 11 bare digits are
  also phone numbers)
* France: NIR ``1 84 12 76 451 089 46`` (15 digits, sex 1/2, month, key = 97 - n mod 97)
* India: Aadhaar ``2345 6789 0123`` (grouped 4-4-4, Verhoeff check digit)
* United Kingdom: National Insurance number ``QQ 12 34 56 C`` / ``QQ123456C`` (valid prefix
  letters, suffix A-D)

The US SSN has its own rule (``pii.us_ssn`` in :mod:`kilometers.analysis.pii`).
"""

from __future__ import annotations

import re

from .findings import mask
from .leaves import Hit, Leaves

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_LETTERS = re.compile(
    r"(?<![\w.-])(?:(?P<nie>[XYZ])-?(?P<nie_n>\d{7})|(?P<dni>\d{8}))-?(?P<check>[A-Z])(?![\w-])"
)
_NINO = re.compile(
    r"(?<![\w-])(?P<prefix>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])"
    r"(?P<sp> ?)\d{2}(?P=sp)\d{2}(?P=sp)\d{2}(?P=sp)[A-D](?![\w-])"
)
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
_NUMERIC = re.compile(  # not part of a longer group of numbers ("4173 9806 6922 7842")
    r"(?<![\w.,/-])(?<!\d )(?:(?P<cpf>\d{3}\.\d{3}\.\d{3}-\d{2})"
    r"|(?P<nir>[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2})"
    r"|(?P<aadhaar>[2-9]\d{3}(?P<asep>[ -])\d{4}(?P=asep)\d{4}))(?![\w.,/-])(?! \d)"
)

# Verhoeff tables
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)  # fmt: skip
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)  # fmt: skip


def verhoeff_ok(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][ord(ch) - 48]]
    return c == 0


def dni_letter(number: int) -> str:
    return _DNI_LETTERS[number % 23]


def cpf_ok(digits: str) -> bool:
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    for n in (9, 10):
        total = sum(int(digits[i]) * (n + 1 - i) for i in range(n))
        if (total * 10 % 11) % 10 != int(digits[n]):
            return False
    return True


def nir_ok(text: str) -> bool:
    compact = text.replace(" ", "")
    if len(compact) != 15:
        return False
    body = compact[:13].replace("2A", "19").replace("2B", "18")
    if not body.isdigit():
        return False
    return 97 - int(body) % 97 == int(compact[13:])


def _hit(leaves: Leaves, hits: list[Hit], label: str, start: int, end: int) -> None:
    value = leaves.blob[start:end]
    hits.append(leaves.hit("pii.national_id", "high", f"{label} {mask(value)}", start, end))


def scan(leaves: Leaves, hits: list[Hit], digits: int) -> None:
    """National identity numbers in the leaves (``digits``: how many digits the blob has)."""
    blob = leaves.blob
    if digits < 6:
        return
    for m in _LETTERS.finditer(blob):
        if m.group("dni") is not None:
            number, label = int(m.group("dni")), "Spanish DNI"
        else:
            number, label = int("XYZ".index(m.group("nie")) * 10**7 + int(m.group("nie_n"))), "Spanish NIE"
        if dni_letter(number) == m.group("check"):
            _hit(leaves, hits, label, *m.span())
    for m in _NINO.finditer(blob):
        if m.group("prefix") not in _NINO_BAD_PREFIXES:
            _hit(leaves, hits, "UK National Insurance number", *m.span())
    if digits < 11:
        return
    for m in _NUMERIC.finditer(blob):
        text = m.group()
        if m.group("cpf") is not None and cpf_ok(re.sub(r"\D", "", text)):
            _hit(leaves, hits, "Brazilian CPF", *m.span())
        elif m.group("nir") is not None and nir_ok(text):
            _hit(leaves, hits, "French social security number (NIR)", *m.span())
        elif m.group("aadhaar") is not None and verhoeff_ok(re.sub(r"\D", "", text)):
            _hit(leaves, hits, "Aadhaar number", *m.span())
