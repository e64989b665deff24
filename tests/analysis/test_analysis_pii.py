"""Personal data detection: checksums and decisions."""

from __future__ import annotations

import pytest
from analysis_corpus import Gen
from analysis_corpus_pii import card, iban

from kilometers.analysis import Analyzer, Finding
from kilometers.analysis.pii import card_network, iban_ok, luhn_ok


def findings(text: str) -> list[Finding]:
    message = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": text}]}}
    risk = Analyzer().analyze("server_to_client", "response", "tools/call", "crm_lookup", message)
    return [f for f in risk.findings if f.rule.startswith("pii.")]


def rules(text: str) -> set[str]:
    return {f.rule for f in findings(text)}


def test_luhn_and_networks() -> None:
    assert luhn_ok("4539578763621486") and not luhn_ok("4539578763621487")
    assert card_network("4539578763621486") == "Visa"
    assert card_network("378282246310005") == "American Express"
    assert card_network("5555555555554444") == "Mastercard"
    assert card_network("2221000000000009") == "Mastercard"
    assert card_network("1234567812345670") is None
    g = Gen(1)
    for _ in range(200):
        network, number = card(g)
        assert luhn_ok(number) and card_network(number) is not None, (network, number)


def test_iban_checksums() -> None:
    assert iban_ok("DE89370400440532013000")
    assert iban_ok("GB29NWBK60161331926819")
    assert not iban_ok("DE89370400440532013001")
    assert not iban_ok("DE00000000000000000066")  # check digits 00/01/99 are never issued
    assert not iban_ok("XX89370400440532013000")
    g = Gen(2)
    for _ in range(200):
        assert iban_ok(iban(g))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Card 4539 5787 6362 1486, exp 04/28", {"pii.payment_card"}),
        ("4539-5787-6362-1486", {"pii.payment_card"}),
        ("4539 5787-6362 1486", set()),  # mixed separators are no card layout
        ("order 4539578763621487", set()),  # Luhn fails
        ("IBAN GB29 NWBK 6016 1331 9268 19.", {"pii.iban"}),
        ("SSN: 219-09-9999", {"pii.us_ssn"}),
        ("ssn 078 05 1120", {"pii.us_ssn"}),
        ("part number 219 09 9999", set()),
        ("Call +49 30 901820 or (212) 555-0143", {"pii.phone"}),
        ("+0123456789 and +1234567890", set()),
        ("jane.doe+crm@example.co.uk", {"pii.email"}),
        ("scheme://user:pass@example.com:123/path", set()),
        ("logo@2x.png, git@github.com:acme/app.git", set()),
    ],
)
def test_decisions(text: str, expected: set[str]) -> None:
    assert rules(text) == expected


def test_test_card_numbers_are_low() -> None:
    [f] = findings("Use 4242 4242 4242 4242 in test mode")
    assert (f.rule, f.severity) == ("pii.payment_card", "low")
    [f] = findings("card 4539578763621486")
    assert f.severity == "high"


def test_messages_are_masked_and_paths_exact() -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "crm_update", "arguments": {"contact": {"phones": ["x", "+44 20 7946 0958"]}}},
    }
    risk = Analyzer().analyze("client_to_server", "request", "tools/call", "crm_update", message)
    [f] = [f for f in risk.findings if f.rule == "pii.phone"]
    assert f.path == "/params/arguments/contact/phones/1"
    assert "7946" not in f.message and "0958" not in f.message


def test_cards_grouped_by_dots_and_as_parameter_values() -> None:
    assert rules("card 4539.5787.6362.1486 on file") == {"pii.payment_card"}
    assert rules("4539.5787.6362.1487") == set()  # Luhn fails
    assert rules("10.0.12.7 and v1.2.3.4") == set()
    assert rules('level=info card="4539578763621486"') == {"pii.payment_card"}
    assert rules("level=info card=4539578763621486 user=12") == {"pii.payment_card"}
    assert rules("GET /orders?id=123456789&page=2") == set()  # a parameter value is a card only if it checks


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("DNI 12345678Z", True),
        ("DNI 12345678A", False),  # wrong check letter
        ("NIE X-1234567-L", True),
        ("CPF 529.982.247-25", True),
        ("CPF 529.982.247-26", False),
        ("CPF 52998224725", False),  # bare 11 digits: also a phone number
        ("NIR 1 84 12 76 451 089 46", True),
        ("NIR 1 84 12 76 451 089 47", False),
        ("Aadhaar 2345 6789 0124", True),
        ("Aadhaar 2345 6789 0123", False),  # Verhoeff fails
        ("card 4173 9806 6922 7842 rejected", False),  # a longer group of numbers is no Aadhaar
        ("NINO AB 12 34 56 C", True),
        ("NINO QQ 12 34 56 C", False),  # HMRC's documentation prefix is never issued
        ("part AB123456X", False),
    ],
)
def test_national_identity_numbers(text: str, found: bool) -> None:
    assert (rules(text) == {"pii.national_id"}) is found, findings(text)
