"""Solidarity distribution: the worked examples to the øre, and the money invariants."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app
from shared.domain.contracts.model import SolidarityDistribution, YearBasis
from shared.domain.contracts.solidarity import Registration, SolidarityError, allocate
from shared.platform.settings import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
runner = CliRunner()


def run_allocate(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["allocate", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_worked_example_1_fifa_preset_pays_club_a_10000_and_club_b_40000() -> None:
    result = run_allocate(
        "--contract", str(EXAMPLES / "contracts" / "fifa-solidarity.yaml"),
        "--history", str(EXAMPLES / "histories" / "fifa-worked-example-1.json"),
        "--amount-minor", "100000000", "--on", "2024-07-01")
    assert result["pot_minor"] == 5_000_000
    assert result["allocations"] == [{"institution": "club-a", "amount_minor": 1_000_000},
                                     {"institution": "club-b", "amount_minor": 4_000_000}]
    assert result["unallocated_minor"] == 0
    assert result["not_accrued_minor"] == 0


def test_worked_example_2_mobility_bonus_matches_domain_figures_to_the_ore() -> None:
    result = run_allocate(
        "--contract", str(EXAMPLES / "contracts" / "mobility-bonus.yaml"),
        "--history", str(EXAMPLES / "histories" / "mobility-worked-example-2.json"),
        "--on", "2023-06-23", "--outcome", "youth-education-completed")
    amounts = {a["institution"]: a["amount_minor"] for a in result["allocations"]}  # type: ignore[union-attr,index]
    assert amounts == {"daycare": 1_000_000, "school-a": 1_383_014,
                       "school-b": 573_432, "college": 574_031}
    assert result["unallocated_minor"] == 364_866
    assert result["not_accrued_minor"] == 104_657
    assert sum(amounts.values()) + 364_866 + 104_657 == 4_000_000


def test_a_rate_pot_is_rounded_down_and_the_payer_keeps_the_fraction() -> None:
    result = run_allocate(
        "--contract", str(EXAMPLES / "contracts" / "fifa-solidarity.yaml"),
        "--history", str(EXAMPLES / "histories" / "fifa-worked-example-1.json"),
        "--amount-minor", "39", "--on", "2024-07-01")
    assert result["pot_minor"] == 1  # 5 % of 39 is 1.95


def test_days_shared_by_two_registrations_are_split_equally() -> None:
    rule = SolidarityDistribution(weights={"10": Decimal(1)})
    birth = dt.date(2000, 1, 1)
    both = [Registration("a", dt.date(2010, 1, 1), dt.date(2010, 12, 31)),
            Registration("b", dt.date(2010, 1, 1), dt.date(2010, 12, 31))]
    result = allocate(rule, birth, both, 1000, dt.date(2011, 1, 1))
    assert dict(result.allocations) == {"a": 500, "b": 500}


def test_up_to_twelve_registrations_share_a_day_exactly_and_thirteen_are_refused() -> None:
    rule = SolidarityDistribution(weights={"10": Decimal(1)})
    birth = dt.date(2000, 1, 1)

    def sharing(count: int) -> list[Registration]:
        # All of them on 1 July only, beside one stay over the rest of the year.
        return [Registration("a", dt.date(2010, 1, 1), dt.date(2010, 12, 31))] + [
            Registration(f"z{n:02d}", dt.date(2010, 7, 1), dt.date(2010, 7, 1)) for n in range(count - 1)]

    twelve = allocate(rule, birth, sharing(12), 365 * 12 * 100, dt.date(2011, 1, 1))
    # "a" holds 364 days alone and a twelfth of 1 July; each other one a twelfth of it.
    assert dict(twelve.allocations) == {"a": 364 * 1200 + 100, **{f"z{n:02d}": 100 for n in range(11)}}
    with pytest.raises(SolidarityError, match="more than 12 institutions share a day"):
        allocate(rule, birth, sharing(13), 1000, dt.date(2011, 1, 1))


def test_days_after_the_trigger_are_not_accrued_and_uncovered_days_are_unallocated() -> None:
    rule = SolidarityDistribution(weights={"10": Decimal(1)})
    birth = dt.date(2000, 6, 1)
    # 2010 has 365 days; a holds Jan-Jun (181 days), trigger 2010-09-30 (273 days in).
    result = allocate(rule, birth, [Registration("a", dt.date(2010, 1, 1), dt.date(2010, 6, 30))],
                      365_000, dt.date(2010, 9, 30))
    assert dict(result.allocations) == {"a": 181_000}
    assert result.unallocated_minor == 92_000
    assert result.not_accrued_minor == 92_000


def test_an_excluded_institution_days_are_unallocated() -> None:
    rule = SolidarityDistribution(weights={"10": Decimal(1)}, exclude_institutions=("a",))
    result = allocate(rule, dt.date(2000, 1, 1),
                      [Registration("a", dt.date(2010, 1, 1), dt.date(2010, 12, 31))],
                      1000, dt.date(2011, 1, 1))
    assert result.allocations == ()
    assert result.unallocated_minor == 1000


def test_a_school_year_runs_from_its_start_day_in_the_year_of_the_age() -> None:
    rule = SolidarityDistribution(year_basis=YearBasis(kind="school", starts="08-01"),
                                  weights={"6": Decimal(1)})
    # Born 2010: the school year of age 6 is 2016-08-01 .. 2017-07-31.
    result = allocate(rule, dt.date(2010, 3, 1),
                      [Registration("school", dt.date(2016, 8, 1), dt.date(2017, 7, 31))],
                      10_000, dt.date(2020, 1, 1))
    assert dict(result.allocations) == {"school": 10_000}


def test_weights_that_do_not_add_up_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="add up to exactly 1"):
        SolidarityDistribution(weights={"0-9": Decimal("0.05")})


# ---- properties ------------------------------------------------------------------------

INSTITUTIONS = st.sampled_from(["alpha", "bravo", "charlie", "delta", "echo"])
DAYS = st.integers(min_value=0, max_value=25 * 366)
BASE = dt.date(2000, 1, 1)


@st.composite
def registrations(draw: st.DrawFn) -> list[Registration]:
    result = []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        start = BASE + dt.timedelta(days=draw(DAYS))
        length = draw(st.integers(min_value=0, max_value=3000))
        open_ended = draw(st.booleans()) and draw(st.booleans())
        result.append(Registration(draw(INSTITUTIONS), start,
                                   None if open_ended else start + dt.timedelta(days=length)))
    return result


@st.composite
def rules(draw: st.DrawFn) -> SolidarityDistribution:
    ages = sorted(draw(st.sets(st.integers(min_value=0, max_value=23), min_size=1, max_size=12)))
    raw = [draw(st.integers(min_value=1, max_value=20)) for _ in ages]
    # Weights as exact decimals adding up to 1: the last one takes the remainder.
    weights = [Decimal(w) / Decimal(sum(raw)) for w in raw]
    weights = [w.quantize(Decimal("0.0001")) for w in weights[:-1]]
    last = Decimal(1) - sum(weights, Decimal(0))
    if last <= 0:
        weights, last = [], Decimal(1)
        ages = ages[-1:]
    basis = draw(st.sampled_from([YearBasis(), YearBasis(kind="school", starts="08-01")]))
    return SolidarityDistribution(year_basis=basis,
                                  weights={str(a): w for a, w in zip(ages, [*weights, last], strict=True)})


POTS = st.integers(min_value=0, max_value=10**12)
BIRTHS = st.dates(min_value=dt.date(1995, 1, 1), max_value=dt.date(2010, 12, 31))
TRIGGERS = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2040, 12, 31))


@settings(max_examples=200, deadline=None)
@given(rules(), BIRTHS, registrations(), POTS, TRIGGERS)
def test_allocation_conserves_the_pot_exactly_and_pays_nobody_a_negative_amount(
        rule: SolidarityDistribution, birth: dt.date, regs: list[Registration], pot: int,
        trigger: dt.date) -> None:
    result = allocate(rule, birth, regs, pot, trigger)
    assert sum(a for _, a in result.allocations) + result.unallocated_minor \
        + result.not_accrued_minor == pot
    assert all(a >= 0 for _, a in result.allocations)
    assert result.unallocated_minor >= 0
    assert result.not_accrued_minor >= 0


@settings(max_examples=150, deadline=None)
@given(rules(), BIRTHS, registrations(), POTS, TRIGGERS, st.randoms(use_true_random=False))
def test_allocation_does_not_depend_on_the_order_of_registrations(
        rule: SolidarityDistribution, birth: dt.date, regs: list[Registration], pot: int,
        trigger: dt.date, shuffler: object) -> None:
    shuffled = list(regs)
    shuffler.shuffle(shuffled)  # type: ignore[attr-defined]
    assert allocate(rule, birth, regs, pot, trigger) == allocate(rule, birth, shuffled, pot, trigger)


@settings(max_examples=150, deadline=None)
@given(rules(), BIRTHS, registrations(), POTS, TRIGGERS, st.data())
def test_splitting_a_registration_into_two_adjacent_ones_changes_nothing(
        rule: SolidarityDistribution, birth: dt.date, regs: list[Registration], pot: int,
        trigger: dt.date, data: st.DataObject) -> None:
    candidates = [r for r in regs if r.end is not None and r.end > r.start]
    if not candidates:
        return
    chosen = data.draw(st.sampled_from(candidates))
    cut = chosen.start + dt.timedelta(days=data.draw(
        st.integers(min_value=0, max_value=(chosen.end - chosen.start).days - 1)))  # type: ignore[operator]
    split = [r for r in regs if r is not chosen] + [
        Registration(chosen.institution, chosen.start, cut),
        Registration(chosen.institution, cut + dt.timedelta(days=1), chosen.end)]
    assert allocate(rule, birth, regs, pot, trigger) == allocate(rule, birth, split, pot, trigger)
