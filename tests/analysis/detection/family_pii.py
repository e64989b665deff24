"""Personal data in tool traffic: e-mail addresses, phone numbers, payment cards, IBANs and
national identity numbers (US SSN), in records, CSV, prose, forms and nested JSON, and the
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
    kind = g.pick(["email", "phone", "card", "iban", "ssn"])
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


FIELD = {"email": "email", "phone": "phone", "card": "card_number", "iban": "iban", "ssn": "ssn"}


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
