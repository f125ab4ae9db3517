"""Minor units to decimal amounts and back, exactly, for the bank's files.

Bank files state amounts as decimals in the currency's major unit ("1234.50"); the
ledger keeps integer minor units. The conversion must be exact both ways: an amount
with more decimals than the currency has is refused, never rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# ISO 4217 minor-unit exponents of the currencies Stafet's contracts pay in. Kept small
# on purpose: a currency not listed is refused rather than guessed.
_MINOR_EXPONENTS: dict[str, int] = {"DKK": 2, "EUR": 2, "SEK": 2, "NOK": 2, "GBP": 2, "USD": 2, "CHF": 2,
                                    "ISK": 0, "JPY": 0}


class AmountError(ValueError):
    pass


def minor_exponent(currency: str) -> int:
    try:
        return _MINOR_EXPONENTS[currency]
    except KeyError:
        raise AmountError(f"currency {currency!r} has no known minor unit") from None


def to_decimal_text(amount_minor: int, currency: str) -> str:
    """1234550 DKK -> "12345.50" (always the currency's number of decimals)."""
    exponent = minor_exponent(currency)
    return f"{Decimal(amount_minor).scaleb(-exponent):.{exponent}f}"


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
