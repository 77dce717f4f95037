"""Money as billing sends it: an ISO 4217 currency and amounts in that currency's minor unit.

Amounts are `Decimal`, never float. An amount may have at most as many decimal places as
its currency's minor unit (2 for EUR and USD, 0 for JPY, 3 for KWD); the currency table is
the ISO 4217 one shipped by the `iso4217` package. Codes without a minor unit (gold, test
and fund codes such as XAU, XTS) are not currencies an invoice is written in.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from iso4217 import Currency

from domain.errors import RuleViolationError

__all__ = ["MAX_AMOUNT", "ZERO", "check_amount", "check_currency", "minor_unit", "rounded"]

ZERO = Decimal("0")
MAX_AMOUNT = Decimal(10) ** 15
"""No amount reaches it: sums stay exact in Decimal's 28 digits."""


def check_currency(code: str, field: str = "currency") -> str:
    """The upper-case ISO 4217 code; 422 naming `field` for anything else."""
    try:
        currency = Currency(code.strip().upper())
    except ValueError:
        raise RuleViolationError(field, f"{code!r} is not an ISO 4217 currency code") from None
    if currency.exponent is None:
        raise RuleViolationError(field, f"{currency.code} has no minor unit: not a currency")
    return currency.code


def minor_unit(currency: str) -> int:
    """Decimal places of the currency's minor unit (2 for EUR)."""
    exponent = Currency(currency).exponent
    assert exponent is not None  # check_currency admits only codes with one
    return exponent


def check_amount(amount: Decimal, currency: str, field: str, *, positive: bool = False) -> Decimal:
    """`amount` in the currency's minor unit ("12.5" becomes "12.50"): finite, not negative
    (positive when asked) and with no more places than the minor unit; else 422 naming
    `field`."""
    if not amount.is_finite():
        raise RuleViolationError(field, "an amount must be a finite number")
    if amount >= MAX_AMOUNT:
        raise RuleViolationError(field, f"must be less than {MAX_AMOUNT}")
    if amount < 0 or (positive and amount == 0):
        raise RuleViolationError(field, "must be more than 0" if positive else "cannot be negative")
    places = minor_unit(currency)
    exact = amount.quantize(Decimal(1).scaleb(-places))
    if exact != amount:
        raise RuleViolationError(field, f"{currency} amounts have at most {places} decimal places")
    return exact


def rounded(amount: Decimal, currency: str) -> Decimal:
    """`amount` to the currency's minor unit, halves away from zero (as invoices round)."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)), rounding=ROUND_HALF_UP)
