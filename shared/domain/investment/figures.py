"""Investor figures from dated cash flows: the money multiple and the IRR.

Flows are seen from the investor: money it pays out (a disbursement) is negative, money
it receives (an outcome payment settled, savings paid into a fund, a guarantee called)
positive; each on the day it moved, in integer minor units.

- **Money multiple** (MOIC, TVPI when closed): received / paid out, an exact fraction.
- **IRR**: the annual rate r at which the flows' present value is zero,
  sum(amount_i / (1 + r) ** (days_i / 365)) == 0, days counted from the first flow
  (Act/365 fixed). Found by bisection in `decimal` arithmetic with 40 significant digits
  (deterministic on every platform: no floats), on the bracket (-1, 100], until the
  bracket is narrower than 10**-12; reported rounded half-even to `IRR_PLACES` (10**-6,
  i.e. 0.0001 percentage points). There is an IRR only when the present value changes
  sign on the bracket: flows with no money out, or no money in, have none (a total loss
  is reported as -100 %, the limit, since nothing came back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

IRR_CONTEXT = Context(prec=40)
IRR_TOLERANCE = Decimal("1e-12")
IRR_PLACES = Decimal("0.000001")
IRR_HIGH = Decimal(100)  # 10,000 % a year: above any social investment's return
IRR_ITERATIONS_MAX = 200  # the bracket halves each time: 2**-200 of 101 is far below the tolerance
DAYS_PER_YEAR = 365


@dataclass(frozen=True)
class CashFlow:
    day: dt.date
    amount_minor: int  # negative: paid out by the investor; positive: received
    what: str = ""  # for a statement's reader: disbursement, outcome payment, savings, guarantee, owed back


def paid_out_minor(flows: Sequence[CashFlow]) -> int:
    return -sum(f.amount_minor for f in flows if f.amount_minor < 0)


def received_minor(flows: Sequence[CashFlow]) -> int:
    return sum(f.amount_minor for f in flows if f.amount_minor > 0)


def money_multiple(flows: Sequence[CashFlow]) -> Fraction | None:
    """Received over paid out, exactly; None before anything was paid out."""
    out = paid_out_minor(flows)
    return Fraction(received_minor(flows), out) if out else None


def present_value(flows: Sequence[CashFlow], rate: Decimal) -> Decimal:
    """The flows discounted to the first flow's day at the annual `rate` (> -1)."""
    first = min(f.day for f in flows)
    context = IRR_CONTEXT
    base = context.add(Decimal(1), rate)
    total = Decimal(0)
    for flow in flows:
        years = context.divide(Decimal((flow.day - first).days), Decimal(DAYS_PER_YEAR))
        total = context.add(total, context.divide(Decimal(flow.amount_minor), context.power(base, years)))
    return total


def irr(flows: Sequence[CashFlow]) -> Decimal | None:
    """The IRR rounded to IRR_PLACES, or None when the flows have none (see above)."""
    if not flows or paid_out_minor(flows) == 0:
        return None
    if received_minor(flows) == 0:
        return Decimal(-1).quantize(IRR_PLACES)
    # Just above -1 the present value is dominated by the last flows; at 100 by the first.
    low = Decimal("-0.999999999999")
    high = IRR_HIGH
    value_low, value_high = present_value(flows, low), present_value(flows, high)
    if value_low == 0:
        return low.quantize(IRR_PLACES, rounding=ROUND_HALF_EVEN)
    if (value_low > 0) == (value_high > 0):
        return None
    for _ in range(IRR_ITERATIONS_MAX):
        if high - low < IRR_TOLERANCE:
            break
        middle = IRR_CONTEXT.divide(low + high, Decimal(2))
        value = present_value(flows, middle)
        if value == 0:
            low = high = middle
            break
        if (value > 0) == (value_low > 0):
            low, value_low = middle, value
        else:
            high = middle
    return IRR_CONTEXT.divide(low + high, Decimal(2)).quantize(IRR_PLACES, rounding=ROUND_HALF_EVEN)


def format_multiple(multiple: Fraction | None) -> str:
    """Two decimals for reading (the exact fraction is what the figures carry)."""
    if multiple is None:
        return "-"
    hundredths = Decimal(multiple.numerator * 100) / Decimal(multiple.denominator)
    return f"{hundredths.quantize(Decimal(1), rounding=ROUND_HALF_EVEN) / 100:.2f}x"


def format_rate(rate: Decimal | None) -> str:
    return "-" if rate is None else f"{(rate * 100).quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN)} %"
