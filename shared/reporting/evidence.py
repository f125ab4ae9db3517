"""Did it work: the indicators year by year against their baselines, and the
experiments' estimates (pure).

A contract pays for every outcome that happens; only part of them happened because of
what the institutions did. An experiment's estimate on an indicator (treated units'
change minus comparison units' change) is the part caused, so it measures the
deadweight of the contract outcomes that count the same success
(`IndicatorSet.outcomes_by_indicator`): the business case (`shared/reporting/skandia.py:
measured_deadweight`) takes it instead of an assumed constant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.contracts.timeline import SubjectTimeline
from shared.indicators.compute import Measurement, measure
from shared.indicators.experiment import Estimate, Experiment
from shared.indicators.model import IndicatorSet
from shared.reporting.data import ReportData
from shared.reporting.skandia import Deadweight, measured_deadweight, outcome_rate

YEARS_BEFORE_BASELINE = 5  # the trend starts this many years before the earliest baseline
MAX_TREND_YEARS = 30


@dataclass(frozen=True)
class ExperimentResult:
    experiment: Experiment
    estimates: tuple[Estimate, ...]
    left_out: tuple[str, ...]
    # Where the subjects came from, as the report says it: "the live event store", "a
    # synthetic trial with +10 points injected in the treated schools", ...
    source: str


@dataclass(frozen=True)
class Evidence:
    definitions: IndicatorSet
    # Every indicator for every scope and year, small cells already suppressed.
    measurements: tuple[Measurement, ...]
    experiments: tuple[ExperimentResult, ...] = ()

    def effects_by_outcome(self) -> dict[str, Estimate]:
        """The estimate that measures each contract outcome's effect: one per outcome its
        indicator names; the first experiment that measures an outcome wins."""
        found: dict[str, Estimate] = {}
        for result in self.experiments:
            for estimate in result.estimates:
                for outcome in self.definitions.outcomes_by_indicator.get(estimate.indicator_id, ()):
                    found.setdefault(outcome, estimate)
        return found


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


def measured_deadweights(data: ReportData, effects: Mapping[str, Estimate]) -> dict[str, Deadweight]:
    """Each measured effect as the deadweight of its outcome, against the outcome's own
    rate in `data` (verified among the triggers judged; `skandia.outcome_rate`); an
    outcome the data never judged keeps its assumed deadweight."""
    rows = [(o.outcome_id, o.status, o.reason) for o in data.outcomes]
    measured = {}
    for outcome_id, estimate in effects.items():
        rate = outcome_rate(rows, outcome_id)
        if rate:
            measured[outcome_id] = measured_deadweight(estimate, rate)
    return measured
