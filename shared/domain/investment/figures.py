"""Investor figures from dated cash flows: the money multiple, the IRR and the MIRR.

Flows are seen from the investor: money it pays out (a disbursement) is negative, money
it receives (an outcome payment settled, savings paid into a fund, a guarantee called)
positive; each on the day it moved, in integer minor units.

- **Money multiple** (MOIC, TVPI when closed): received / paid out, an exact fraction.
- **IRR**: an annual rate r at which the flows' present value is zero,
  sum(amount_i / (1 + r) ** (days_i / 365)) == 0, days counted from the first flow
  (Act/365 fixed). Flows whose sign changes more than once (money owed back at the close
  after outcome payments came in, a second tranche after a first repayment) can have
  several such rates, and then no single one is *the* return: every real rate in
  [`RATE_LOW`, `RATE_HIGH`] is reported with a note, and the figure shown is none
  (`RatesOfReturn`). Flows all one way have none, with the reason; a total loss is
  reported as -100 %, the limit, since nothing came back.
  How the rates are found: the present value is scanned on a grid of `SCAN_STEPS` points,
  even in ln(1 + r), in floats scaled so that nothing overflows (only its sign is used:
  where it changes, a rate lies between two points); each such bracket is then bisected in `decimal` arithmetic with 40
  significant digits (deterministic on every platform) until narrower than 10**-12, and
  reported rounded half-even to `IRR_PLACES` (10**-6, i.e. 0.0001 percentage points). Two
  rates within one grid step of each other (about 0.1 % of 1 + r) are not told apart.
- **MIRR** (modified IRR): money paid out is discounted to the first day at a stated
  finance rate, money received compounded to the last day at a stated reinvestment rate,
  and MIRR = (compounded in / discounted out) ** (365 / days) - 1. Always unique; it
  answers "what did this earn, if borrowing cost f and what came back earned r".
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

IRR_CONTEXT = Context(prec=40)
IRR_TOLERANCE = Decimal("1e-12")
IRR_PLACES = Decimal("0.000001")
IRR_ITERATIONS_MAX = 200  # the bracket halves each time: 2**-200 of any bracket is far below the tolerance
# The sane range of an annual rate: -99.99 % (almost nothing came back) to +1,000 % (ten
# times the money in a year), far beyond any social investment's return either way.
RATE_LOW = Decimal("-0.9999")
RATE_HIGH = Decimal(10)
SCAN_STEPS = 12_000  # grid points over ln(1 + r): a step of about 0.00097
SCAN_CHUNK = 100  # grid points between exact recomputations of the scan's terms
DAYS_PER_YEAR = 365
# The rates the MIRR is shown at unless the caller states others: a municipality's cost
# of borrowing and what its money earns, both taken as 5 % a year.
FINANCE_RATE = Decimal("0.05")
REINVESTMENT_RATE = Decimal("0.05")
_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


@dataclass(frozen=True)
class CashFlow:
    day: dt.date
    amount_minor: int  # negative: paid out by the investor; positive: received
    what: str = ""  # for a statement's reader: disbursement, outcome payment, savings, guarantee, owed back


@dataclass(frozen=True)
class RatesOfReturn:
    """Every IRR of some flows in the sane range, ascending, and why the figure is not one
    rate when it is not: `reason` is empty exactly when there is one rate to show."""

    rates: tuple[Decimal, ...]
    reason: str = ""

    @property
    def unique(self) -> Decimal | None:
        return self.rates[0] if len(self.rates) == 1 else None

    def shown(self) -> str:
        """The IRR as a statement prints it: the rate, or `-` and why not."""
        if self.unique is not None:
            return format_rate(self.unique)
        return f"- ({self.reason})"


def paid_out_minor(flows: Sequence[CashFlow]) -> int:
    return -sum(f.amount_minor for f in flows if f.amount_minor < 0)


def received_minor(flows: Sequence[CashFlow]) -> int:
    return sum(f.amount_minor for f in flows if f.amount_minor > 0)


def money_multiple(flows: Sequence[CashFlow]) -> Fraction | None:
    """Received over paid out, exactly; None before anything was paid out."""
    out = paid_out_minor(flows)
    return Fraction(received_minor(flows), out) if out else None


def _years(flows: Sequence[CashFlow]) -> list[Decimal]:
    first = min(f.day for f in flows)
    return [IRR_CONTEXT.divide(Decimal((f.day - first).days), Decimal(DAYS_PER_YEAR)) for f in flows]


def present_value(flows: Sequence[CashFlow], rate: Decimal) -> Decimal:
    """The flows discounted to the first flow's day at the annual `rate` (> -1)."""
    context = IRR_CONTEXT
    base = context.add(Decimal(1), rate)
    total = Decimal(0)
    for flow, years in zip(flows, _years(flows), strict=True):
        total = context.add(total, context.divide(Decimal(flow.amount_minor), context.power(base, years)))
    return total


def _sign(value: float | Decimal) -> int:
    return (value > 0) - (value < 0)


def _scan(flows: Sequence[CashFlow]) -> list[tuple[Decimal, Decimal]]:
    """Brackets [low, high] of rates, each holding a root of the present value (or a root
    exactly at a grid point, given as a bracket of width zero)."""
    first = min(f.day for f in flows)
    span = max((f.day - first).days for f in flows) / DAYS_PER_YEAR
    # With u = ln(1 + r), the present value times (1 + r) ** span (positive, so the same
    # sign) is sum(a_i * exp(u * (span - t_i))): no exponent overflows at either end of the
    # range, and the last flow's term is exactly its amount.
    terms = [(float(f.amount_minor), span - (f.day - first).days / DAYS_PER_YEAR) for f in flows]
    low, high = IRR_CONTEXT.ln(1 + RATE_LOW), IRR_CONTEXT.ln(1 + RATE_HIGH)
    step = (high - low) / SCAN_STEPS

    def rate_at(index: int) -> Decimal:
        return IRR_CONTEXT.exp(low + step * index) - 1

    # From one grid point to the next each term is multiplied by exp(step * c_i); the
    # terms are recomputed exactly every SCAN_CHUNK points so that rounding cannot build up.
    factors = [math.exp(float(step) * c) for _, c in terms]
    signs = []
    for start in range(0, SCAN_STEPS + 1, SCAN_CHUNK):
        u = float(low + step * start)
        current = [a * math.exp(u * c) for a, c in terms]
        for _ in range(start, min(start + SCAN_CHUNK, SCAN_STEPS + 1)):
            signs.append(_sign(math.fsum(current)))
            current = [value * factor for value, factor in zip(current, factors, strict=True)]
    brackets: list[tuple[Decimal, Decimal]] = []
    last: int | None = None  # the last grid point with a non-zero present value
    for index, sign in enumerate(signs):
        if sign == 0:
            # A root on the grid itself; one that also changes the sign is found again by
            # the bracket around it, so take only those that touch zero and turn back.
            before = signs[index - 1] if index else 0
            after = signs[index + 1] if index < SCAN_STEPS else 0
            if before == after and present_value(flows, rate_at(index)) == 0:
                brackets.append((rate_at(index), rate_at(index)))
            continue
        if last is not None and signs[last] != sign:
            brackets.append((rate_at(last), rate_at(index)))
        last = index
    return brackets


def _bisect(flows: Sequence[CashFlow], low: Decimal, high: Decimal) -> Decimal | None:
    """The root in [low, high], or None if the exact present value does not change sign
    there (the float scan saw noise)."""
    if low == high:
        return low.quantize(IRR_PLACES, rounding=ROUND_HALF_EVEN)
    value_low, value_high = present_value(flows, low), present_value(flows, high)
    if value_low == 0:
        return low.quantize(IRR_PLACES, rounding=ROUND_HALF_EVEN)
    if value_high == 0:
        return high.quantize(IRR_PLACES, rounding=ROUND_HALF_EVEN)
    if _sign(value_low) == _sign(value_high):
        return None
    for _ in range(IRR_ITERATIONS_MAX):
        if high - low < IRR_TOLERANCE:
            break
        middle = IRR_CONTEXT.divide(low + high, Decimal(2))
        value = present_value(flows, middle)
        if value == 0:
            low = high = middle
            break
        if _sign(value) == _sign(value_low):
            low, value_low = middle, value
        else:
            high = middle
    return IRR_CONTEXT.divide(low + high, Decimal(2)).quantize(IRR_PLACES, rounding=ROUND_HALF_EVEN)


def rates_of_return(flows: Sequence[CashFlow]) -> RatesOfReturn:
    """Every IRR of `flows` in [RATE_LOW, RATE_HIGH], ascending, with the reason when
    there is not exactly one."""
    return _rates_of_return(tuple(flows))


@functools.lru_cache(maxsize=1024)  # a statement asks for the same position's figures more than once
def _rates_of_return(flows: tuple[CashFlow, ...]) -> RatesOfReturn:
    if not flows:
        return RatesOfReturn((), "no flows yet")
    if paid_out_minor(flows) == 0:
        return RatesOfReturn((), "nothing paid out: all flows one way")
    if received_minor(flows) == 0:
        return RatesOfReturn((Decimal(-1).quantize(IRR_PLACES),))  # a total loss: the limit
    found = sorted({rate for low, high in _scan(flows) if (rate := _bisect(flows, low, high)) is not None})
    if not found:
        return RatesOfReturn((), f"no rate from {format_rate(RATE_LOW)} to {format_rate(RATE_HIGH)} a year "
                                 "makes the flows worth zero")
    if len(found) == 1:
        return RatesOfReturn((found[0],))
    count = _COUNT_WORDS.get(len(found), str(len(found)))
    listed = ", ".join(_percent_one_place(r) for r in found[:-1]) + f" and {_percent_one_place(found[-1])}"
    return RatesOfReturn(tuple(found), f"{count} rates: {listed}; IRR is not unique, see the multiple")


def irr(flows: Sequence[CashFlow]) -> Decimal | None:
    """The IRR rounded to IRR_PLACES when the flows have exactly one; None otherwise
    (`rates_of_return` says why)."""
    return rates_of_return(flows).unique


def mirr(flows: Sequence[CashFlow], finance_rate: Decimal = FINANCE_RATE,
         reinvestment_rate: Decimal = REINVESTMENT_RATE) -> Decimal | None:
    """The modified IRR at the stated rates, rounded to IRR_PLACES; None unless money went
    both ways on different days."""
    if paid_out_minor(flows) == 0 or received_minor(flows) == 0:
        return None
    if finance_rate <= -1 or reinvestment_rate <= -1:
        raise ValueError("a finance or reinvestment rate must be above -100 %")
    context = IRR_CONTEXT
    years = _years(flows)
    span = max(years)
    if span == 0:
        return None
    out = Decimal(0)
    back = Decimal(0)
    for flow, at in zip(flows, years, strict=True):
        amount = Decimal(flow.amount_minor)
        if amount < 0:
            out = context.add(out, context.divide(-amount, context.power(1 + finance_rate, at)))
        else:
            back = context.add(back, context.multiply(amount, context.power(1 + reinvestment_rate, span - at)))
    growth = context.power(context.divide(back, out), context.divide(Decimal(1), span))
    return context.subtract(growth, Decimal(1)).quantize(IRR_PLACES, rounding=ROUND_HALF_EVEN)


def format_multiple(multiple: Fraction | None) -> str:
    """Two decimals for reading (the exact fraction is what the figures carry)."""
    if multiple is None:
        return "-"
    hundredths = Decimal(multiple.numerator * 100) / Decimal(multiple.denominator)
    return f"{hundredths.quantize(Decimal(1), rounding=ROUND_HALF_EVEN) / 100:.2f}x"


def format_rate(rate: Decimal | None) -> str:
    return "-" if rate is None else f"{(rate * 100).quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN)} %"


def _percent_one_place(rate: Decimal) -> str:
    return f"{(rate * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_EVEN)} %"
