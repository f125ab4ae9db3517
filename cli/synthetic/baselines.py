"""The synthetic municipality tuned to the Sønderborg baselines (`stafet indicators
baselines`): which population is generated, and how close each indicator comes.

The municipality's figures include the housing area's, so the rates of the children
outside the area are solved from the two published baselines and the area's share
(`outside`), and a few rates compensate for the generator's simplified life course
(completion happens at 19, so one of the twelve 18-29 cohorts has not completed yet).
Tolerance: a measured share matches its baseline when it lies within three standard
errors of a binomial proportion at the measured denominator (`TOLERANCE_STANDARD_ERRORS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal

from cli.synthetic.population import Area, Rates, generate
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.indicators.compute import Measurement, measure
from shared.domain.indicators.feed import timelines_from_transitions, transitions_from_generated
from shared.domain.indicators.model import Indicator, IndicatorSet, Scope
from shared.domain.institutions import InstitutionRegistry

TOLERANCE_STANDARD_ERRORS = 3
SUBJECTS = 30_000
SEED = 2019
BORN_FROM, BORN_TO = 1990, 2006
AREA_SHARE = 0.10


def outside(municipality: float, area: float, share: float = AREA_SHARE) -> float:
    """The rate outside the area that makes the whole municipality come out at `municipality`."""
    return (municipality - share * area) / (1 - share)


# Per-rate: (municipality, area) as the generator's parameters, before the mix.
_TUNED = {
    "exam_pass": (0.914, 0.825),
    "high_absence": (0.019, 0.046),
    "youth_education_completed": (0.672, 0.52),
    "onward_after_completion": (0.97, 0.96),
    "early_job": (0.7, 0.76),
}

AREA_RATES = Rates(**{name: area for name, (_, area) in _TUNED.items()})  # type: ignore[arg-type]
OUTSIDE_RATES = Rates(**{name: outside(m, a) for name, (m, a) in _TUNED.items()})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Comparison:
    indicator: Indicator
    scope: str
    measured: Measurement
    baseline: Decimal | None
    tolerance_points: Decimal | None

    @property
    def within(self) -> bool | None:
        if self.baseline is None or self.measured.percent is None or self.tolerance_points is None:
            return None
        return abs(self.measured.percent - self.baseline) <= self.tolerance_points


def synthetic_timelines(subjects: int = SUBJECTS, seed: int = SEED) -> list[SubjectTimeline]:
    registry, events = generate(subjects, seed=seed, born_from=BORN_FROM, born_to=BORN_TO,
                                rates=OUTSIDE_RATES, area=Area(AREA_SHARE, AREA_RATES))
    return timelines_from_transitions(transitions_from_generated(events, InstitutionRegistry(registry)))


def tolerance(percent: Decimal, denominator: int) -> Decimal:
    p = float(percent) / 100
    return Decimal(TOLERANCE_STANDARD_ERRORS * 100 * math.sqrt(p * (1 - p) / denominator)).quantize(Decimal("0.01"))


def compare(indicators: IndicatorSet, timelines: list[SubjectTimeline], minimum_cell: int) -> list[Comparison]:
    rows = []
    for indicator in indicators.indicators:
        for scope in indicators.scopes:
            rows.append(_compare_one(indicator, scope, timelines, minimum_cell))
    return rows


def _compare_one(indicator: Indicator, scope: Scope, timelines: list[SubjectTimeline],
                 minimum_cell: int) -> Comparison:
    baseline = next((b for b in indicator.baselines if b.scope == scope.name), None)
    year = baseline.year if baseline else max((b.year for b in indicator.baselines), default=2020)
    measured = measure(indicator, timelines, year, scope=scope.name, institutions=scope.institutions,
                       minimum_cell=minimum_cell)
    band = None
    if baseline is not None and measured.denominator:
        band = tolerance(baseline.percent, measured.denominator)
    return Comparison(indicator, scope.name, measured, baseline.percent if baseline else None, band)


__all__ = ["AREA_RATES", "OUTSIDE_RATES", "Comparison", "compare", "replace", "synthetic_timelines"]
