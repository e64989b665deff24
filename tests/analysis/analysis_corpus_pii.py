"""PII corpus: generated e-mails, phones, Luhn-valid cards, mod-97-valid IBANs and SSNs, and look-alikes."""

from __future__ import annotations

import string

from analysis_corpus import HEX, Case, Gen, neg, pos

from kilometers.analysis.pii import IBAN_LENGTHS, luhn_ok

F = "pii"
DIGITS = string.digits
FIRST = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "oscar",
]
LAST = ["smith", "jones", "garcia", "müller", "rossi", "dubois", "tanaka", "kowalski", "silva", "nguyen"]
DOMAINS = [
    "example.com",
    "acme.io",
    "mail.example.org",
    "corp.example.co.uk",
    "uni.example.edu",
    "startup.dev",
]


def luhn_complete(prefix: str, length: int, g: Gen) -> str:
    body = prefix + g.chars(length - len(prefix) - 1, DIGITS)
    for d in DIGITS:
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


def card(g: Gen) -> tuple[str, str]:
    network, prefix, length = g.pick(
        [
            ("visa", "4", 16),
            ("visa", "4", 16),
            ("mastercard", str(g.r.randint(51, 55)), 16),
            ("mastercard", str(g.r.randint(2221, 2720)), 16),
            ("amex", g.pick(["34", "37"]), 15),
            ("discover", "6011", 16),
            ("jcb", str(g.r.randint(3528, 3589)), 16),
            ("diners", "36", 14),
            ("unionpay", "62", 16),
        ]
    )
    return network, luhn_complete(prefix, length, g)


def group_card(number: str, sep: str) -> str:
    if len(number) in (14, 15):
        parts = [number[:4], number[4:10], number[10:]]
    else:
        parts = [number[i : i + 4] for i in range(0, len(number), 4)]
    return sep.join(parts)


def iban(g: Gen, country: str | None = None) -> str:
    country = country or g.pick(
        ["DE", "GB", "FR", "NL", "ES", "IT", "CH", "BE", "AT", "PL", "SE", "NO", "IE", "PT"]
    )
    length = IBAN_LENGTHS[country]
    bban_len = length - 4
    if country in ("GB", "NL", "IE"):
        bban = g.chars(4, string.ascii_uppercase) + g.chars(bban_len - 4, DIGITS)
    elif country == "IT":
        bban = g.pick(string.ascii_uppercase) + g.chars(bban_len - 1, DIGITS)
    else:
        bban = g.chars(bban_len, DIGITS)
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    check = 98 - numeric % 97
    return f"{country}{check:02d}{bban}"


def spaced(value: str) -> str:
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def ssn(g: Gen) -> str:
    area = g.r.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{g.r.randint(1, 99):02d}-{g.r.randint(1, 9999):04d}"


def email(g: Gen) -> str:
    first, last = g.pick(FIRST), g.pick(LAST).replace("ü", "ue")
    local = g.pick(
        [
            f"{first}.{last}",
            f"{first}{g.r.randint(1, 99)}",
            f"{first[0]}{last}",
            f"{first}+news",
            f"{first}_{last}",
            f"{first.upper()}.{last.title()}",
        ]
    )
    return f"{local}@{g.pick(DOMAINS)}"


def phone(g: Gen) -> str:
    area, ex, line = g.r.randint(201, 989), g.r.randint(200, 999), g.r.randint(0, 9999)
    return g.pick(
        [
            f"({area}) {ex}-{line:04d}",
            f"{area}-{ex}-{line:04d}",
            f"{area}.{ex}.{line:04d}",
            f"+1 {area} {ex} {line:04d}",
            f"+1-{area}-{ex}-{line:04d}",
            f"1-800-{ex}-{line:04d}",
            f"+44 20 {g.r.randint(7000, 8999)} {line:04d}",
            f"+49 30 {g.r.randint(100000, 999999)}",
            f"+33 1 {g.r.randint(10, 99)} {g.r.randint(10, 99)} {g.r.randint(10, 99)} {g.r.randint(10, 99)}",
            f"+81 3-{g.r.randint(1000, 9999)}-{line:04d}",
            f"+1{area}{ex}{line:04d}",
            f"+61 2 {g.r.randint(1000, 9999)} {line:04d}",
        ]
    )


def _contexts(value: str, label: str, g: Gen) -> list[tuple[str, str]]:
    return [
        (value, "bare"),
        (f"Please contact {g.pick(FIRST).title()} ({label}: {value}) about the {g.word()}.", "prose"),
        (f'{{"customer": {{"name": "{g.pick(FIRST)}", "{label}": "{value}", "tier": "gold"}}}}', "json"),
        (f"name,{label},city\n{g.pick(FIRST)},{value},Berlin\n", "csv"),
    ]


def positives() -> list[Case]:
    g = Gen(303)
    cases: list[Case] = []
    makers = [
        ("pii.email", "email", email),
        ("pii.phone", "phone", phone),
        ("pii.payment_card", "card", lambda g: group_card(card(g)[1], g.pick(["", " ", "-"]))),
        ("pii.iban", "iban", lambda g: iban(g) if g.r.random() < 0.5 else spaced(iban(g))),
        ("pii.us_ssn", "ssn", ssn),
    ]
    for rule, label, make in makers:
        for i in range(32):
            value = make(g)
            text, ctx = _contexts(value, label, g)[i % 4]
            cases.append(pos(F, rule, text, f"{rule} {ctx} {value}"))
    cases.append(pos(F, "pii.email", "mailto:jane.doe@example.com?subject=Hi", "mailto"))
    cases.append(pos(F, "pii.email", "From: Jane <jane@example.co.uk>", "angle brackets"))
    cases.append(pos(F, "pii.phone", "Call us at (555) 123-4567 today", "classic fake 555 number"))
    cases.append(
        pos(F, "pii.payment_card", "4111 1111 1111 1111", "well-known test Visa (still a card number)")
    )
    cases.append(
        pos(F, "pii.payment_card", "card: 5500-0055-5555-5559 exp 12/27 cvc 123", "card with expiry")
    )
    cases.append(pos(F, "pii.iban", "IBAN DE89 3704 0044 0532 0130 00", "textbook IBAN"))
    cases.append(pos(F, "pii.us_ssn", "SSN 078 05 1120", "spaces next to SSN"))
    cases.append(pos(F, "pii.national_id", "DNI 12345678Z", "Spanish DNI"))
    return cases


def _invalid_card(g: Gen) -> str:
    _, number = card(g)
    last = int(number[-1])
    return number[:-1] + str((last + g.r.randint(1, 9)) % 10)


def _invalid_iban(g: Gen) -> str:
    value = iban(g)
    i = g.r.randint(4, len(value) - 1)
    digit = value[i]
    if digit.isdigit():
        value = value[:i] + str((int(digit) + 1) % 10) + value[i + 1 :]
    else:
        value = value[:2] + f"{(int(value[2:4]) + 1) % 100:02d}" + value[4:]
    return value


def negatives() -> list[Case]:
    g = Gen(404)
    cases: list[Case] = []
    for _ in range(12):
        cases.append(neg(F, f"Card: {group_card(_invalid_card(g), ' ')}", "Luhn-invalid card"))
        cases.append(neg(F, f"account {_invalid_iban(g)}", "IBAN with a wrong check"))
        cases.append(neg(F, f"order id {g.chars(16, DIGITS)}0", "long order number"))
        cases.append(neg(F, str(1_700_000_000_000 + g.r.randint(0, 10**11)), "epoch milliseconds"))
        cases.append(neg(F, g.uuid(), "uuid"))
        cases.append(
            neg(
                F,
                f"{g.r.randint(1, 223)}.{g.r.randint(0, 255)}.{g.r.randint(0, 255)}.{g.r.randint(1, 254)}",
                "ipv4",
            )
        )
        cases.append(
            neg(
                F,
                f"2026-{g.r.randint(1, 12):02d}-{g.r.randint(1, 28):02d}T{g.r.randint(0, 23):02d}:"
                f"{g.r.randint(0, 59):02d}:00Z",
                "timestamp",
            )
        )
        cases.append(neg(F, f"v{g.r.randint(0, 20)}.{g.r.randint(0, 99)}.{g.r.randint(0, 999)}", "version"))
        cases.append(neg(F, g.chars(40, HEX), "sha"))
        cases.append(neg(F, f"{g.r.randint(100, 999)}-{g.r.randint(1000, 9999)}", "7-digit local number"))
    for area in ("000", "666", "900", "987"):
        cases.append(neg(F, f"{area}-12-3456", f"SSN-shaped with invalid area {area}"))
    cases += [
        neg(F, "123-00-4567", "SSN with group 00"),
        neg(F, "123-45-0000", "SSN with serial 0000"),
        neg(F, "id 123456789 and 123 45 6789", "bare 9 digits"),
        neg(F, "icon@2x.png logo@3x.webp", "retina image names"),
        neg(F, "git clone git@github.com:org/repo.git", "git ssh url"),
        neg(F, "npm install @types/node lodash@4.17.21", "npm packages"),
        neg(F, "ssh deploy@localhost", "no tld"),
        neg(F, "https://medium.com/@author/some-post-title", "medium handle"),
        neg(F, "@decorator\ndef f(): pass", "decorator"),
        neg(F, "a@b.c", "one-letter tld"),
        neg(F, "user@host:~$ ls", "shell prompt"),
        neg(F, "2026-11-27 10:30:15.123", "datetime"),
        neg(F, "Server: 10.0.0.1:8080, 192.168.1.100", "private ips"),
        neg(F, "pi = 3.14159265358979", "pi"),
        neg(F, "Build 20241127.1 (commit 4f3c2a1)", "build number"),
        neg(F, "Tracking: 1Z999AA10123456784", "ups tracking"),
        neg(F, "created: Fri Nov 27 2026 22:46:10 GMT+0000 (Coordinated Universal Time)", "js date"),
        neg(F, "0000 0000 0000 0000", "all zeros card"),
        neg(F, "ISBN 978-0-13-468599-1", "isbn"),
        neg(F, "Price: $1,234,567.89", "price"),
        neg(F, "Coordinates: 37.7749, -122.4194", "coordinates"),
        neg(F, "ZIP 94103-1234", "zip+4"),
        neg(F, "color: #1a2b3c; margin: 0 0 12px", "css"),
        neg(F, "Duration 00:15:30.250", "duration"),
        neg(F, "RFC 7231, ISO 8601, HTTP/1.1 200 OK", "standards"),
        neg(F, "localhost:3000 and 127.0.0.1:5432", "ports"),
        neg(F, "1.0.0-beta.1+exp.sha.5114f85", "semver"),
        neg(F, "[FILE] report-2026-03.pdf 1234567 B", "file size"),
        neg(F, "XX12 3456 7890 1234 5678 90", "unknown IBAN country"),
        neg(F, "Invoice INV-2026-000123 total 1499.00 EUR", "invoice number"),
        neg(F, "Phone extension ext. 1234", "extension"),
        neg(F, "timezone GMT+0100, UTC-05:00", "offsets"),
        neg(F, "+1", "lone plus one"),
        neg(F, "ratio 16:9, 1920x1080, 3840 x 2160", "resolutions"),
        neg(F, "matrix [[1, 2, 3], [4, 5, 6]] sum=21", "numbers in code"),
        neg(F, "request-id: 7d9f8b6c-5d2e-4f3a-9b1c-0a1b2c3d4e5f", "request id"),
        neg(F, "Total: 1 files, 1 directories\nCombined size: 7 B", "filesystem summary"),
    ]
    return cases


def cases() -> list[Case]:
    return positives() + negatives()
