"""Did it work: the indicators year by year against their baselines, and the
experiments' estimates (pure).

A contract pays for every outcome that happens; only part of them happened because of
what the institutions did. An experiment's estimate on an indicator (treated units'
change minus comparison units' change) is the part caused, so it measures the
deadweight of the contract outcomes measured by that indicator (an exclusion model's
`outcomes.<id>.indicator`): the business case (`cli/reporting/skandia.py:
measured_deadweights`) takes it instead of an assumed constant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cli.reporting.data import ReportData
from cli.reporting.skandia import Deadweight, measured_deadweight, outcome_rate
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.indicators.compute import Measurement, measure
from shared.domain.indicators.experiment import Estimate, Experiment
from shared.domain.indicators.model import IndicatorSet

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

    def estimates(self) -> list[Estimate]:
        """Every experiment's estimates, in order (the first per indicator counts)."""
        seen: dict[str, Estimate] = {}
        for result in self.experiments:
            for estimate in result.estimates:
                seen.setdefault(estimate.indicator_id, estimate)
        return list(seen.values())


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


def measured_by_outcome(data: ReportData, effects: Mapping[str, Estimate]) -> dict[str, Deadweight]:
    """Effects given per contract outcome (`stafet simulate --effect`) as measured
    deadweights against each outcome's own rate in `data`; an outcome the data never
    judged keeps its assumed deadweight. (Effects an experiment estimated per indicator:
    `skandia.measured_deadweights`.)"""
    rows = [(o.outcome_id, o.status, o.reason) for o in data.outcomes]
    measured = {}
    for outcome_id, estimate in effects.items():
        rate = outcome_rate(rows, outcome_id)
        if rate:
            measured[outcome_id] = measured_deadweight(estimate, rate)
    return measured
