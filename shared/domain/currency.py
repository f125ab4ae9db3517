"""ISO 4217 currency codes and their minor-unit exponents, and exact money formatting.

A small checked-in table (ISO 4217, active codes with a defined minor unit; amendment
current in 2024) instead of a library: the engine needs only "is this a currency" and
"how many decimals does it have", and a table reads and reviews in one screen. Codes
the standard lists without a minor unit (XAU, XDR, ...) are not money a contract pays.

Pure, no floats: an amount is an integer number of minor units, shown with Decimal-free
integer arithmetic so any size prints to the last unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

_EXPONENT_0 = ("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF")
_EXPONENT_3 = ("BHD IQD JOD KWD LYD OMR TND")
_EXPONENT_4 = ("CLF UYW")
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN "
    "ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES "
    "KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK "
    "MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR "
    "SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD "
    "TWD TZS UAH USD USN UYU UZS VES VED WST XCD YER ZAR ZMW ZWL")

MINOR_UNIT_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_EXPONENT_2.split(), 2),
    **dict.fromkeys(_EXPONENT_0.split(), 0),
    **dict.fromkeys(_EXPONENT_3.split(), 3),
    **dict.fromkeys(_EXPONENT_4.split(), 4),
}


def is_currency(code: str) -> bool:
    return code in MINOR_UNIT_EXPONENTS


def minor_unit_exponent(code: str) -> int:
    """Decimals of the currency's minor unit (DKK 2, JPY 0, BHD 3); KeyError if unknown."""
    return MINOR_UNIT_EXPONENTS[code]


def format_minor(amount_minor: int, currency: str, *, grouping: bool = True) -> str:
    """An exact decimal string for `amount_minor` in `currency`, e.g. 1,234.56 (DKK),
    1,234 (JPY), 1.234 (BHD). Integers only: right to the last unit at any size."""
    exponent = minor_unit_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    units, minor = divmod(abs(amount_minor), 10**exponent)
    whole = f"{units:,}" if grouping else str(units)
    return f"{sign}{whole}.{minor:0{exponent}d}" if exponent else f"{sign}{whole}"


def format_money(amount_minor: int, currency: str) -> str:
    """`format_minor` with the currency code: "1,234.56 DKK"."""
    return f"{format_minor(amount_minor, currency)} {currency}"


def format_amounts(amounts: Mapping[str, int]) -> str:
    """Amounts in several currencies, each labelled, never added: "1.00 DKK; 5 JPY"."""
    shown = [format_money(amount, currency) for currency, amount in sorted(amounts.items()) if amount]
    return "; ".join(shown) or "0"


def major_units(amount_minor: int, currency: str) -> Decimal:
    """The amount in the currency's major unit, exactly (for chart axes)."""
    return Decimal(amount_minor).scaleb(-minor_unit_exponent(currency))
