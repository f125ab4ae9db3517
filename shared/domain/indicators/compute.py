"""Measuring an indicator: a pure count over subjects' timelines.

The same function serves the live verifier's event store, a what-if over generated or
exported events, and the tests' hand-built populations: each is turned into
`SubjectTimeline`s first (`shared.domain.contracts.timeline.fold`), and nothing here reads a
clock, a file or a server.

Small cells are never shown: a measurement over fewer subjects than `minimum_cell`, or
whose numerator or complement is a positive count below it (either would single out a
handful of identifiable pupils), comes back suppressed, with a reason code and no
numbers at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from shared.domain.contracts.evaluation import predicate_holds
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.events import EventType
from shared.domain.indicators.model import (
    DEFAULT_MINIMUM_CELL,
    Count,
    Everyone,
    HasFact,
    Indicator,
    Population,
    StatusOnDay,
)

PERCENT_PLACES = Decimal("0.01")


class Suppression(StrEnum):
    TOO_FEW_SUBJECTS = "too_few_subjects"  # the denominator is below the minimum
    TOO_FEW_IN_NUMERATOR = "too_few_in_numerator"  # 0 < numerator < minimum
    TOO_FEW_OUTSIDE_NUMERATOR = "too_few_outside_numerator"  # 0 < denominator - numerator < minimum
    # A cell large enough on its own, hidden so that a suppressed one cannot be derived
    # from a shown total by subtraction (cli/reporting/disclosure.py).
    COMPLEMENTARY = "complementary"
    # A figure that is not about too few subjects itself, but from which a suppressed cell
    # could be computed: an indicator contract's payment, with its public price per point,
    # gives the measured value (cli/reporting/disclosure.py).
    REVEALS_SUPPRESSED_CELL = "reveals_suppressed_cell"


@dataclass(frozen=True)
class Measurement:
    """One indicator for one scope and one period. When `suppressed` is set, the counts
    and the percentage are None: a suppressed cell carries no number to leak."""

    indicator_id: str
    scope: str
    year: int
    period: str
    numerator: int | None
    denominator: int | None
    suppressed: Suppression | None

    @property
    def percent(self) -> Decimal | None:
        if self.numerator is None or not self.denominator:
            return None
        return (Decimal(100 * self.numerator) / Decimal(self.denominator)).quantize(
            PERCENT_PLACES, rounding=ROUND_HALF_EVEN)

    def shown(self) -> str:
        """How a report prints it: the percentage and counts, or the suppression mark."""
        if self.suppressed is not None:
            return f"suppressed ({self.suppressed.value})"
        if not self.denominator:
            return "no subjects"
        return f"{self.percent} % ({self.numerator}/{self.denominator})"


def suppression(numerator: int, denominator: int, minimum_cell: int) -> Suppression | None:
    if minimum_cell < 1:
        raise ValueError("minimum_cell must be at least 1")
    if denominator == 0:
        return None  # nothing to disclose; shown as "no subjects"
    if denominator < minimum_cell:
        return Suppression.TOO_FEW_SUBJECTS
    if 0 < numerator < minimum_cell:
        return Suppression.TOO_FEW_IN_NUMERATOR
    if 0 < denominator - numerator < minimum_cell:
        return Suppression.TOO_FEW_OUTSIDE_NUMERATOR
    return None


def protect(indicator_id: str, scope: str, year: int, period: str, numerator: int, denominator: int,
            minimum_cell: int = DEFAULT_MINIMUM_CELL) -> Measurement:
    reason = suppression(numerator, denominator, minimum_cell)
    if reason is not None:
        return Measurement(indicator_id, scope, year, period, None, None, reason)
    return Measurement(indicator_id, scope, year, period, numerator, denominator, None)


def in_population(population: Population, timeline: SubjectTimeline, reference_day: dt.date) -> bool:
    born = timeline.birth_date.year
    if population.born_from is not None and born < population.born_from:
        return False
    if population.born_to is not None and born > population.born_to:
        return False
    age = timeline.age_on(reference_day)
    if age < 0:
        return False
    if population.age_from is not None and age < population.age_from:
        return False
    if population.age_to is not None and age > population.age_to:
        return False
    if population.institutions:
        wanted = set(population.institutions)
        return any(r.institution in wanted and r.start <= reference_day for r in timeline.registrations)
    return True


def employed_on(timeline: SubjectTimeline, day: dt.date) -> bool:
    """A job started on or before `day` and not ended before it, per employer."""
    employed: dict[str, bool] = {}
    for fact in timeline.facts:  # in date order
        if fact.occurred_on > day:
            break
        if fact.type == EventType.EMPLOYMENT_STARTED:
            employed[str(fact.body.get("employer"))] = True
        elif fact.type == EventType.EMPLOYMENT_ENDED and fact.occurred_on < day:
            employed[str(fact.body.get("employer"))] = False
    return any(employed.values())


def in_education_on(timeline: SubjectTimeline, day: dt.date, kinds: Sequence[str]) -> bool:
    return any(timeline.kind_of(r.institution) in kinds for r in timeline.registered_on(day))


def counts(count: Count, timeline: SubjectTimeline, window: tuple[dt.date, dt.date]) -> bool:
    first, last = window
    if isinstance(count, Everyone):
        return True
    if isinstance(count, HasFact):
        earliest = dt.date.min if count.up_to_reference_day else first
        return any(f.type == count.event and earliest <= f.occurred_on <= last
                   and all(predicate_holds(p, f.body) for p in count.where)
                   for f in timeline.facts)
    assert isinstance(count, StatusOnDay)
    if count.in_education is not None and in_education_on(timeline, last, count.education_kinds) \
            != count.in_education:
        return False
    return count.in_job is None or employed_on(timeline, last) == count.in_job


def tally(indicator: Indicator, timelines: Iterable[SubjectTimeline], year: int,
          population: Population | None = None) -> tuple[int, int]:
    """(numerator, denominator) before any suppression: for the engine's own use
    (contracts, estimators), never for display."""
    window = indicator.period.window(year)
    who = population or indicator.population
    numerator = denominator = 0
    for timeline in timelines:
        if not in_population(who, timeline, window[1]) or not counts(indicator.denominator, timeline, window):
            continue
        denominator += 1
        if counts(indicator.numerator, timeline, window):
            numerator += 1
    return numerator, denominator


def scoped(indicator: Indicator, institutions: Sequence[str]) -> Population:
    """The indicator's population narrowed to an area's (or an institution's) catchment."""
    return indicator.population.model_copy(update={"institutions": tuple(institutions)})


def measure(indicator: Indicator, timelines: Iterable[SubjectTimeline], year: int, *, scope: str = "all",
            institutions: Sequence[str] = (), minimum_cell: int = DEFAULT_MINIMUM_CELL) -> Measurement:
    population = scoped(indicator, institutions) if institutions else indicator.population
    numerator, denominator = tally(indicator, timelines, year, population)
    return protect(indicator.id, scope, year, indicator.period.label(year), numerator, denominator, minimum_cell)


def tally_by(indicator: Indicator, timelines: Iterable[SubjectTimeline], year: int,
             place_of: Callable[[SubjectTimeline, dt.date], str | None]) -> dict[str, tuple[int, int]]:
    """(numerator, denominator) per place (e.g. the municipality a subject lives in on the
    period's reference day: `shared.domain.homes.home_on`), before any suppression: for
    the national comparison's own use (cli/reporting/national_indicators.py), never for
    display. A subject with no place is left out."""
    window = indicator.period.window(year)
    found: dict[str, tuple[int, int]] = {}
    for timeline in timelines:
        if not in_population(indicator.population, timeline, window[1]) or \
                not counts(indicator.denominator, timeline, window):
            continue
        place = place_of(timeline, window[1])
        if place is None:
            continue
        numerator, denominator = found.get(place, (0, 0))
        found[place] = (numerator + int(counts(indicator.numerator, timeline, window)), denominator + 1)
    return found
