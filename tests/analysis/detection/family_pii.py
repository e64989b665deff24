"""Personal data in tool traffic: e-mail addresses, phone numbers, payment cards, IBANs and
national identity numbers (US SSN, Spanish DNI/NIE, Brazilian CPF, French NIR, Aadhaar, UK
NINO), in records, CSV, prose, forms and nested JSON, and the
numbers and addresses of ordinary traffic that only look like them (ids, versions, dates,
hashes, package and git addresses, numbers failing their checksum).

Tune and held-out parts differ in seeds, layouts, name and country lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .cases import DIGITS, HEX, Case, Gen, Split, Step, call, ordinary_steps, result_text, structured_result

F = "pii"

FIRST = {
    "tune": ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"],
    "heldout": ["jose", "maria", "yuki", "olu", "priya", "lars", "chen", "fatima"],
}
LAST = {
    "tune": ["smith", "jones", "miller", "brown", "wilson", "moore"],
    "heldout": ["garcia", "tanaka", "okafor", "sharma", "nilsen", "wang"],
}
DOMAINS = {
    "tune": ["example-corp.com", "mail.acme.io", "gmail.com", "outlook.com"],
    "heldout": ["uni-heidelberg.de", "correo.es", "company.co.uk", "fastmail.fm"],
}


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def card(g: Gen) -> tuple[str, tuple[int, ...]]:
    """A Luhn-valid number of a real network and its usual grouping."""
    kind = g.pick(["visa", "mc", "amex", "discover"])
    if kind == "visa":
        body, groups = "4" + g.chars(14, DIGITS), (4, 4, 4, 4)
    elif kind == "mc":
        prefix = g.pick(["51", "52", "53", "54", "55", str(g.int(2221, 2720))])
        body, groups = prefix + g.chars(15 - len(prefix), DIGITS), (4, 4, 4, 4)
    elif kind == "amex":
        body, groups = g.pick(["34", "37"]) + g.chars(12, DIGITS), (4, 6, 5)
    else:
        body, groups = "6011" + g.chars(11, DIGITS), (4, 4, 4, 4)
    return body + luhn_digit(body), groups


def grouped(number: str, groups: tuple[int, ...], sep: str) -> str:
    out, at = [], 0
    for n in groups:
        out.append(number[at : at + n])
        at += n
    return sep.join(out)


def iban(g: Gen, country: str) -> str:
    lengths = {
        "DE": 22,
        "GB": 22,
        "FR": 27,
        "NL": 18,
        "ES": 24,
        "IT": 27,
        "BE": 16,
        "CH": 21,
        "PL": 28,
        "AT": 20,
    }
    if country in ("GB", "NL"):
        bban = g.chars(4, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") + g.chars(lengths[country] - 8, DIGITS)
    elif country == "IT":
        bban = g.chars(1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") + g.chars(lengths[country] - 5, DIGITS)
    else:
        bban = g.chars(lengths[country] - 4, DIGITS)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def ssn(g: Gen) -> str:
    area = g.pick([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{g.int(1, 99):02d}-{g.int(1, 9999):04d}"


DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def cpf(g: Gen) -> str:
    d = [g.int(0, 9) for _ in range(9)]
    for n in (9, 10):
        d.append((sum(d[i] * (n + 1 - i) for i in range(n)) * 10 % 11) % 10)
    s = "".join(map(str, d))
    return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}"


def nir(g: Gen, spaced: bool) -> str:
    body = f"{g.int(1, 2)}{g.int(40, 99):02d}{g.int(1, 12):02d}{g.int(1, 95):02d}"
    body += f"{g.int(1, 999):03d}{g.int(1, 999):03d}"
    key = 97 - int(body) % 97
    if not spaced:
        return f"{body}{key:02d}"
    return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"


def aadhaar(g: Gen) -> str:
    """A 12-digit number with a Verhoeff check digit (computed by brute force over 10 candidates)."""
    d_table = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ]  # fmt: skip
    p_table = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ]  # fmt: skip

    def valid(digits: str) -> bool:
        c = 0
        for i, ch in enumerate(reversed(digits)):
            c = d_table[c][p_table[i % 8][int(ch)]]
        return c == 0

    body = str(g.int(2, 9)) + g.chars(10, DIGITS)
    number = next(body + str(k) for k in range(10) if valid(body + str(k)))
    return f"{number[:4]} {number[4:8]} {number[8:]}"


def nino(g: Gen, spaced: bool) -> str:
    first = g.pick("ABCEGHJKLMNPRSTWXYZ")
    second = g.pick("ABCEGHJKLMNPRSTWXYZ")
    while first + second in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        second = g.pick("ABCEGHJKLMNPRSTWXYZ")
    digits = g.chars(6, DIGITS)
    suffix = g.pick("ABCD")
    if spaced:
        return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{first}{second}{digits}{suffix}"


def national_id(g: Gen, split: Split) -> str:
    if split == "tune":
        kind = g.pick(["dni", "cpf", "nir", "nino"])
        if kind == "dni":
            n = g.int(10**7, 10**8 - 1)
            return f"{n}{DNI_LETTERS[n % 23]}"
        if kind == "cpf":
            return cpf(g)
        if kind == "nir":
            return nir(g, spaced=True)
        return nino(g, spaced=True)
    kind = g.pick(["nie", "aadhaar", "nino", "nir"])
    if kind == "nie":
        prefix = g.pick("XYZ")
        n = g.int(0, 10**7 - 1)
        return f"{prefix}{n:07d}{DNI_LETTERS[('XYZ'.index(prefix) * 10**7 + n) % 23]}"
    if kind == "aadhaar":
        return aadhaar(g)
    if kind == "nir":
        return nir(g, spaced=False)
    return nino(g, spaced=False)


def phone(g: Gen, split: Split) -> str:
    if split == "tune":
        return g.pick(
            [
                f"+1 {g.int(201, 989)} {g.int(200, 999)} {g.int(1000, 9999)}",
                f"({g.int(201, 989)}) {g.int(200, 999)}-{g.int(1000, 9999)}",
                f"+44 20 {g.int(7000, 8999)} {g.int(1000, 9999)}",
                f"+49 30 {g.int(1000000, 9999999)}",
                f"+61 4{g.int(10, 99)} {g.int(100, 999)} {g.int(100, 999)}",
                f"+91 9{g.int(1000, 9999)} {g.int(10000, 99999)}",
                f"+55 11 9{g.int(1000, 9999)}-{g.int(1000, 9999)}",
                f"1-{g.int(201, 989)}-{g.int(200, 999)}-{g.int(1000, 9999)}",
                f"+353.1.{g.int(100, 999)}.{g.int(1000, 9999)}",
            ]
        )
    return g.pick(
        [
            f"+33 6 {g.int(10, 99)} {g.int(10, 99)} {g.int(10, 99)} {g.int(10, 99)}",
            f"{g.int(201, 989)}-{g.int(200, 999)}-{g.int(1000, 9999)}",
            f"+81-3-{g.int(1000, 9999)}-{g.int(1000, 9999)}",
            f"+34 {g.int(600, 699)} {g.int(100, 999)} {g.int(100, 999)}",
            f"{g.int(201, 989)}.{g.int(200, 999)}.{g.int(1000, 9999)}",
        ]
    )


def email(g: Gen, split: Split) -> str:
    first, last = g.pick(FIRST[split]), g.pick(LAST[split])
    local = g.pick([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{g.int(1, 99)}", first])
    return f"{local}@{g.pick(DOMAINS[split])}"


Value = tuple[str, str, str]
"""(kind, value as written, rule)"""


def value(g: Gen, split: Split) -> Value:
    kind = g.pick(["email", "phone", "card", "iban", "ssn", "national id"])
    if kind == "national id":
        return kind, national_id(g, split), "pii.national_id"
    if kind == "email":
        return kind, email(g, split), "pii.email"
    if kind == "phone":
        return kind, phone(g, split), "pii.phone"
    if kind == "card":
        number, groups = card(g)
        seps = ["", " ", "-", "."] if split == "tune" else ["", " "]
        return kind, grouped(number, groups, g.pick(seps)) if g.chance(0.7) else number, "pii.payment_card"
    if kind == "iban":
        countries = ["DE", "GB", "FR", "NL", "PL", "AT"] if split == "tune" else ["ES", "IT", "BE", "CH"]
        v = iban(g, g.pick(countries))
        if g.chance(0.5):
            v = " ".join(v[i : i + 4] for i in range(0, len(v), 4))
        return kind, v, "pii.iban"
    return kind, ssn(g), "pii.us_ssn"


FIELD = {
    "email": "email",
    "phone": "phone",
    "card": "card_number",
    "iban": "iban",
    "ssn": "ssn",
    "national id": "national_id",
}


def _record(v: Value, g: Gen, split: Split) -> list[Step]:
    kind, text, _ = v
    row = {"id": g.int(1000, 99999), "name": f"{g.pick(FIRST[split]).title()}", FIELD[kind]: text}
    return [structured_result({"rows": [row]}, "query_customers")]


def _csv(v: Value, g: Gen, split: Split) -> list[Step]:
    kind, text, _ = v
    head = f"id,name,{FIELD[kind]},created\n"
    row = f"{g.int(1, 999)},{g.pick(FIRST[split]).title()},{text},2026-0{g.int(1, 9)}-1{g.int(0, 9)}\n"
    return [result_text(head + row, "read_text_file")]


def _prose(v: Value, g: Gen, split: Split) -> list[Step]:
    _, text, _ = v
    return [
        result_text(f"{g.sentence(6)} Please contact the customer at {text} before friday. {g.sentence(4)}")
    ]


def _form_args(v: Value, g: Gen, split: Split) -> list[Step]:
    kind, text, _ = v
    return [call("submit_form", {"fields": {FIELD[kind]: text, "comment": g.sentence(5)}})]


def _email_draft(v: Value, g: Gen, split: Split) -> list[Step]:
    _, text, _ = v
    body = f"Hi {g.pick(FIRST[split]).title()},\n\nmy details are below.\n\n{text}\n\nThanks"
    return [call("send_email", {"to": "support@vendor.example", "subject": "Refund", "body": body})]


def _markdown_table(v: Value, g: Gen, split: Split) -> list[Step]:
    kind, text, _ = v
    table = f"| name | {FIELD[kind]} |\n|---|---|\n| {g.pick(LAST[split]).title()} | {text} |\n"
    return [result_text(table, "search_tickets")]


def _json_text(v: Value, g: Gen, split: Split) -> list[Step]:
    kind, text, _ = v
    data = {"customer": {"profile": {FIELD[kind]: text, "tier": "gold"}}}
    return [result_text(json.dumps(data, indent=2), "get_customer")]


def _log_line(v: Value, g: Gen, split: Split) -> list[Step]:
    _, text, _ = v
    line = f"2026-11-0{g.int(1, 9)}T10:{g.int(10, 59)}:00Z INFO checkout user={g.int(100, 999)} value={text}"
    return [result_text(line + "\n", "tail_logs")]


def _kv_log(v: Value, g: Gen, split: Split) -> list[Step]:
    kind, text, _ = v
    return [
        result_text(f'level=info msg="profile updated" user={g.int(1, 999)} {FIELD[kind]}="{text}"\n', "logs")
    ]


def _html(v: Value, g: Gen, split: Split) -> list[Step]:
    _, text, _ = v
    return [result_text(f"<tr><td>{g.pick(LAST[split]).title()}</td><td>{text}</td></tr>", "fetch_page")]


def _yaml_record(v: Value, g: Gen, split: Split) -> list[Step]:
    kind, text, _ = v
    return [result_text(f"- name: {g.pick(FIRST[split]).title()}\n  {FIELD[kind]}: {text}\n  active: true\n")]


LAYOUTS: dict[Split, dict[str, Callable[[Value, Gen, Split], list[Step]]]] = {
    "tune": {"record": _record, "csv": _csv, "prose": _prose, "form": _form_args, "kv log": _kv_log,
             "html": _html, "yaml": _yaml_record},
    "heldout": {"email draft": _email_draft, "markdown table": _markdown_table, "json text": _json_text,
                "log line": _log_line},
}  # fmt: skip


def _positives(split: Split, g: Gen, count: int) -> list[Case]:
    out = []
    for i in range(count):
        v = value(g, split)
        name = g.pick(sorted(LAYOUTS[split]))
        steps = LAYOUTS[split][name](v, g, split)
        out.append(Case(F, tuple(steps), {v[2]}, split, f"{v[0]} in {name} #{i}: {v[1]!r}", (v[1],)))
    return out


def _negatives(split: Split, g: Gen) -> list[Case]:
    bad_card = "4" + g.chars(14, DIGITS)
    bad_card += str((int(luhn_digit(bad_card)) + 1) % 10)
    texts_tune = [
        f"Order {g.int(10**9, 10**10 - 1)} shipped on 2026-11-04 at 10:32:11.",
        f"version 1.{g.int(0, 40)}.{g.int(0, 99)} released; build {g.int(10**6, 10**7)}",
        f"commit {g.chars(40, HEX)} by the release bot",
        "Install with npm i @scope/pkg@1.2.3 or clone git@github.com:org/repo.git",
        "See icon@2x.png and logo@3x.webp in the assets folder.",
        f"Card number {grouped(bad_card, (4, 4, 4, 4), ' ')} was rejected (invalid).",
        f"request_id={g.uuid()} latency_ms={g.int(1, 900)} status=200",
        f"timestamp {g.int(1_700_000_000_000, 1_800_000_000_000)} epoch ms",
        "Call the main switchboard extension 1234 or ISBN 978-3-16-148410-0.",
        "Server listening on 10.0.12.7:8080 and [::1]:9090",
        f"SSN field format: 000-{g.int(10, 99)}-{g.int(1000, 9999)} is never issued",
        "Total: 1,234,567.89 EUR across 12 invoices (2026-01-01 to 2026-03-31)",
    ]
    texts_heldout = [
        f"Tracking number 1Z{g.chars(16, DIGITS)} via UPS",
        f"sha256:{g.chars(64, HEX)}",
        "docker pull ghcr.io/org/app@sha256:" + g.chars(64, HEX),
        f"Coordinates 52.{g.int(100000, 999999)}, 13.{g.int(100000, 999999)}",
        f"Invoice INV-{g.int(2026000, 2026999)}-{g.int(100, 999)} due in 30 days",
        "Contact us via the form at https://example.org/contact (no e-mail needed).",
        f"Phone numbers are stored as E.164 (+<country><number>); {g.int(10, 99)} records updated",
        "DE00 "
        + " ".join(g.chars(4, DIGITS) for _ in range(4))
        + f" {g.chars(2, DIGITS)} is not a valid IBAN",
        f"Build #{g.int(1000, 9999)} took {g.int(1, 59)}m{g.int(1, 59)}s; {g.int(100, 999)} tests passed",
        f"user_id: {g.int(10**15, 10**16 - 1)}",
        "the range 192.168.0.0/16 and 2001:db8::/32 are private or documentation ranges",
        "Use user@localhost only for local testing of the mail relay config.",
    ]
    out = []
    for i, text in enumerate(texts_tune if split == "tune" else texts_heldout):
        out.append(Case(F, (result_text(text),), (), split, f"ordinary text #{i}: {text[:40]!r}"))
    sessions = ordinary_steps()
    names = ("filesystem", "fs_tools_list") if split == "tune" else ("everything", "everything_tools_list")
    for name in names:
        for j, step in enumerate(sessions[name]):
            out.append(Case(F, (step,), (), split, f"{name} message #{j}"))
    return out


def cases() -> list[Case]:
    out: list[Case] = []
    for split, seed in (("tune", 21), ("heldout", 7021)):
        g = Gen(seed)
        out += _positives(split, g, 160 if split == "tune" else 80)
        out += _negatives(split, g)
    return out
