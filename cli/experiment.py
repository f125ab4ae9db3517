"""`stafet experiment`: assign an experiment's units (auditable records), evaluate it
over subjects' facts, or run it on a synthetic municipality with a known effect.

`assign` writes one `ExperimentUnitAssigned` record per unit (JSON Lines) naming the
definition's SHA-256, the method and the seed: anyone can re-derive it, and `evaluate`
refuses records that the definition does not give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from cli.defaults import shown
from cli.errors import fail
from cli.reporting.evidence import ExperimentResult
from shared.domain.indicators.experiment import (
    Estimate,
    EvaluationError,
    Experiment,
    UnitAssigned,
    assign,
    check_assignment,
)
from shared.domain.indicators.loader import IndicatorFileError, load_experiment, load_indicators
from shared.platform.settings import REPO_ROOT

app = typer.Typer(rich_markup_mode=None, help="Social experiments: assignment and evaluation.", no_args_is_help=True)
SONDERBORG = REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml"
EXAM_SUPPORT = REPO_ROOT / "examples" / "experiments" / "exam-support.yaml"
DEMO_EFFECT_POINTS = 10.0
DEMO_SEED = 1
MAX_ASSIGNMENT_BYTES = 10_000_000


def read_experiment(path: Path) -> Experiment:
    try:
        return load_experiment(path)
    except IndicatorFileError as error:
        fail(str(error))


@app.command("assign")
def assign_units(
    experiment: Annotated[Path, typer.Argument(help="Experiment definition (YAML)")],
    out: Annotated[Path | None, typer.Option(help="Write the assignment records here (default stdout)")] = None,
) -> None:
    """Assign the units to treated and comparison, as the definition's method and seed say."""
    lines = [record.model_dump_json() for record in assign(read_experiment(experiment))]
    if out is None:
        typer.echo("\n".join(lines))
        return
    out.write_text("\n".join(lines) + "\n")
    typer.echo(f"{len(lines)} assignment records in {out}")


def read_assignment(path: Path) -> list[UnitAssigned]:
    try:
        if path.stat().st_size > MAX_ASSIGNMENT_BYTES:
            fail(f"{path}: larger than {MAX_ASSIGNMENT_BYTES} bytes")
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"{path}: cannot read: {error}")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(UnitAssigned.model_validate_json(line))
        except ValidationError as error:
            fail(f"{path}:{number}: not an assignment record: {error.errors()[0]['msg']}")
    return records


def _print(estimates: list[Estimate], left_out: list[str]) -> None:
    for e in estimates:
        verdict = "significant" if e.significant else "not significant"
        typer.echo(f"{e.indicator_id}: effect {e.effect_points:+.2f} percentage points, {e.interval_text()}, "
                   f"{e.p_value_text()} ({verdict}); {e.treated_units} treated, {e.comparison_units} comparison units")
    if left_out:
        typer.echo(f"left out (nobody measured in a year): {', '.join(left_out)}")


@app.command("evaluate")
def evaluate_experiment(
    experiment: Annotated[Path, typer.Argument(help="Experiment definition (YAML)")],
    assignment: Annotated[Path, typer.Option(help="The assignment records `assign` wrote")],
    events: Annotated[Path, typer.Option(help="Institution events (JSON Lines, as `stafet generate` writes)")],
    institutions: Annotated[Path, typer.Option(help="Institution registry (YAML)")],
    indicators: Annotated[Path, typer.Option(help="Indicator definitions (YAML)", show_default=shown(SONDERBORG))] = SONDERBORG,
    seed: Annotated[int, typer.Option(help="Seed of the permutation test's re-draws")] = 1,
) -> None:
    """Difference in differences per registered indicator, with a permutation interval."""
    from cli.synthetic.trial import evaluate
    from shared.domain.indicators.feed import timelines_from_transitions, transitions_from_generated
    from shared.domain.institutions import InstitutionRegistry

    definition = read_experiment(experiment)
    records = read_assignment(assignment)
    try:
        check_assignment(definition, records)
        definitions = load_indicators(indicators)
        registry = InstitutionRegistry.from_file(institutions)
        raw = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines() if line.strip()]
        timelines = timelines_from_transitions(transitions_from_generated(raw, registry))
        estimates, left_out = evaluate(definition, definitions, records, timelines, seed)
    except (EvaluationError, IndicatorFileError, OSError, ValueError) as error:
        fail(str(error).splitlines()[0])
    _print(estimates, left_out)


@app.command("trial")
def trial(
    experiment: Annotated[Path, typer.Argument(help="Experiment definition (YAML)")],
    effect: Annotated[float, typer.Option(help="Injected effect on the exam pass rate, percentage points",
                                          min=-50, max=50)] = 10.0,
    seed: Annotated[int, typer.Option(help="Generator and permutation seed")] = 1,
    indicators: Annotated[Path, typer.Option(help="Indicator definitions (YAML)", show_default=shown(SONDERBORG))] = SONDERBORG,
) -> None:
    """Run the experiment on a synthetic municipality whose treated schools get a known effect."""
    from cli.synthetic.trial import synthetic_trial

    definition = read_experiment(experiment)
    try:
        estimates, left_out = synthetic_trial(definition, load_indicators(indicators), effect, seed)
    except (EvaluationError, IndicatorFileError, ValueError) as error:
        fail(str(error).splitlines()[0])
    typer.echo(f"synthetic trial of {definition.id}: injected {effect:+.2f} percentage points in the treated "
               f"schools from {definition.follow_up_year}, seed {seed}")
    _print(estimates, left_out)


def demo_experiment() -> ExperimentResult:
    """`make demo`'s experiment: the example on a synthetic trial population whose
    treated schools were given a known effect (pure; a few seconds)."""
    from cli.synthetic.trial import synthetic_trial
    definition = read_experiment(EXAM_SUPPORT)
    estimates, left_out = synthetic_trial(definition, load_indicators(SONDERBORG), DEMO_EFFECT_POINTS, DEMO_SEED)
    source = (f"a synthetic trial population of {len(definition.units) // 4} municipalities (seed {DEMO_SEED}) "
              f"whose treated schools were given {DEMO_EFFECT_POINTS:+.0f} percentage points on the exam from "
              f"{definition.follow_up_year}")
    return ExperimentResult(definition, tuple(estimates), tuple(left_out), source)


def print_experiment(result: ExperimentResult) -> None:
    """The answer to "did it work", as the demo prints it: the estimate with its interval."""
    definition = result.experiment
    typer.echo(f"\nDid it work? {definition.title}: {len(definition.units)} schools, "
               f"{definition.assignment.method} assignment (seed {definition.assignment.seed}); subjects from "
               f"{result.source}")
    _print(list(result.estimates), list(result.left_out))
