"""Indicator outcomes decided on hand-built populations: the improvement against a
published or measured baseline and against a comparison population (difference in
differences), exact to the fraction; the floor, the cap, rounding, the payees; small
populations and self-reported evidence not paid on; and the money when a decision moves."""

from __future__ import annotations

import datetime as dt
import hashlib
from fractions import Fraction

import pytest

from shared.domain.contracts.evaluation import OutcomeStatus, RejectionReason
from shared.domain.contracts.indicator_outcomes import (
    Cell,
    decide_indicator,
    improvement_points,
    indicator_instructions,
    memberships,
    population_id,
    tally_cells,
)
from shared.domain.contracts.loader import ContractFileError, load_contract, parse_contract
from shared.domain.contracts.model import Contract
from shared.domain.contracts.timeline import SubjectTimeline, fold
from shared.domain.events import PaymentInstruction, PaymentKind
from shared.platform.settings import REPO_ROOT
from tests.unit.builders import transition

EXAMPLE = REPO_ROOT / "examples" / "contracts" / "housing-area-indicator.yaml"
AREA_SCHOOL, AREA_DAYCARE = "kommune-000-primary-school-0", "kommune-000-daycare-0"
OTHER_SCHOOL = "kommune-000-primary-school-1"


def example(**changes: str) -> Contract:
    """The shipped example, with YAML lines replaced (`"year: 2022": "year: 2021"`)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return parse_contract(text, "<test>")


def pupil(name: str, school: str, exam_year: int, passed: bool, exam_by: str = "exam-authority",
          exam_kind: str = "exam_authority") -> SubjectTimeline:
    subject = "k1:" + hashlib.sha256(name.encode()).hexdigest()
    birth = dt.date(exam_year - 16, 3, 1)
    grades = {"danish": 7.0, "maths": 4.0} if passed else {"danish": 7.0, "maths": 0.0}
    events = [
        transition(f"{name}-in", f"{exam_year - 10}-08-10", school, "primary_school",
                   {"type": "enrolled", "institution": school}, subject=subject, birth=birth),
        transition(f"{name}-exam", f"{exam_year}-06-20", exam_by, exam_kind,
                   {"type": "exam_result", "exam": "fp9", "grades": grades}, subject=subject, birth=birth),
    ]
    return fold(subject, birth, events)


def cohort(school: str, year: int, passed: int, failed: int, tag: str = "") -> list[SubjectTimeline]:
    prefix = f"{school}-{year}{tag}"
    return [pupil(f"{prefix}-p{n}", school, year, True) for n in range(passed)] + \
        [pupil(f"{prefix}-f{n}", school, year, False) for n in range(failed)]


def decided(contract: Contract, timelines: list[SubjectTimeline]):  # type: ignore[no-untyped-def]
    outcome = contract.indicator_outcomes[0]
    cells = tally_cells(part for t in timelines for part in memberships(outcome, t))
    return decide_indicator(contract, outcome, cells), cells


def test_the_example_contract_passes_check_and_measures_difference_in_differences() -> None:
    contract = load_contract(EXAMPLE)
    outcome = contract.indicator_outcomes[0]
    assert outcome.comparison is not None
    assert outcome.baseline.percent is None
    assert outcome.payee_institutions() == (AREA_DAYCARE, AREA_SCHOOL)


def test_difference_in_differences_pays_the_area_change_beyond_the_comparison_change_exactly() -> None:
    contract = example()
    # Area: 12/20 = 60 % in 2019, 15/20 = 75 % in 2022 (+15 points).
    # Rest: 30/40 = 75 % in 2019, 32/40 = 80 % in 2022 (+5 points). Improvement: 10 points.
    timelines = (cohort(AREA_SCHOOL, 2019, 12, 8) + cohort(AREA_SCHOOL, 2022, 15, 5)
                 + cohort(OTHER_SCHOOL, 2019, 30, 10) + cohort(OTHER_SCHOOL, 2022, 32, 8))
    decision, cells = decided(contract, timelines)
    assert cells["area:2019"] == Cell(12, 20)
    assert cells["comparison:2022"] == Cell(32, 40)
    assert improvement_points(contract.indicator_outcomes[0], cells) == 10
    assert decision.status == OutcomeStatus.VERIFIED
    assert decision.owed_minor == 10 * 2_500_000
    # Two institutions in the area, equal shares.
    assert [(p.payee, p.amount_minor) for p in decision.payees] == [(AREA_DAYCARE, 12_500_000),
                                                                   (AREA_SCHOOL, 12_500_000)]
    assert decision.subject == population_id(contract.contract_id, "exam-improvement")
    assert decision.occurred_on == dt.date(2023, 3, 31)


def test_a_fractional_improvement_is_exact_and_the_amount_is_rounded_down_then_split_by_largest_remainder() -> None:
    contract = example(**{"price_per_point_minor: 2500000": "price_per_point_minor: 1000001",
                          "floor_points: \"1\"": "floor_points: \"0\""})
    # Area 2/7 -> 5/7 (+300/7 points); rest 3/6 -> 3/6 (0). 1,000,001 * 300/7 = 42,857,185.71...
    timelines = (cohort(AREA_SCHOOL, 2019, 2, 5) + cohort(AREA_SCHOOL, 2022, 5, 2)
                 + cohort(OTHER_SCHOOL, 2019, 3, 3) + cohort(OTHER_SCHOOL, 2022, 3, 3))
    contract = contract.model_copy(update={"indicator_outcomes": (contract.indicator_outcomes[0].model_copy(
        update={"minimum_cell": 2, "cap_minor": 10**12}),)})
    decision, cells = decided(contract, timelines)
    assert improvement_points(contract.indicator_outcomes[0], cells) == Fraction(300, 7)
    assert decision.owed_minor == 42_857_185
    # 42,857,185 / 2 = 21,428,592.5 each: the tie goes to the first institution id.
    assert [p.amount_minor for p in decision.payees] == [21_428_593, 21_428_592]


def test_against_a_published_baseline_the_area_value_is_compared_with_the_agreement_s_figure() -> None:
    contract = example(**{"baseline: {year: 2019}": 'baseline: {year: 2019, percent: "82.5"}',
                          "comparison: {name: rest-of-municipality}": ""})
    # 18/20 = 90 % against 82.5 %: 7.5 points, DKK 187,500.
    decision, _ = decided(contract, cohort(AREA_SCHOOL, 2022, 18, 2))
    assert decision.status == OutcomeStatus.VERIFIED
    assert decision.owed_minor == 18_750_000


def test_against_its_own_measured_baseline_a_lower_is_better_indicator_counts_a_fall_as_improvement() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace("better: higher", "better: lower").replace(
        "comparison: {name: rest-of-municipality}", "")
    contract = parse_contract(text)
    # Read as if fewer passing were better: 15/20 -> 13/20 is -10 points, an improvement of 10.
    decision, _ = decided(contract, cohort(AREA_SCHOOL, 2019, 15, 5) + cohort(AREA_SCHOOL, 2022, 13, 7))
    assert decision.owed_minor == 10 * 2_500_000


def test_an_improvement_below_the_floor_or_a_worsening_pays_nothing_with_a_reason() -> None:
    contract = example(**{"comparison: {name: rest-of-municipality}": ""})
    # +0.5 points (floor 1): 10/20 -> 21/41 is +1.22; use 50/100 -> 101/200 = +0.5.
    small, _ = decided(contract, cohort(AREA_SCHOOL, 2019, 50, 50) + cohort(AREA_SCHOOL, 2022, 101, 99))
    assert (small.status, small.reason) == (OutcomeStatus.REJECTED, RejectionReason.IMPROVEMENT_BELOW_FLOOR)
    worse, _ = decided(contract, cohort(AREA_SCHOOL, 2019, 15, 5) + cohort(AREA_SCHOOL, 2022, 10, 10))
    assert worse.reason == RejectionReason.IMPROVEMENT_BELOW_FLOOR
    assert worse.owed_minor == 0


def test_the_cap_limits_the_amount_and_the_detail_says_what_was_not_owed() -> None:
    contract = example(**{"comparison: {name: rest-of-municipality}": ""})
    decision, _ = decided(contract, cohort(AREA_SCHOOL, 2019, 5, 15) + cohort(AREA_SCHOOL, 2022, 20, 0))
    # +75 points would be DKK 1,875,000; the cap is DKK 500,000.
    assert decision.owed_minor == 50_000_000
    assert "not owed" in decision.detail


def test_a_population_under_the_small_cell_minimum_is_not_paid_on() -> None:
    contract = example()
    # Four pupils in the area in 2022: a big rise on paper, but noise.
    timelines = (cohort(AREA_SCHOOL, 2019, 2, 8) + cohort(AREA_SCHOOL, 2022, 4, 0)
                 + cohort(OTHER_SCHOOL, 2019, 30, 10) + cohort(OTHER_SCHOOL, 2022, 30, 10))
    decision, _ = decided(contract, timelines)
    assert (decision.status, decision.reason) == (OutcomeStatus.REJECTED, RejectionReason.POPULATION_BELOW_MINIMUM)
    assert decision.owed_minor == 0
    assert "area:2022" in decision.detail
    assert "4" not in decision.detail.replace("2022", "")  # names the cell, not its count


def test_a_missing_comparison_year_is_a_population_below_the_minimum_too() -> None:
    decision, _ = decided(example(), cohort(AREA_SCHOOL, 2019, 10, 10) + cohort(AREA_SCHOOL, 2022, 15, 5))
    assert decision.reason == RejectionReason.POPULATION_BELOW_MINIMUM
    assert "comparison:2019" in decision.detail


def test_exam_results_reported_by_a_paid_institution_are_not_paid_on() -> None:
    contract = example(**{"comparison: {name: rest-of-municipality}": ""})
    timelines = cohort(AREA_SCHOOL, 2019, 10, 10) + cohort(AREA_SCHOOL, 2022, 15, 4)
    timelines.append(pupil("self", AREA_SCHOOL, 2022, True, exam_by=AREA_SCHOOL, exam_kind="primary_school"))
    decision, _ = decided(contract, timelines)
    assert decision.reason == RejectionReason.SELF_REPORTED_EVIDENCE


def test_a_subject_in_the_area_is_never_in_the_comparison() -> None:
    outcome = example().indicator_outcomes[0]
    both = pupil("both", AREA_SCHOOL, 2022, True)
    cells = {part.cell for part in memberships(outcome, both)}
    assert cells == {"area:2022"}
    assert {part.cell for part in memberships(outcome, pupil("rest", OTHER_SCHOOL, 2022, True))} == {"comparison:2022"}


@pytest.mark.parametrize(("change", "problem"), [
    ({"year: 2022": "year: 2019"}, "baseline.year: 2019 is not before the measured year 2019"),
    ({"review_on: 2023-03-31": "review_on: 2022-12-31"}, "review_on: 2022-12-31 is not after the measured period"),
    ({"review_on: 2023-03-31": "review_on: 2027-03-31"}, "review_on: 2027-03-31 is outside the period"),
    ({"{kind: area}": "{kind: direct, payee: {role: previous_institution}}"}, "other roles need a subject"),
    ({"baseline: {year: 2019}": 'baseline: {year: 2019, percent: "82.5"}'}, "baseline.percent: a comparison"),
    ({"cap_minor: 50000000": "cap_minor: 0"}, "cap_minor: Input should be greater than 0"),
])
def test_check_refuses_an_indicator_outcome_that_cannot_be_decided_naming_file_line_and_field(
        change: dict[str, str], problem: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for old, new in change.items():
        text = text.replace(old, new)
    with pytest.raises(ContractFileError) as raised:
        parse_contract(text, "area.yaml")
    assert problem in str(raised.value)
    assert str(raised.value).startswith("area.yaml:")
    line = str(raised.value).split(":")[1]
    assert line.isdigit(), str(raised.value)


def test_a_contract_needs_an_outcome_of_some_kind() -> None:
    with pytest.raises(ContractFileError, match="at least one outcome or indicator outcome"):
        parse_contract("contract_id: x\nversion: 1\npayer: p\ncurrency: DKK\n"
                       "period: {start: 2020-01-01, end: 2020-12-31}\n")


# -- money when the decision moves ----------------------------------------------------------

def net(instructions: list[PaymentInstruction]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for i in instructions:
        sign = 1 if i.kind == PaymentKind.PAYMENT else -1
        totals[i.payee] = totals.get(i.payee, 0) + sign * i.amount_minor
    return {k: v for k, v in totals.items() if v}


def redecide(contract: Contract, points: list[int]) -> list[list[PaymentInstruction]]:
    """Decide the example at each improvement in turn (a published baseline of 50 %,
    100 pupils), issuing what each re-decision calls for; return each step's instructions."""
    outcome = contract.indicator_outcomes[0]
    issued: list[PaymentInstruction] = []
    steps = []
    for point in points:
        cells = {"area:2022": Cell(50 + point, 100)}
        new = indicator_instructions(contract, decide_indicator(contract, outcome, cells), issued)
        issued.extend(new)
        steps.append(new)
    return steps


def published_baseline_contract() -> Contract:
    return example(**{"baseline: {year: 2019}": 'baseline: {year: 2019, percent: "50"}',
                      "comparison: {name: rest-of-municipality}": "", "{kind: area}":
                      "{kind: direct, payee: {role: institution, institution: kommune-000-primary-school-0}}"})


def test_a_rise_is_a_top_up_of_the_difference_and_a_fall_claws_back_the_difference() -> None:
    contract = published_baseline_contract()
    first, rise, same, fall = redecide(contract, [4, 6, 6, 3])
    assert [(i.kind, i.amount_minor) for i in first] == [(PaymentKind.PAYMENT, 10_000_000)]
    assert [(i.kind, i.amount_minor) for i in rise] == [(PaymentKind.PAYMENT, 5_000_000)]
    assert same == []  # decided again with the same value: nothing moves
    # Nothing unchanged is reversed and paid again: 7.5 M of the 15 M stays where it is.
    assert sorted((i.kind, i.amount_minor) for i in fall) == [(PaymentKind.CLAWBACK, 7_500_000)]
    assert net([*first, *rise, *same, *fall]) == {AREA_SCHOOL: 7_500_000}


def test_back_and_forth_never_reuses_a_payment_id_and_the_net_is_the_last_decision() -> None:
    contract = published_baseline_contract()
    steps = redecide(contract, [4, 6, 4, 6, 0, 4, 6])
    everything = [i for step in steps for i in step]
    assert len({i.payment_id for i in everything}) == len(everything)
    assert net(everything) == {AREA_SCHOOL: 15_000_000}


def test_a_decision_that_no_longer_pays_claws_everything_back() -> None:
    contract = published_baseline_contract()
    steps = redecide(contract, [4, 6, -2])
    assert net([i for step in steps for i in step]) == {}
    assert all(i.kind == PaymentKind.CLAWBACK for i in steps[-1])
