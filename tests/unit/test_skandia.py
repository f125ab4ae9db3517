"""The business case as the Skandia model makes it: NPV, payback year and the split
of savings between municipality, region and state, on figures computed by hand."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from cli.reporting.skandia import (
    ExclusionModel,
    ExclusionModelError,
    exclusion_case,
    load_exclusion_model,
    measured_deadweight,
    outcome_rate,
)
from shared.domain.indicators.experiment import Estimate
from shared.platform.settings import REPO_ROOT

# One group costing 1,000.00 a year per person, borne 50/20/30 by municipality, region
# and state; a job moves a person out of it for 10 years, half of the jobs would have
# come anyway; 10 % a year; no running cost. Four jobs in 2020 (year 1): 2 persons,
# saving 2 x 100,000 minor a year from 2021 (year 2) on.
MODEL: dict[str, Any] = {
    "discount_rate": "0.10", "horizons": [4, 10],
    "groups": {"on-benefit": {"title": "Adult on benefit", "yearly_cost_minor": 100_000,
                              "split": {"municipality": "0.5", "region": "0.2", "state": "0.3"},
                              "source": "test", "illustrative": True}},
    "outcomes": {"job": {"group": "on-benefit", "effect_years": 10, "deadweight": "0.5", "source": "test"}},
}
JOBS = {("job", 2020): 4}


def case(paid_in_2020_minor: int, **changes: Any) -> Any:
    return exclusion_case(ExclusionModel.model_validate({**MODEL, **changes}), JOBS,
                          {2020: paid_in_2020_minor}, first_year=2020)


def test_npv_and_payback_year_match_the_hand_computed_figures() -> None:
    four, ten = case(300_000).horizons
    # cost: 300,000 / 1.1 = 272,727.27, rounded up: 272,728.
    # savings over 4 years: 200,000 x (1/1.1^2 + 1/1.1^3 + 1/1.1^4) = 452,154.91, rounded down.
    assert (four.cost_minor, four.savings_minor, four.npv_minor) == (272_728, 452_154, 179_426)
    # over 10 years: 200,000 x (1/1.1^2 + ... + 1/1.1^10) = 1,047,095.24.
    assert (ten.cost_minor, ten.savings_minor, ten.npv_minor) == (272_728, 1_047_095, 774_367)
    # cumulative: year 2 -107,438.02, year 3 +42,824.94: paid back in year 3.
    assert four.payback_year == ten.payback_year == 3


def test_the_horizon_changes_the_verdict_a_case_that_loses_over_4_years_pays_over_10() -> None:
    four, ten = case(700_000).horizons
    # cost 700,000 / 1.1 = 636,363.64 -> 636,364; the savings as above.
    assert (four.npv_minor, four.pays_off, four.payback_year) == (452_154 - 636_364, False, None)
    assert (ten.npv_minor, ten.pays_off) == (1_047_095 - 636_364, True)
    # cumulative: year 5 -60,024.46, year 6 +52,870.32.
    assert ten.payback_year == 6


def test_the_split_shows_who_invests_and_who_harvests() -> None:
    four, _ = case(700_000).horizons
    # 452,154.91 split 50/20/30 exactly: 226,077.45 / 90,430.98 / 135,646.47; rounded
    # down they add up to 452,153, the largest remainder (the region's .98) gets the øre.
    assert dict(four.savings_by_level) == {"municipality": 226_077, "region": 90_431, "state": 135_646}
    assert sum(four.savings_by_level.values()) == four.savings_minor
    # The municipality pays and loses over 4 years; region and state only harvest.
    assert four.net_by_level("municipality") == {"municipality": 226_077 - 636_364, "region": 90_431,
                                                 "state": 135_646}
    assert sum(four.net_by_level("municipality").values()) == four.npv_minor


def test_a_running_cost_is_borne_in_its_years_only() -> None:
    four, _ = case(0, running_cost_yearly_minor=110_000, running_cost_years=1).horizons
    assert four.cost_minor == 100_000  # 110,000 / 1.1, exactly


def test_a_measured_effect_replaces_the_assumed_deadweight_and_carries_its_interval() -> None:
    estimate = Estimate("job-rate", effect_points=10.0, low_points=6.0, high_points=14.0, p_value=0.01,
                        treated_units=6, comparison_units=6, permutations=2000)
    measured = measured_deadweight(estimate, outcome_rate=Fraction(1, 2))
    # Of a 50 % outcome rate the programme caused 10 points: 1 - 0.10 / 0.5 = 0.8 would
    # have happened anyway; the interval's ends give 0.72 and 0.88.
    assert (measured.value, measured.low, measured.high) == (Fraction(4, 5), Fraction(18, 25), Fraction(22, 25))
    result = exclusion_case(ExclusionModel.model_validate(MODEL), JOBS, {2020: 0}, 2020, {"job": measured})
    assert result.persons_out == {"on-benefit": Fraction(4, 5)}  # 4 jobs x 0.2
    four = result.horizons[0]
    # 0.8 persons instead of 2: savings 452,154.91 x 0.4 = 180,861.96.
    assert four.savings_minor == 180_861
    assert four.npv_range_minor is not None
    low_deadweight, high_deadweight = four.npv_range_minor
    assert low_deadweight > four.npv_minor > high_deadweight
    assert result.deadweights["job"].measured


def test_an_effect_larger_than_the_outcome_rate_means_no_deadweight() -> None:
    estimate = Estimate("x", 30.0, 20.0, 40.0, 0.0, 3, 3, 2000)
    assert measured_deadweight(estimate, Fraction(1, 4)).value == 0
    with pytest.raises(ValueError, match="above 0"):
        measured_deadweight(estimate, Fraction(0))


def test_the_outcome_rate_counts_the_triggers_judged_on_their_condition() -> None:
    rows = [("exam-passed", "verified", None)] * 3 + [("exam-passed", "rejected", "condition_not_met")] \
        + [("exam-passed", "rejected", "not_eligible"), ("other", "verified", None)]
    assert outcome_rate(rows, "exam-passed") == Fraction(3, 4)
    assert outcome_rate(rows, "missing") is None


def test_the_example_model_loads_and_marks_every_figure_without_a_source_as_illustrative() -> None:
    model = load_exclusion_model(REPO_ROOT / "examples" / "price-of-exclusion.yaml")
    assert model.horizons == (4, 10)
    assert len(model.groups) == 5
    for group in model.groups.values():
        assert group.illustrative == group.source.startswith("illustrative")


def test_a_bad_model_file_is_one_line_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "model.yaml"
    bad.write_text("discount_rate: '0.03'\ngroups: {g: {title: x, yearly_cost_minor: 1, split: {state: '0.5'},"
                   " source: s, illustrative: true}}\noutcomes: {}\n")
    with pytest.raises(ExclusionModelError, match=r"model.yaml: groups.g: .*add up to exactly 1"):
        load_exclusion_model(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("discount_rate: '0.03'\ngroups: {g: {title: x, yearly_cost_minor: 1, split: {state: '1'},"
                       " source: s, illustrative: true}}\noutcomes: {job: {group: h, effect_years: 1,"
                       " deadweight: '0', source: s}}\n")
    with pytest.raises(ExclusionModelError, match="names unknown group 'h'"):
        load_exclusion_model(unknown)


def test_stafet_simulate_shows_the_case_over_both_horizons_with_the_split(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from cli.synthetic.population import generate, to_json_line, write_registry

    events, registry = tmp_path / "events.jsonl", tmp_path / "institutions.yaml"
    institutions, generated = generate(150, seed=4)
    events.write_bytes(b"".join(to_json_line(e) + b"\n" for e in generated))
    write_registry(registry, institutions)
    base = ["simulate", "--events", str(events), "--institutions", str(registry), "--report",
            str(tmp_path / "r.html"), "--contract", str(REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml")]
    result = CliRunner().invoke(app, [*base, "--effect", "exam-passed=9.8:6.1:13.5"])
    assert result.exit_code == 0, result.output
    assert "municipality" in result.output
    assert "region" in result.output
    assert "state" in result.output
    title = "Social mobility bonus, youth education completed"
    lines = [line for line in result.output.splitlines() if line.startswith(title)]
    assert [line[len(title):].split()[0] for line in lines[-2:]] == ["4", "10"]  # both horizons
    assert "exam-passed" in result.output
    assert "measured" in result.output
    for bad, message in ((["--effect", "exam-passed=ten"], "expected OUTCOME=POINTS:LOW:HIGH"),
                         (["--effect", "exam-passed=9:10:11"], "LOW <= POINTS <= HIGH"),
                         (["--exclusion-model", str(tmp_path / "none.yaml")], "cannot read")):
        refused = CliRunner().invoke(app, [*base, *bad])
        assert refused.exit_code == 2
        assert refused.output.startswith("error: ")
        assert message in refused.output
        assert len(refused.output.strip().splitlines()) == 1


def test_an_experiment_estimate_measures_the_deadweight_of_the_outcome_its_indicator_names() -> None:
    import datetime as dt

    from cli.reporting.data import OutcomeRow, ReportData
    from cli.reporting.skandia import measured_deadweights

    model = ExclusionModel.model_validate({**MODEL, "outcomes": {"job": {**MODEL["outcomes"]["job"],
                                                                          "indicator": "job-rate"}}})
    day = dt.date(2021, 1, 1)
    rows = (*(OutcomeRow("c", "job", "verified", None, day, 1, f"k1:{n}") for n in range(2)),
            *(OutcomeRow("c", "job", "rejected", "condition_not_met", day, 0, f"k1:{n + 2}") for n in range(2)))
    data = ReportData("variant", (), rows, ())
    estimate = Estimate("job-rate", 10.0, 5.0, 15.0, 0.01, 6, 6, 2000)
    measured = measured_deadweights(model, [estimate, Estimate("other", 1.0, 0.0, 2.0, 0.5, 6, 6, 2000)], data)
    # Half of the triggers met the condition; 10 of those 50 points are the programme's.
    assert measured["job"].value == Fraction(4, 5)
    assert measured_deadweights(model, [], data) == {}


def test_the_report_section_shows_both_horizons_the_split_and_marks_illustrative_figures() -> None:
    from cli.reporting.skandia_html import section

    model = ExclusionModel.model_validate(MODEL)
    page = section([("variant A", case(700_000)), ("variant B", None)], model)
    assert "4 years" in page
    assert "10 years" in page
    assert "(does not pay off)" in page  # over 4 years
    assert "year 6 (2025)" in page
    assert "net: municipality" in page
    assert "net: state" in page
    assert "Adult on benefit (illustrative)" in page
    assert "not comparable" in page
