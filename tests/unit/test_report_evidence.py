"""Did it work: the measured deadweight an estimate gives, the business case that uses
it instead of the assumed constant, and the report's indicator and experiment sections."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from shared.indicators.experiment import Estimate
from shared.indicators.loader import load_experiment, load_indicators
from shared.reporting.business_case import business_cases, load_assumptions, present_value_minor
from shared.reporting.data import OutcomeRow, ReportData
from shared.reporting.evidence import Evidence, ExperimentResult, trend_years, trends, with_measured_deadweight
from shared.reporting.html import render
from shared.settings import REPO_ROOT
from tests.unit.test_indicators import Person, timelines
from tests.unit.test_small_cells import MOBILITY

INDICATORS = load_indicators(REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml")
EXPERIMENT = load_experiment(REPO_ROOT / "examples" / "experiments" / "exam-support.yaml")
ASSUMPTIONS = load_assumptions(REPO_ROOT / "examples" / "business-case.yaml")


def estimate(effect: float, low: float, high: float, level: float | None = 80.0) -> Estimate:
    return Estimate("exam-danish-maths", effect, low, high, 0.01, 12, 12, 999, level)


def test_the_deadweight_is_the_share_of_the_treated_successes_the_effect_does_not_explain() -> None:
    # 80 % passed in the treated schools, 10 points of it caused: 70 of 80 would have anyway.
    measured = estimate(10.0, 5.0, 15.0).deadweight()
    assert measured is not None
    assert measured.share == pytest.approx(0.875)
    assert (measured.low, measured.high) == (pytest.approx(65 / 80), pytest.approx(75 / 80))
    # An interval reaching below zero: at worst everything would have happened anyway.
    none = estimate(1.0, -5.0, 7.0).deadweight()
    assert none is not None
    assert none.high == 1.0
    assert estimate(1.0, -5.0, 7.0, level=None).deadweight() is None


def evidence(effect: float, low: float, high: float) -> Evidence:
    result = ExperimentResult(EXPERIMENT, (estimate(effect, low, high),), (), "a test")
    return Evidence(INDICATORS, (), (result,))


def test_an_estimate_measures_the_deadweight_of_the_outcomes_its_indicator_names() -> None:
    (measured,) = evidence(10.0, 5.0, 15.0).measured_deadweights()
    assert (measured.outcome_id, measured.indicator_id, measured.experiment_id) == (
        "exam-passed", "exam-danish-maths", "exam-support-trial")
    replaced = with_measured_deadweight(ASSUMPTIONS, [measured])
    assert replaced.outcomes["exam-passed"].deadweight == Decimal("0.8750")
    assert with_measured_deadweight(ASSUMPTIONS, [measured], "low").outcomes["exam-passed"].deadweight \
        == Decimal("0.8125")
    # Outcomes no experiment measured keep their assumed deadweight.
    assert replaced.outcomes["youth-education-completed"] == ASSUMPTIONS.outcomes["youth-education-completed"]


def exam_passes(children: int) -> ReportData:
    on = dt.date(2021, 6, 20)
    outcomes = tuple(OutcomeRow("mobility-bonus", "exam-passed", "verified", None, on, 0, f"k1:{n:064x}")
                     for n in range(children))
    return ReportData("test", (MOBILITY,), outcomes, (), source="a test")


def test_the_business_case_counts_savings_net_of_the_measured_deadweight() -> None:
    data = exam_passes(20)
    page = render([data], ASSUMPTIONS, title="t", evidence=evidence(10.0, 5.0, 15.0))
    assumed = ASSUMPTIONS.outcomes["exam-passed"]
    measured_each = present_value_minor(assumed.model_copy(update={"deadweight": Decimal("0.875")}),
                                        ASSUMPTIONS.horizon_years, ASSUMPTIONS.discount_rate)
    (case,) = business_cases(data, with_measured_deadweight(ASSUMPTIONS,
                                                            evidence(10.0, 5.0, 15.0).measured_deadweights()))
    assert case.savings_minor == 20 * measured_each
    assumed_each = present_value_minor(assumed, ASSUMPTIONS.horizon_years, ASSUMPTIONS.discount_rate)
    assert measured_each < assumed_each  # 87.5 % measured against 80 % assumed
    whole, ore = divmod(20 * measured_each, 100)
    assert f"{whole:,}.{ore:02d} DKK" in page
    assert "88% measured (81% to 94%) by exam-support-trial on exam-danish-maths; 80% assumed before" in page
    assert "net over the effect&#x27;s 95 % interval" in page


def test_the_indicator_trend_shows_each_year_with_small_cells_marked_and_empty_years_left_out() -> None:
    people = ([Person(n, "2003-05-05").exam("2019-06-20", 7.0, 7.0) for n in range(8)]
              + [Person(20 + n, "2004-05-05").exam("2020-06-20", 7.0, 7.0) for n in range(3)])
    lives = timelines(*people)
    assert trend_years(INDICATORS, lives) == list(range(2014, 2021))
    rows = trends(INDICATORS, lives, [2018, 2019, 2020], minimum_cell=5)
    exam = {(m.scope, m.year): m for m in rows if m.indicator_id == "exam-danish-maths"}
    assert set(exam) == {("municipality", 2019), ("area", 2019), ("municipality", 2020), ("area", 2020)}
    assert exam[("municipality", 2019)].shown() == "100.00 % (8/8)"
    assert exam[("municipality", 2020)].shown() == "suppressed (too_few_subjects)"
    page = render([exam_passes(20)], ASSUMPTIONS, title="t", evidence=Evidence(INDICATORS, rows))
    assert "Did it work? Indicators against their baselines" in page
    assert "<td>2020</td><td>suppressed (too_few_subjects)</td>" in page
    assert "<td>baseline</td><td>91.4 % (2019)</td><td>82.5 % (2019)</td>" in page
