"""Personal data: e-mail addresses, phone numbers, payment cards, IBANs, US SSNs, national ids.

Rules (usual severity in brackets):

* ``pii.email`` (low): ``local@domain.tld``; not ``icon@2x.png`` (file extensions),
  ``git@github.com``, ``pkg@1.2.3``, ``@scope/pkg``, URL user-info (``://user:pass@host``).
* ``pii.phone`` (low): ``+`` international numbers (8-15 digits, separators allowed, no
  country code 0, no ``+1234567890`` sequences) and North American ``(555) 123-4567`` /
  ``555-123-4567`` / ``555.123.4567`` forms. Bare digit runs are not phone numbers: ids and
  timestamps look the same.
* ``pii.payment_card`` (high; low for published test numbers and long runs of one digit):
  13-19 digits, plain or grouped by one kind of separator (space, ``-``, ``.``) in a card
  layout, with a card network's prefix and length, and a valid Luhn check digit; also as a
  parameter value (``card=...``), where shorter numbers are taken for ids.
* ``pii.iban`` (medium): country code, check digits 02-98, the country's exact length,
  valid mod-97 checksum; compact or in groups of four.
* ``pii.us_ssn`` (high): ``AAA-GG-SSSS`` with a valid area (not ``000``, ``666``, ``9xx``),
  group and serial; with spaces only when "SSN"/"social security" is in the same string.

* ``pii.national_id`` (high): national identity numbers with a check digit or letter (Spain,
  Brazil, France, India, UK; see :mod:`kilometers.analysis.national_ids`).

All numeric detectors share one regex pass over digit runs; e-mail detection starts from
each ``@``. Messages only ever show a masked hint of the value.
"""

from __future__ import annotations

import itertools
import re

from . import national_ids
from .findings import Severity, mask
from .leaves import SEP, Hit, Leaves

_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}([A-Za-z]{2,24})(?![A-Za-z0-9_-])"
)
_FILE_EXTENSIONS = frozenset(
    [
        "png",
        "jpg",
        "jpeg",
        "gif",
        "svg",
        "webp",
        "ico",
        "bmp",
        "tif",
        "tiff",
        "avif",
        "heic",
        "js",
        "mjs",
        "cjs",
        "ts",
        "tsx",
        "jsx",
        "css",
        "scss",
        "less",
        "json",
        "yaml",
        "yml",
        "toml",
        "xml",
        "html",
        "htm",
        "md",
        "txt",
        "py",
        "rb",
        "go",
        "rs",
        "java",
        "kt",
        "swift",
        "php",
        "sh",
        "lock",
        "map",
        "wasm",
        "pdf",
        "zip",
        "gz",
        "tgz",
        "mp3",
        "mp4",
        "wav",
        "webm",
        "mov",
        "woff",
        "woff2",
        "ttf",
        "otf",
        "eot",
        "csv",
        "log",
        "ini",
        "cfg",
        "conf",
        "exe",
        "dll",
        "so",
        "dylib",
    ]
)
_GIT_USERS = frozenset({"git", "hg", "ssh", "ubuntu", "ec2-user", "root"})

_DIGIT_RUN = re.compile(r"[0-9][0-9 ().-]{6,48}[0-9]")
"""Candidate numbers. Bounded: a megabyte of ``1-1-1-...`` is cut into short candidates, not one."""
_NON_DIGITS = bytes(b for b in range(256) if not 48 <= b <= 57)
_GROUPS = re.compile(r"[0-9]+")
_SEPARATOR_DELETE = str.maketrans("", "", " ().-")
_SEPARATORS = re.compile(r"[^0-9]+")
_NANP = re.compile(r"(?:1[ .-]?)?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}")
_SSN = re.compile(r"([0-9]{3})([ -])([0-9]{2})\2([0-9]{4})")
_IBAN_START = re.compile(r"[A-Z]{2}[0-9]{2}")

_CARD_GROUPINGS = frozenset(
    {(4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 6, 5), (4, 6, 4), (4, 4, 4, 1), (4, 4, 4, 2), (4, 4, 4, 3), (4, 4, 5)}
)

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


MAX_CANDIDATES = 2000
"""E-mail and number candidates examined per message (bounds the cost of adversarial payloads)."""


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_network(digits: str) -> str | None:
    """The card network of a number by its issuer prefix and length, or None."""
    n = len(digits)
    two = int(digits[:2])
    four = int(digits[:4])
    if digits[0] == "4" and n in (13, 16, 19):
        return "Visa"
    if (51 <= two <= 55 or 2221 <= four <= 2720) and n == 16:
        return "Mastercard"
    if two in (34, 37) and n == 15:
        return "American Express"
    if (four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649) and n in (16, 19):
        return "Discover"
    if 3528 <= four <= 3589 and n in (16, 19):
        return "JCB"
    if (two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305) and n in (14, 16):
        return "Diners Club"
    if two == 62 and 16 <= n <= 19:
        return "UnionPay"
    return None


def iban_ok(compact: str) -> bool:
    country = compact[:2]
    if IBAN_LENGTHS.get(country) != len(compact) or not "02" <= compact[2:4] <= "98":
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(c, 36)) for c in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def _emails(leaves: Leaves, hits: list[Hit]) -> None:
    blob = leaves.blob
    at = blob.find("@")
    budget = MAX_CANDIDATES
    while at != -1 and budget > 0:
        budget -= 1
        start = at
        while start > 0 and at - start < 64 and blob[start - 1] in _LOCAL:
            start -= 1
        local = blob[start:at]
        # (the URL's own string only: another leaf's "//" says nothing about this one)
        if (
            start > 0
            and blob[start - 1] == ":"
            and "//" in blob[max(0, start - 140) : start].rpartition(SEP)[2]
        ):
            at = blob.find("@", at + 1)  # scheme://user:password@host: URL userinfo, not an address
            continue
        m = _DOMAIN.match(blob, at + 1)
        if (
            m is not None
            and local
            and local[0] != "."
            and local[-1] != "."
            and ".." not in local
            and local.lower() not in _GIT_USERS
            and m.group(1).lower() not in _FILE_EXTENSIONS
            and not local.replace(".", "").isdigit()
        ):
            end = m.end()
            address = blob[start:end]
            hits.append(leaves.hit("pii.email", "low", f"e-mail address {mask(address)}", start, end))
            at = blob.find("@", end)
        else:
            at = blob.find("@", at + 1)


def _card(blob: str, text: str, start: int) -> tuple[int, str] | None:
    """Length of the card number at the start of a digit run, and its network."""
    groups = _GROUPS.findall(text)
    seps = _SEPARATORS.findall(text)
    if seps and (len(set(seps)) != 1 or seps[0] not in (" ", "-", ".")):
        # mixed separators: only a plain leading number can be a card
        groups, seps = groups[:1], []
    for k in range(len(groups), 0, -1):
        used = groups[:k]
        digits = "".join(used)
        if not 13 <= len(digits) <= 19:
            continue
        if k > 1 and tuple(len(g) for g in used) not in _CARD_GROUPINGS:
            continue
        if len(set(digits)) == 1 or not luhn_ok(digits):
            continue
        network = card_network(digits)
        if network is None:
            continue
        length = sum(len(g) for g in used) + (len(seps[0]) * (k - 1) if seps else 0)
        return length, network
    return None


def _iban(blob: str, start: int, seen: set[int]) -> tuple[int, int] | None:
    window_start = max(0, start - 20)
    for m in _IBAN_START.finditer(blob, window_start, start + 4):
        s = m.start()
        if s in seen or (s > 0 and blob[s - 1] in _ALNUM):
            continue
        expected = IBAN_LENGTHS.get(blob[s : s + 2])
        if expected is None:
            continue
        compact: list[str] = []
        i = s
        n = len(blob)
        while i < n and len(compact) < expected:
            c = blob[i]
            if c.isascii() and (c.isdigit() or c.isupper()):
                compact.append(c)
            elif not (c == " " and i + 1 < n and blob[i + 1] != " " and compact):
                break
            i += 1
        if len(compact) != expected or (i < n and blob[i] in _ALNUM):
            continue
        if iban_ok("".join(compact)):
            seen.add(s)
            return s, i
    return None


def _try_iban(leaves: Leaves, start: int, seen: set[int], hits: list[Hit]) -> None:
    blob = leaves.blob
    if _IBAN_START.search(blob, max(0, start - 20), start + 4):
        found = _iban(blob, start, seen)
        if found:
            s, e = found
            hits.append(leaves.hit("pii.iban", "medium", f"IBAN {mask(blob[s:e])}", s, e))


def _numbers(leaves: Leaves, hits: list[Hit]) -> None:
    blob = leaves.blob
    seen_iban: set[int] = set()
    n = len(blob)
    for count, m in enumerate(_DIGIT_RUN.finditer(blob)):
        if count >= MAX_CANDIDATES:
            break
        start, end = m.span()
        text = m.group()
        before = blob[start - 1] if start else " "
        if before in _ALNUM or before in "._/\\#" or (end < n and blob[end] in _ALNUM):
            # glued to letters: part of an identifier, or the rest of an IBAN ("DE89 3704 ...")
            if before in _ALNUM or before == " ":
                _try_iban(leaves, start, seen_iban, hits)
            continue
        digits = len(text.translate(_SEPARATOR_DELETE))
        if before == "=" and digits < 13:
            continue  # "id=123456789": a value of a parameter is a card only when it checks as one
        if digits < 9 and before != "+":
            continue
        if digits >= 13:
            card = _card(blob, text, start)
            if card is not None:
                length, network = card
                value = blob[start : start + length]
                severity: Severity = "high"
                note = ""
                if _test_card(value):
                    severity, note = "low", " (a well-known test number)"
                message = f"{network} card number {mask(value)}{note}"
                hits.append(leaves.hit("pii.payment_card", severity, message, start, start + length))
                continue
        elif digits == 9:
            ssn = _SSN.match(text)
            if ssn is not None and _ssn_ok(ssn, leaves, start):
                e = start + ssn.end()
                if e == end or not blob[e].isdigit():
                    hits.append(
                        leaves.hit("pii.us_ssn", "high", f"US social security number {mask(text)}", start, e)
                    )
                    continue
        if before == "+":
            phone = _international(text)
            if phone:
                hits.append(
                    leaves.hit(
                        "pii.phone", "low", f"phone number {mask('+' + text)}", start - 1, start + phone
                    )
                )
                continue
        elif digits >= 10:
            nanp_start = start - 1 if before == "(" else start
            nanp = _NANP.match(blob, nanp_start)
            if (
                nanp is not None
                and (nanp.end() >= n or not blob[nanp.end()].isdigit())
                and (nanp_start == 0 or blob[nanp_start - 1] not in "+-.")
            ):
                message = f"phone number {mask(nanp.group())}"
                hits.append(leaves.hit("pii.phone", "low", message, nanp_start, nanp.end()))
                continue
        if digits >= 10:
            _try_iban(leaves, start, seen_iban, hits)


def _ssn_ok(m: re.Match[str], leaves: Leaves, offset: int) -> bool:
    area, sep, group, serial = m.group(1), m.group(2), m.group(3), m.group(4)
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    if sep == " ":
        leaf, _ = leaves.locate(offset)
        low = leaves.values[leaf].lower()
        return "ssn" in low or "social security" in low
    return True


KNOWN_TEST_CARDS = frozenset(
    {
        "4242424242424242",
        "4000056655665556",
        "5200828282828210",
        "2223003122003222",
        "378282246310005",
        "371449635398431",
        "6011000990139424",
        "6011111111111117",
        "3530111333300000",
        "3566002020360505",
        "30569309025904",
        "38520000023237",
        "4012888888881881",
        "4222222222222",
        "5105105105105100",
        "5555555555554444",
        "4111111111111111",
        "6200000000000005",
        "4007000000027",
    }
)


def _test_card(value: str) -> bool:
    """Published test numbers (payment providers' docs) and numbers made of long runs of one digit."""
    digits = "".join(c for c in value if c.isdigit())
    if digits in KNOWN_TEST_CARDS:
        return True
    run = best = 1
    for a, b in itertools.pairwise(digits):
        run = run + 1 if a == b else 1
        best = max(best, run)
    return best >= 7


def _sequential(digits: str) -> bool:
    steps = sum(1 for a, b in itertools.pairwise(digits) if abs(ord(b) - ord(a)) == 1)
    return steps >= len(digits) - 2


def _international(text: str) -> int:
    """Length of a ``+``-prefixed phone number (without the ``+``) at the start of a digit run, or 0."""
    length = 0
    digits = 0
    prev_sep = False
    for i, c in enumerate(text):
        if c.isdigit():
            digits += 1
            prev_sep = False
            length = i + 1
        elif c in " -.()":
            if prev_sep and c != "(" and text[i - 1] != ")":
                break
            prev_sep = True
        else:
            break
        if digits > 15:
            return 0
    if not 8 <= digits <= 15 or text[0] == "0":
        return 0  # country codes never start with 0
    if _sequential("".join(c for c in text[:length] if c.isdigit())):
        return 0  # +1234567890: an example
    seps = sum(1 for c in text[:length] if not c.isdigit())
    if seps == 0 and digits < 10:
        return 0
    return length


def scan(leaves: Leaves) -> list[Hit]:
    hits: list[Hit] = []
    blob = leaves.blob
    if "@" in blob:
        _emails(leaves, hits)
    digits = len(blob.encode("utf-8", "replace").translate(None, _NON_DIGITS))
    if digits >= 8:
        _numbers(leaves, hits)
    national_ids.scan(leaves, hits, digits)
    return hits


__all__ = ["IBAN_LENGTHS", "Severity", "card_network", "iban_ok", "luhn_ok", "scan"]
