"""Did it work: the deadweight an estimate measures, the report's business case that
uses it instead of the assumed constant, and the report's indicator section."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

from cli.reporting.business_case import load_assumptions
from cli.reporting.data import OutcomeRow, ReportData
from cli.reporting.evidence import Evidence, ExperimentResult, measured_by_outcome, trend_years, trends
from cli.reporting.html import render
from cli.reporting.skandia import load_exclusion_model, measured_deadweights
from shared.domain.indicators.experiment import Estimate
from shared.domain.indicators.loader import load_experiment, load_indicators
from shared.platform.settings import REPO_ROOT
from tests.unit.test_indicators import Person, timelines
from tests.unit.test_small_cells import MOBILITY

INDICATORS = load_indicators(REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml")
EXPERIMENT = load_experiment(REPO_ROOT / "examples" / "experiments" / "exam-support.yaml")
ASSUMPTIONS = load_assumptions(REPO_ROOT / "examples" / "business-case.yaml")
EXCLUSION = load_exclusion_model(REPO_ROOT / "examples" / "price-of-exclusion.yaml")


def estimate(effect: float, low: float, high: float) -> Estimate:
    return Estimate("exam-danish-maths", effect, low, high, 0.01, 12, 12, 999, 80.0)


def evidence(effect: float, low: float, high: float) -> Evidence:
    result = ExperimentResult(EXPERIMENT, (estimate(effect, low, high),), (), "a test")
    return Evidence(INDICATORS, (), (result,))


def exam_results(passed: int, failed: int = 0) -> ReportData:
    """Verified exam passes, and exams judged and not passed (the condition not met)."""
    on = dt.date(2021, 6, 20)
    outcomes = tuple(OutcomeRow("mobility-bonus", "exam-passed", "verified", None, on, 0, f"k1:{n:064x}")
                     for n in range(passed))
    outcomes += tuple(OutcomeRow("mobility-bonus", "exam-passed", "rejected", "condition_not_met", on, 0,
                                 f"k1:{n + passed:064x}") for n in range(failed))
    return ReportData("test", (MOBILITY,), outcomes, (), source="a test")


def test_an_estimate_measures_the_deadweight_of_the_outcomes_its_indicator_measures() -> None:
    estimates = evidence(10.0, 5.0, 15.0).estimates()
    # 16 of 20 exams passed (80 %); the programme caused 10 points: 1 - 0.10 / 0.80.
    (weight,) = measured_deadweights(EXCLUSION, estimates, exam_results(16, 4)).values()
    assert weight.measured
    assert (weight.value, weight.low, weight.high) == (Fraction(7, 8), Fraction(13, 16), Fraction(15, 16))
    # The same effect given per outcome (stafet simulate --effect) measures the same.
    assert measured_by_outcome(exam_results(16, 4), {"exam-passed": estimates[0]}) == {"exam-passed": weight}
    # An outcome the data never judged keeps its assumed deadweight.
    assert measured_deadweights(EXCLUSION, estimates, exam_results(0)) == {}


def test_the_report_s_business_case_uses_the_measured_deadweight() -> None:
    page = render([exam_results(16, 4)], ASSUMPTIONS, title="t", evidence=evidence(10.0, 5.0, 15.0),
                  exclusion=EXCLUSION)
    assert "exam-passed 88% measured [81%, 94%]" in page
    assumed = render([exam_results(16, 4)], ASSUMPTIONS, title="t", exclusion=EXCLUSION)
    assert f"exam-passed {float(EXCLUSION.outcomes['exam-passed'].deadweight):.0%} assumed" in assumed
    # About fewer subjects than the minimum, the case is not shown at all.
    small = render([exam_results(3, 1)], ASSUMPTIONS, title="t", evidence=evidence(10.0, 5.0, 15.0),
                   exclusion=EXCLUSION)
    assert "measured [" not in small
    assert "suppressed (too_few_subjects): the case is about 4 subject(s)" in small


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
    page = render([exam_results(20)], ASSUMPTIONS, title="t", evidence=Evidence(INDICATORS, rows))
    assert "Did it work? Indicators against their baselines" in page
    assert "<td>2020</td><td>suppressed (too_few_subjects)</td>" in page
    assert "<td>baseline</td><td>91.4 % (2019)</td><td>82.5 % (2019)</td>" in page
