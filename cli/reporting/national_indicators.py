"""The indicators (docs/indicators.md) compared across tenants, computed inside the
clearing house and published only as suppressed aggregates (docs/tenancy.md, "National
figures").

Each tenant municipality's row counts the subjects who live in it on the period's
reference day (`shared.domain.homes.home_on`: the CPR register's residence, else the
municipality of the latest registration), measured with the same `counts` as every other
indicator. A row is small by the indicators' own rule (`suppression`: too few in the
population, in the numerator, or outside it). Every tenant reads the table knowing its
own exact row, so the rows are hidden as a group read by its members
(`hidden_for_members`): while any row is hidden, at least three are (both counts of each),
the smallest populations as complements, or the national total is withheld; and more
complements while a reader could pin a small row's numerator, population or outside
count from the marks and the totals (`pinned_row_counts`, each count on its own). The total is
"all tenants": the sum of the rows shown and hidden, nobody else's (a subject living in
no tenant's municipality is in no row and not in the total, which would otherwise give
the difference back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from cli.reporting.disclosure import Interval, hidden_for_members, mark, pinned_by_marks
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.indicators.compute import Measurement, Suppression, protect, suppression, tally_by
from shared.domain.indicators.model import Indicator

ALL_TENANTS = "all tenants"
WITHHELD = "withheld (would give back a suppressed cell)"
# A row withheld with the total, whatever its size: no reason, which would bound it.
WITHHELD_ROW = "suppressed (withheld with the total)"


@dataclass(frozen=True)
class TenantMeasurement:
    tenant: str
    counts: tuple[int, int]  # (numerator, denominator), exact: never published as such
    shown: str  # the published figure or its suppression mark


@dataclass(frozen=True)
class IndicatorComparison:
    indicator_id: str
    period: str
    rows: tuple[TenantMeasurement, ...]  # per tenant, then ALL_TENANTS


def publish_rows(indicator: Indicator, year: int, counts: dict[str, tuple[int, int]],
                 minimum_cell: int) -> IndicatorComparison:
    """The published comparison of exact `counts` per tenant (every tenant named, even
    with no one in its population).

    The same indicator over the whole store is published beside it (`stafet report
    --indicators`' evidence, `stafet indicators measure`), which is the tenants' total when
    every child lives in a tenant's municipality: a total withheld here is known there. So
    where the total must be withheld, every row is too, without a reason (a mark's reason
    bounds the row, and the known total would pin it)."""
    period = indicator.period.label(year)
    small = {t: reason for t, (num, den) in counts.items() if (reason := suppression(num, den, minimum_cell))}
    hidden, total_shown = hidden_for_members({t: den for t, (_, den) in counts.items()}, small, minimum_cell,
                                             lambda found: pinned_row_counts(counts, found, minimum_cell))

    def shown(tenant: str, num: int, den: int, reason: Suppression | None) -> str:
        if reason is not None:
            return mark(reason)
        return protect(indicator.id, tenant, year, period, num, den, minimum_cell).shown()

    rows = [TenantMeasurement(t, (num, den), shown(t, num, den, hidden.get(t)) if total_shown else WITHHELD_ROW)
            for t, (num, den) in sorted(counts.items())]
    total = (sum(n for n, _ in counts.values()), sum(d for _, d in counts.values()))
    measured: Measurement = protect(indicator.id, ALL_TENANTS, year, period, *total, minimum_cell)
    rows.append(TenantMeasurement(ALL_TENANTS, total, measured.shown() if total_shown else WITHHELD))
    return IndicatorComparison(indicator.id, period, tuple(rows))


def _allowed(reason: Suppression, minimum_cell: int) -> tuple[list[Interval], list[Interval], list[Interval]]:
    """What a hidden row's mark tells a reader of its (numerator, denominator, outside the
    numerator), by the order `suppression` tests them in."""
    few, some = (1, minimum_cell - 1), (minimum_cell, None)
    if reason == Suppression.TOO_FEW_SUBJECTS:
        return [(0, minimum_cell - 1)], [few], [(0, minimum_cell - 1)]
    if reason == Suppression.TOO_FEW_IN_NUMERATOR:
        return [few], [some], [(1, None)]
    if reason == Suppression.TOO_FEW_OUTSIDE_NUMERATOR:
        return [some], [(minimum_cell + 1, None)], [few]
    none_or_some: list[Interval] = [(0, 0), some]  # a row that could be shown: each count 0 or large enough
    return none_or_some, [some], none_or_some


def pinned_row_counts(counts: Mapping[str, tuple[int, int]], hidden: Mapping[str, Suppression],
                      minimum_cell: int) -> bool:
    """Whether a reader pins a small row's numerator, denominator or outside count from the
    marks and the totals (each count's column on its own: `pinned_by_marks`)."""
    marks = {t: _allowed(reason, minimum_cell) for t, reason in hidden.items()}
    small = [t for t, reason in hidden.items() if reason != Suppression.COMPLEMENTARY]
    columns = ({t: n for t, (n, _) in counts.items()}, {t: d for t, (_, d) in counts.items()},
               {t: d - n for t, (n, d) in counts.items()})
    return any(pinned_by_marks(values, {t: allowed[n] for t, allowed in marks.items()}, small)
               for n, values in enumerate(columns))


def compare(indicators: Iterable[Indicator], timelines: Sequence[SubjectTimeline], year: int,
            tenants: Sequence[str], place_of: Callable[[SubjectTimeline, dt.date], str | None],
            minimum_cell: int) -> list[IndicatorComparison]:
    """Each indicator for `year`, a row per tenant municipality (`tenants`) and the total."""
    result = []
    for indicator in indicators:
        found = tally_by(indicator, timelines, year, place_of)
        result.append(publish_rows(indicator, year, {t: found.get(t, (0, 0)) for t in tenants}, minimum_cell))
    return result


def compare_latest(indicators: Iterable[Indicator], timelines: Sequence[SubjectTimeline], years: Sequence[int],
                   tenants: Sequence[str], place_of: Callable[[SubjectTimeline, dt.date], str | None],
                   minimum_cell: int) -> list[IndicatorComparison]:
    """Each indicator for the latest of `years` in which the tenants' population is at
    least `minimum_cell` (the report's per-tenant table); an indicator with no such year
    is left out."""
    result = []
    for indicator in indicators:
        for year in sorted(years, reverse=True):
            found = tally_by(indicator, timelines, year, place_of)
            counts = {t: found.get(t, (0, 0)) for t in tenants}
            if sum(d for _, d in counts.values()) >= minimum_cell:
                result.append(publish_rows(indicator, year, counts, minimum_cell))
                break
    return result
