"""VAT: which rate applies to a buyer, and the amounts, in integer cents.

The rules (EU VAT on electronically supplied services):
- a buyer in the seller's country pays the seller's rate, VAT number or not;
- a buyer in another EU country with a valid-looking VAT number of that
  country is a business: no VAT, reverse charge (art. 196 of Directive
  2006/112/EC), mentioned on the invoice;
- any other buyer in the EU pays the rate of their own country (OSS);
- a buyer outside the EU pays no VAT (outside the scope of EU VAT).
A seller outside the EU charges its own rate at home and nothing abroad.

"Valid-looking" means the number matches its country's format; checking it
against VIES needs the network and is left to the operator.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Standard rates in basis points (2000 = 20 %); each can be overridden in the config.
EU_STANDARD_RATES_BP: Mapping[str, int] = {
    "AT": 2000, "BE": 2100, "BG": 2000, "CY": 1900, "CZ": 2100, "DE": 1900, "DK": 2500,
    "EE": 2400, "ES": 2100, "FI": 2550, "FR": 2000, "GR": 2400, "HR": 2500, "HU": 2700,
    "IE": 2300, "IT": 2200, "LT": 2100, "LU": 1700, "LV": 2100, "MT": 1800, "NL": 2100,
    "PL": 2300, "PT": 2300, "RO": 2100, "SE": 2500, "SI": 2200, "SK": 2300,
}

# VAT number formats after the country prefix (Greece uses the prefix EL).
_VAT_FORMATS: Mapping[str, str] = {
    "AT": r"U\d{8}", "BE": r"[01]\d{9}", "BG": r"\d{9,10}", "CY": r"\d{8}[A-Z]",
    "CZ": r"\d{8,10}", "DE": r"\d{9}", "DK": r"\d{8}", "EE": r"\d{9}", "EL": r"\d{9}",
    "ES": r"[A-Z0-9]\d{7}[A-Z0-9]", "FI": r"\d{8}", "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}",
    "HR": r"\d{11}", "HU": r"\d{8}", "IE": r"\d[A-Z0-9+*]\d{5}[A-Z]{1,2}", "IT": r"\d{11}",
    "LT": r"(\d{9}|\d{12})", "LU": r"\d{8}", "LV": r"\d{11}", "MT": r"\d{8}",
    "NL": r"\d{9}B\d{2}", "PL": r"\d{10}", "PT": r"\d{9}", "RO": r"\d{2,10}",
    "SE": r"\d{12}", "SI": r"\d{8}", "SK": r"\d{10}",
}
_VAT_RE = {cc: re.compile(rf"^{cc}{fmt}$") for cc, fmt in _VAT_FORMATS.items()}


class VatTreatment(enum.StrEnum):
    DOMESTIC = "domestic"  # the seller's rate
    EU_CONSUMER = "eu_consumer"  # the buyer's country rate (OSS)
    REVERSE_CHARGE = "reverse_charge"  # intra-EU business: the buyer accounts for VAT
    OUT_OF_SCOPE = "out_of_scope"  # outside the EU


@dataclass(frozen=True, slots=True)
class VatDecision:
    treatment: VatTreatment
    rate_bp: int
    country: str  # whose rate applies (the buyer's, for reverse charge)

    @property
    def reverse_charge(self) -> bool:
        return self.treatment is VatTreatment.REVERSE_CHARGE


@dataclass(frozen=True, slots=True)
class Amounts:
    subtotal_cents: int
    vat_cents: int
    total_cents: int


def normalise_vat_number(text: str) -> str:
    return re.sub(r"[\s.\-]", "", text).upper()


def vat_country(number: str) -> str:
    """The member state of a VAT number (EL is Greece, GR)."""
    prefix = normalise_vat_number(number)[:2]
    return "GR" if prefix == "EL" else prefix


def looks_valid(number: str, country: str) -> bool:
    """`number` has the format of a VAT number of `country` (ISO code)."""
    text = normalise_vat_number(number)
    prefix = "EL" if country.upper() == "GR" else country.upper()
    pattern = _VAT_RE.get(prefix)
    return pattern is not None and pattern.match(text) is not None


def decide(
    seller_country: str, buyer_country: str, vat_number: str | None,
    rates_bp: Mapping[str, int] = EU_STANDARD_RATES_BP,
) -> VatDecision:
    seller, buyer = seller_country.upper(), buyer_country.upper()
    if buyer == seller:
        return VatDecision(VatTreatment.DOMESTIC, rates_bp.get(seller, 0), seller)
    if seller not in rates_bp or buyer not in rates_bp:
        return VatDecision(VatTreatment.OUT_OF_SCOPE, 0, buyer)
    if vat_number and looks_valid(vat_number, buyer):
        return VatDecision(VatTreatment.REVERSE_CHARGE, 0, buyer)
    return VatDecision(VatTreatment.EU_CONSUMER, rates_bp[buyer], buyer)


def vat_of(subtotal_cents: int, rate_bp: int) -> int:
    """VAT on a subtotal, rounded half away from zero to the cent."""
    magnitude = (abs(subtotal_cents) * rate_bp + 5000) // 10000
    return magnitude if subtotal_cents >= 0 else -magnitude


def amounts(line_cents: list[int], rate_bp: int) -> Amounts:
    subtotal = sum(line_cents)
    vat = vat_of(subtotal, rate_bp)
    return Amounts(subtotal, vat, subtotal + vat)


def format_cents(cents: int, currency: str = "EUR", language: str = "en") -> str:
    """1234 -> '12.34 EUR' (en) or '12,34 EUR' (fr)."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    if language == "fr":
        grouped = f"{units:,}".replace(",", " ")
        return f"{sign}{grouped},{rest:02d} {currency}"
    return f"{sign}{units:,}.{rest:02d} {currency}"


def format_rate(rate_bp: int) -> str:
    """2000 -> '20', 2550 -> '25.5'."""
    whole, rest = divmod(rate_bp, 100)
    return str(whole) if rest == 0 else f"{whole}.{rest:02d}".rstrip("0")
