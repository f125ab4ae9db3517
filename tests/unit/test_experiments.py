"""Experiments: an auditable assignment, and a difference-in-differences estimate whose
interval covers a known injected effect and does not call an injected zero significant.
Every seed is fixed, so each run checks the same cases."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from cli.synthetic.trial import synthetic_trial
from shared.domain.indicators.experiment import (
    EvaluationError,
    Experiment,
    UnitChange,
    assign,
    check_assignment,
    estimate,
)
from shared.domain.indicators.loader import load_indicators
from shared.platform.settings import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "experiments" / "exam-support.yaml"
INDICATORS = load_indicators(REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml")


def experiment(**changes: object) -> Experiment:
    data = yaml.safe_load(EXAMPLE.read_text())
    data.update(changes)
    return Experiment.model_validate(data)


def test_a_stratified_assignment_treats_half_of_each_stratum_and_is_reproducible_from_its_seed() -> None:
    first, again = assign(experiment()), assign(experiment())
    assert first == again
    by_stratum: dict[str, list[str]] = {}
    for record in first:
        by_stratum.setdefault(record.stratum, []).append(record.arm)
    assert all(sorted(arms) == ["comparison", "comparison", "treated", "treated"] for arms in by_stratum.values())
    assert {r.seed for r in first} == {20240601}
    assert len({r.experiment_sha256 for r in first}) == 1
    other_seed = assign(experiment(assignment={"method": "stratified", "seed": 7, "treated_share": 0.5}))
    assert [r.arm for r in other_seed] != [r.arm for r in first]


def test_a_declared_comparison_group_is_taken_as_declared() -> None:
    declared = experiment(assignment={"method": "declared", "treated": ["school-0-0", "school-3-2"]})
    assert sorted(r.unit for r in assign(declared) if r.arm == "treated") == ["school-0-0", "school-3-2"]


def test_an_edited_or_foreign_assignment_is_refused() -> None:
    records = list(assign(experiment()))
    check_assignment(experiment(), records)
    flipped = records[0].model_copy(update={"arm": "comparison" if records[0].arm == "treated" else "treated"})
    with pytest.raises(EvaluationError, match="differ from the assignment"):
        check_assignment(experiment(), [flipped, *records[1:]])
    with pytest.raises(EvaluationError, match="another version"):
        check_assignment(experiment(follow_up_year=2022), records)


@pytest.mark.parametrize(("changes", "message"), [
    ({"assignment": {"method": "randomised"}}, "recorded seed"),
    ({"assignment": {"method": "declared", "treated": ["nowhere"]}}, "not in units"),
    ({"follow_up_year": 2019}, "after baseline_year"),
])
def test_an_incomplete_experiment_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        experiment(**changes)


def binomial_units(seed: int, effect_points: float, units: int = 20, pupils: int = 60) -> list[UnitChange]:
    """Unit-level data drawn directly: each unit has its own baseline pass rate, pupils
    pass at random, treated units gain `effect_points` in the follow-up year."""
    chance = random.Random(seed)
    result = []
    for index in range(units):
        treated = index % 2 == 0
        rate = 0.75 + chance.gauss(0, 0.05)
        before = sum(chance.random() < rate for _ in range(pupils)) / pupils
        after_rate = rate + (effect_points / 100 if treated else 0)
        after = sum(chance.random() < after_rate for _ in range(pupils)) / pupils
        result.append(UnitChange(f"u{index}", treated, "", 100 * (after - before)))
    return result


def test_the_interval_covers_a_known_effect_for_the_large_majority_of_seeds() -> None:
    estimates = [estimate("x", binomial_units(seed, 10.0), stratified=False, seed=seed, permutations=999)
                 for seed in range(40)]
    covered = sum(e.low_points <= 10.0 <= e.high_points for e in estimates)
    assert covered >= 34, covered  # nominal 95 %: 38 of 40 expected
    assert sum(e.significant for e in estimates) >= 30  # a 10-point effect is usually detected


def test_an_injected_zero_is_rarely_called_significant() -> None:
    estimates = [estimate("x", binomial_units(seed, 0.0), stratified=False, seed=seed, permutations=999)
                 for seed in range(40)]
    assert sum(e.significant for e in estimates) <= 4  # nominal 5 %: 2 of 40 expected
    assert all(e.low_points <= e.effect_points <= e.high_points for e in estimates)


def test_an_evaluation_without_a_comparison_group_is_refused() -> None:
    units = [UnitChange(f"u{i}", True, "", 1.0) for i in range(4)]
    with pytest.raises(EvaluationError, match="treated and comparison"):
        estimate("x", units, stratified=False, seed=1)


TRIAL = experiment(follow_up_year=2020)  # two exam cohorts: 2019 before, 2020 after


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_synthetic_trial_recovers_the_effect_the_generator_injected(seed: int) -> None:
    """Through the whole chain: generator, timelines, indicator per school, estimate."""
    (result,), left_out = synthetic_trial(TRIAL, INDICATORS, 10.0, seed)
    assert left_out == []
    assert (result.treated_units, result.comparison_units) == (12, 12)
    assert result.low_points <= 10.0 <= result.high_points
    assert result.effect_points > 0  # 12 against 12 schools of ~60 pupils: not always significant


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_synthetic_trial_with_no_effect_is_not_called_significant(seed: int) -> None:
    (result,), _ = synthetic_trial(TRIAL, INDICATORS, 0.0, seed)
    assert not result.significant
    assert result.low_points <= 0.0 <= result.high_points


def test_the_example_experiment_registers_a_defined_indicator() -> None:
    assert all(INDICATORS.by_id(i) is not None for i in experiment().indicators)


def test_the_commands_assign_and_evaluate_and_refuse_an_edited_assignment(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    records = tmp_path / "assignment.jsonl"
    assert runner.invoke(app, ["experiment", "assign", str(EXAMPLE), "--out", str(records)]).exit_code == 0
    events, registry = tmp_path / "events.jsonl", tmp_path / "institutions.yaml"
    generated = runner.invoke(app, ["generate", "--subjects", "1500", "--municipalities", "6", "--born-from", "2003",
                                    "--born-to", "2005", "--out", str(events), "--registry", str(registry)])
    assert generated.exit_code == 0, generated.output
    arguments = ["experiment", "evaluate", str(EXAMPLE), "--assignment", str(records), "--events", str(events),
                 "--institutions", str(registry)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("exam-danish-maths: effect ")
    assert "12 treated, 12 comparison units" in result.output
    records.write_text(records.read_text().replace('"arm":"treated"', '"arm":"comparison"', 1))
    refused = runner.invoke(app, arguments)
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: the assignment records differ")
