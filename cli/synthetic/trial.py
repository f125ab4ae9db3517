"""A synthetic trial: the experiment's treated schools get a known effect in the
generator, and the evaluation should find it (tests, `stafet experiment trial`)."""

from __future__ import annotations

from collections.abc import Sequence

from cli.synthetic.population import Effect, Rates, generate
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.indicators.compute import tally
from shared.domain.indicators.experiment import (
    Estimate,
    EvaluationError,
    Experiment,
    UnitAssigned,
    assign,
    estimate,
    unit_changes,
)
from shared.domain.indicators.feed import timelines_from_transitions, transitions_from_generated
from shared.domain.indicators.model import IndicatorSet
from shared.domain.institutions import InstitutionRegistry

TRIAL_RATES = Rates(exam_pass=0.75)  # room above for an improvement to show
PUPILS_PER_SCHOOL_YEAR = 60


def evaluate(experiment: Experiment, indicators: IndicatorSet, assigned: Sequence[UnitAssigned],
             timelines: Sequence[SubjectTimeline], seed: int) -> tuple[list[Estimate], list[str]]:
    """One estimate per registered indicator, and the units left out (nobody measured)."""
    estimates, left_out = [], set()
    stratified = experiment.assignment.method == "stratified"
    for indicator_id in experiment.indicators:
        indicator = indicators.by_id(indicator_id)
        if indicator is None:
            raise EvaluationError(f"indicator {indicator_id!r} is registered in the experiment "
                                  "but not defined in the indicator file")
        tallies = {}
        for unit in experiment.units:
            population = indicator.population.model_copy(update={"institutions": unit.institutions})
            # Only subjects ever registered at the unit can be in its population.
            members = [t for t in timelines if any(r.institution in population.institutions
                                                   for r in t.registrations)]
            for year in (experiment.baseline_year, experiment.follow_up_year):
                tallies[(unit.id, year)] = tally(indicator, members, year, population)
        changes, missing = unit_changes(experiment, assigned, tallies)
        left_out.update(missing)
        estimates.append(estimate(indicator_id, changes, stratified=stratified, seed=seed))
    return estimates, sorted(left_out)


def synthetic_trial(experiment: Experiment, indicators: IndicatorSet, effect_points: float, seed: int
                    ) -> tuple[list[Estimate], list[str]]:
    """Generate pupils for the experiment's units (schools named as the generator names
    them, one municipality per four schools), inject `effect_points` on the exam in the
    treated units from the follow-up year, and evaluate."""
    assigned = assign(experiment)
    treated = frozenset(i for a in assigned if a.arm == "treated"
                        for u in experiment.units if u.id == a.unit for i in u.institutions)
    municipalities = 1 + max(int(i.split("-")[1]) for u in experiment.units for i in u.institutions)
    cohorts = experiment.follow_up_year - experiment.baseline_year + 1
    subjects = municipalities * 4 * PUPILS_PER_SCHOOL_YEAR * cohorts
    registry, events = generate(subjects, seed=seed, municipalities=municipalities,
                                born_from=experiment.baseline_year - 16, born_to=experiment.follow_up_year - 16,
                                rates=TRIAL_RATES,
                                effect=Effect(experiment.follow_up_year, effect_points / 100, treated))
    timelines = timelines_from_transitions(transitions_from_generated(events, InstitutionRegistry(registry)))
    return evaluate(experiment, indicators, assigned, timelines, seed)
