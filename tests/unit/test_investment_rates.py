"""Rates of return that never mislead (issue 30): every real IRR in the sane range with a
note when there is more than one, none with the reason when there is none, and the MIRR
at stated rates. Checked against pyxirr, an independent implementation (Rust), on the
defining property (its present value at each rate we report is zero) and on its own
answers where it has one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyxirr
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.investment.figures import (
    CashFlow,
    RatesOfReturn,
    format_rate,
    irr,
    mirr,
    present_value,
    rates_of_return,
)


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def yearly(*amounts: int, start: str = "2021-01-01") -> list[CashFlow]:
    # 2021, 2022, 2023 and 2024's first days are 365 days apart: whole years in Act/365.
    first = d(start)
    return [CashFlow(first + dt.timedelta(days=365 * n), amount) for n, amount in enumerate(amounts)]


def zero_at(flows: list[CashFlow], rate: Decimal) -> bool:
    """pyxirr's present value changes sign within 10**-6 of `rate` (the rate is rounded
    to 10**-6): `rate` is a root by an independent computation."""
    def value(at: Decimal) -> float:
        return pyxirr.xnpv(float(at), [f.day for f in flows], [f.amount_minor for f in flows])

    step = Decimal("0.000001")
    return value(rate - step) * value(rate + step) < 0


def test_two_real_rates_are_both_reported_and_no_single_irr_is_shown() -> None:
    # -100 + 230x - 132x**2 = 0 with x = 1/(1+r): 1+r = 1.1 or 1.2.
    flows = yearly(-100, 230, -132)
    found = rates_of_return(flows)
    assert found.rates == (Decimal("0.100000"), Decimal("0.200000"))
    assert irr(flows) is None
    assert found.shown() == "- (two rates: 10.0 % and 20.0 %; IRR is not unique, see the multiple)"
    assert all(zero_at(flows, rate) for rate in found.rates)


def test_three_rates_are_all_reported_not_only_the_largest() -> None:
    # (x-1)(x-1.1)(x-1.3) with x = 1+r, times -1000: rates 0 %, 10 % and 30 %. The old
    # bisection printed 30.00 % alone.
    flows = yearly(-1000, 3400, -3830, 1430)
    found = rates_of_return(flows)
    assert found.rates == (Decimal("0.000000"), Decimal("0.100000"), Decimal("0.300000"))
    assert irr(flows) is None
    assert "three rates: 0.0 %, 10.0 % and 30.0 %" in found.reason


def test_a_sib_closed_with_money_owed_back_has_two_rates_both_checked_by_pyxirr() -> None:
    # 1.5 M disbursed in two tranches, 2.4 M outcome payments, 600,000 owed back at the close.
    flows = [CashFlow(d("2022-01-03"), -1_000_000_00), CashFlow(d("2022-07-01"), -500_000_00),
             CashFlow(d("2023-06-30"), 800_000_00), CashFlow(d("2024-06-28"), 800_000_00),
             CashFlow(d("2025-06-30"), 800_000_00), CashFlow(d("2025-12-31"), -600_000_00)]
    found = rates_of_return(flows)
    assert len(found.rates) == 2
    assert found.rates[0] < 0 < found.rates[1]
    for rate in found.rates:
        assert zero_at(flows, rate)
        # pyxirr started next to each rate converges on the same one.
        theirs = pyxirr.xirr([f.day for f in flows], [f.amount_minor for f in flows], guess=float(rate))
        assert abs(Decimal(str(theirs)) - rate) <= Decimal("0.000001")
    assert found.unique is None
    assert "IRR is not unique" in found.reason


def test_flows_all_one_way_have_no_rate_and_say_why() -> None:
    assert rates_of_return([CashFlow(d("2021-01-01"), 5)]) == RatesOfReturn((), "nothing paid out: all flows one way")
    assert rates_of_return([]).reason == "no flows yet"
    # Money out and back, but worth less than nothing at every sane rate: a total loss
    # but for a hundred-thousandth is below -99.99 % a year.
    nearly_lost = [CashFlow(d("2021-01-01"), -100_000_000), CashFlow(d("2022-01-01"), 1)]
    found = rates_of_return(nearly_lost)
    assert found.rates == ()
    assert found.reason.startswith("no rate from -99.99 % to 1000.00 % a year")


def test_a_total_loss_is_minus_one_hundred_percent() -> None:
    assert irr([CashFlow(d("2021-01-01"), -5), CashFlow(d("2022-01-01"), -5)]) == Decimal("-1.000000")


conventional = st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(outs=conventional, ins=conventional, gaps=st.lists(st.integers(min_value=1, max_value=900),
                                                          min_size=12, max_size=12))
def test_one_sign_change_gives_one_rate_and_it_is_pyxirrs(outs: list[int], ins: list[int], gaps: list[int]) -> None:
    day = d("2020-01-01")
    flows = []
    for amount, gap in zip([-a for a in outs] + ins, gaps, strict=False):
        flows.append(CashFlow(day, amount))
        day += dt.timedelta(days=gap)
    theirs = pyxirr.xirr([f.day for f in flows], [f.amount_minor for f in flows])
    found = rates_of_return(flows)
    assert len(found.rates) <= 1  # one sign change: at most one root (Descartes)
    if found.unique is not None:
        step = Decimal("0.000001")
        assert present_value(flows, found.unique - step) > 0 > present_value(flows, found.unique + step)
    if theirs is not None and -0.99 < theirs < 9:  # well inside the sane range
        assert found.unique is not None, found
        assert abs(Decimal(str(theirs)) - found.unique) <= Decimal("0.000002")


@settings(max_examples=40, deadline=None)
@given(amounts=st.lists(st.integers(min_value=-10**8, max_value=10**8), min_size=2, max_size=5),
       finance=st.integers(min_value=0, max_value=20), reinvestment=st.integers(min_value=0, max_value=20))
def test_the_mirr_is_pyxirrs_on_whole_years(amounts: list[int], finance: int, reinvestment: int) -> None:
    flows = yearly(*amounts)
    finance_rate, reinvestment_rate = Decimal(finance) / 100, Decimal(reinvestment) / 100
    ours = mirr(flows, finance_rate, reinvestment_rate)
    if not any(a < 0 for a in amounts) or not any(a > 0 for a in amounts):
        assert ours is None
        return
    theirs = pyxirr.mirr(amounts, float(finance_rate), float(reinvestment_rate))
    assert ours is not None
    assert abs(Decimal(str(theirs)) - ours) <= Decimal("0.000001")


def test_the_mirr_is_unique_where_the_irr_is_not() -> None:
    flows = yearly(-100, 230, -132)
    # Out: 100 + 132/1.05**2; back: 230 * 1.05, over two years.
    expected = (Decimal("241.5") / (100 + Decimal(132) / Decimal("1.1025"))).sqrt() - 1
    assert mirr(flows, Decimal("0.05"), Decimal("0.05")) == expected.quantize(Decimal("0.000001"))
    assert format_rate(mirr(flows, Decimal("0.05"), Decimal("0.05"))) == "4.84 %"  # sqrt(241.5 / 219.73) = 1.0484


def test_a_century_of_flows_neither_overflows_nor_loses_its_rate() -> None:
    # About 0.41 % a year (1.5 over 36,525 days): at -99.99 % a year, a hundred years' discount
    # factor (10**400) is beyond a float; the scan is scaled so it never meets it.
    flows = [CashFlow(d("1920-01-01"), -100), CashFlow(d("2020-01-01"), 150)]
    found = rates_of_return(flows)
    assert len(found.rates) == 1
    assert zero_at(flows, found.rates[0])
