"""Minor units to decimal amounts and back, exactly, for the bank's files.

Bank files state amounts as decimals in the currency's major unit ("1234.50"); the
ledger keeps integer minor units. The conversion must be exact both ways: an amount
with more decimals than the currency has is refused, never rounded. The minor-unit
exponents are ISO 4217's, from the one table the whole system uses (shared/domain/currency.py).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from shared.domain.currency import format_minor, minor_unit_exponent


class AmountError(ValueError):
    pass


def minor_exponent(currency: str) -> int:
    try:
        return minor_unit_exponent(currency)
    except KeyError:
        raise AmountError(f"{currency!r} is not an ISO 4217 currency with a minor unit") from None


def to_decimal_text(amount_minor: int, currency: str) -> str:
    """1234550 DKK -> "12345.50" (always the currency's number of decimals, no grouping)."""
    minor_exponent(currency)  # refuses an unknown currency with our error
    return format_minor(amount_minor, currency, grouping=False)


def to_minor(text: str, currency: str) -> int:
    """"12345.5" DKK -> 1234550; refuses "1.005" DKK, negative and non-numbers."""
    exponent = minor_exponent(currency)
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AmountError(f"{text!r} is not an amount") from None
    if not value.is_finite() or value < 0:
        raise AmountError(f"{text!r} is not a non-negative amount")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise AmountError(f"{text!r} has more decimals than {currency} has ({exponent})")
    return int(minor)
