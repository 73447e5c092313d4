"""VAT decisions and integer-cent arithmetic."""

from __future__ import annotations

import pytest

from billing.vat import VatTreatment, amounts, decide, format_cents, looks_valid, vat_of


@pytest.mark.parametrize(
    ("buyer", "number", "treatment", "rate"),
    [
        ("FR", None, VatTreatment.DOMESTIC, 2000),
        ("FR", "FR40303265045", VatTreatment.DOMESTIC, 2000),  # same country: VAT charged
        ("DE", "DE123456789", VatTreatment.REVERSE_CHARGE, 0),
        ("DE", "DE 123.456.789", VatTreatment.REVERSE_CHARGE, 0),
        ("DE", None, VatTreatment.EU_CONSUMER, 1900),
        ("DE", "DE12345", VatTreatment.EU_CONSUMER, 1900),  # malformed number
        ("DE", "IT12345678901", VatTreatment.EU_CONSUMER, 1900),  # another country's number
        ("GR", "EL123456789", VatTreatment.REVERSE_CHARGE, 0),
        ("CH", "CHE123456789", VatTreatment.OUT_OF_SCOPE, 0),
        ("US", None, VatTreatment.OUT_OF_SCOPE, 0),
    ],
)
def test_vat_for_a_french_seller(buyer: str, number: str | None, treatment: VatTreatment,
                                 rate: int) -> None:
    decision = decide("FR", buyer, number)
    assert (decision.treatment, decision.rate_bp) == (treatment, rate)
    assert decision.reverse_charge == (treatment is VatTreatment.REVERSE_CHARGE)


def test_a_seller_outside_the_eu_charges_only_at_home() -> None:
    rates = {"CH": 810}
    assert decide("CH", "CH", None, rates).rate_bp == 810
    assert decide("CH", "FR", None, rates).treatment is VatTreatment.OUT_OF_SCOPE


def test_vat_number_formats() -> None:
    assert looks_valid("NL123456789B01", "NL")
    assert not looks_valid("NL123456789", "NL")
    assert looks_valid("fr40303265045", "FR")
    assert not looks_valid("XX123", "XX")


@pytest.mark.parametrize(
    ("subtotal", "rate", "vat"),
    [(1000, 2000, 200), (999, 2000, 200), (997, 2000, 199), (1, 2000, 0), (3, 2000, 1),
     (-999, 2000, -200), (1234, 2550, 315), (0, 2000, 0)],
)
def test_vat_rounds_half_away_from_zero(subtotal: int, rate: int, vat: int) -> None:
    assert vat_of(subtotal, rate) == vat


def test_amounts_add_up_in_cents() -> None:
    result = amounts([1500, 2499], 2000)
    assert (result.subtotal_cents, result.vat_cents, result.total_cents) == (3999, 800, 4799)


def test_formatting_per_language() -> None:
    assert format_cents(123456) == "1,234.56 EUR"
    assert format_cents(123456, language="fr") == "1 234,56 EUR"
    assert format_cents(-5) == "-0.05 EUR"
