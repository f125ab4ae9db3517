"""Did it work: the indicators year by year against their baselines, the experiments'
estimates, and the deadweight those estimates measure (pure).

A contract pays for every outcome that happens; only part of them happened because of
what the institutions did. An experiment's estimate on an indicator (treated units'
change minus comparison units' change) is the part caused; the rest of the treated
units' successes would have happened anyway. That share is the deadweight the business
case subtracts, measured instead of assumed, for the contract outcomes the indicator
names (`IndicatorSet.outcomes_by_indicator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from shared.contracts.timeline import SubjectTimeline
from shared.indicators.compute import Measurement, measure
from shared.indicators.experiment import Deadweight, Estimate, Experiment
from shared.indicators.model import IndicatorSet
from shared.reporting.business_case import Assumptions

YEARS_BEFORE_BASELINE = 5  # the trend starts this many years before the earliest baseline
MAX_TREND_YEARS = 30
DEADWEIGHT_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class ExperimentResult:
    experiment: Experiment
    estimates: tuple[Estimate, ...]
    left_out: tuple[str, ...]
    # Where the subjects came from, as the report says it: "the live event store", "a
    # synthetic trial with +10 points injected in the treated schools", ...
    source: str


@dataclass(frozen=True)
class MeasuredDeadweight:
    outcome_id: str
    indicator_id: str
    experiment_id: str
    deadweight: Deadweight


@dataclass(frozen=True)
class Evidence:
    definitions: IndicatorSet
    # Every indicator for every scope and year, small cells already suppressed.
    measurements: tuple[Measurement, ...]
    experiments: tuple[ExperimentResult, ...] = ()

    def measured_deadweights(self) -> list[MeasuredDeadweight]:
        """One per contract outcome an experiment's indicator names; the first
        experiment that measures an outcome wins (experiments are listed in order)."""
        found: dict[str, MeasuredDeadweight] = {}
        for result in self.experiments:
            for estimate in result.estimates:
                indicator = self.definitions.by_id(estimate.indicator_id)
                deadweight = estimate.deadweight()
                if indicator is None or deadweight is None:
                    continue
                for outcome in self.definitions.outcomes_by_indicator.get(indicator.id, ()):
                    found.setdefault(outcome, MeasuredDeadweight(outcome, indicator.id, result.experiment.id,
                                                                 deadweight))
        return list(found.values())


def trend_years(definitions: IndicatorSet, timelines: Sequence[SubjectTimeline]) -> list[int]:
    """From a few years before the earliest baseline to the latest fact's year (at most
    MAX_TREND_YEARS): the years the trend can show."""
    latest = max((f.occurred_on.year for t in timelines for f in t.facts), default=None)
    baselines = [b.year for i in definitions.indicators for b in i.baselines]
    if latest is None:
        return []
    first = (min(baselines) if baselines else latest) - YEARS_BEFORE_BASELINE
    return list(range(max(first, latest - MAX_TREND_YEARS + 1), latest + 1))


def trends(definitions: IndicatorSet, timelines: Sequence[SubjectTimeline], years: Sequence[int],
           minimum_cell: int) -> tuple[Measurement, ...]:
    """Every indicator, scope and year, small cells suppressed; a year in which no scope
    has anyone in the population is left out of that indicator's trend."""
    rows: list[Measurement] = []
    for indicator in definitions.indicators:
        for year in years:
            per_scope = [measure(indicator, timelines, year, scope=s.name, institutions=s.institutions,
                                 minimum_cell=minimum_cell) for s in definitions.scopes]
            if any(m.suppressed is not None or m.denominator for m in per_scope):
                rows.extend(per_scope)
    return tuple(rows)


def with_measured_deadweight(assumptions: Assumptions, measured: Sequence[MeasuredDeadweight],
                             end: str = "share") -> Assumptions:
    """The business-case assumptions with each measured outcome's deadweight in place of
    the assumed constant: the point estimate (`end="share"`) or an interval's end
    (`"low"`, `"high"`)."""
    outcomes = dict(assumptions.outcomes)
    for m in measured:
        if m.outcome_id in outcomes:
            value = Decimal(str(getattr(m.deadweight, end))).quantize(DEADWEIGHT_PLACES)
            outcomes[m.outcome_id] = outcomes[m.outcome_id].model_copy(update={"deadweight": value})
    return assumptions.model_copy(update={"outcomes": outcomes})
