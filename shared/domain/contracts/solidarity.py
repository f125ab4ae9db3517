"""Solidarity distribution: a pot shared over the institutions of a subject's chain,
pro rata by days in each weighted year of age (DOMAIN.md, "Solidarity distribution").

Exact arithmetic with fractions, then whole minor units by the largest-remainder
method, so that allocations + unallocated + not accrued == pot to the øre, always.
The work is done per interval between "breakpoints" (registration starts and ends,
year boundaries, the trigger date), not per day, so a 25-year chain is a few dozen
steps.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from shared.domain.contracts.model import SolidarityDistribution, YearBasis

ONE_DAY = dt.timedelta(days=1)
UNALLOCATED = "\uffff:unallocated"
NOT_ACCRUED = "\uffff:not_accrued"


def tie_rank(key: str) -> tuple[int, str]:
    """Ties go by institution id, then unallocated, then not accrued (DOMAIN.md, step 5).
    Explicit, because the two sentinels' own spelling would put not accrued first."""
    return (1, "") if key == UNALLOCATED else (2, "") if key == NOT_ACCRUED else (0, key)


class SolidarityError(ValueError):
    """The inputs cannot be allocated (the message names the problem)."""


@dataclass(frozen=True)
class Registration:
    """A subject's stay at an institution; `end` is inclusive, None means still there."""

    institution: str
    start: dt.date
    end: dt.date | None = None


@dataclass(frozen=True)
class Allocation:
    pot_minor: int
    allocations: tuple[tuple[str, int], ...]  # (institution, amount), by institution id
    unallocated_minor: int
    not_accrued_minor: int

    def total_minor(self) -> int:
        return sum(a for _, a in self.allocations) + self.unallocated_minor + self.not_accrued_minor


def year_span(basis: YearBasis, birth_date: dt.date, age: int) -> tuple[dt.date, dt.date]:
    """First and last day of the year of `age` (calendar or school year)."""
    year = birth_date.year + age
    if basis.kind == "calendar":
        return dt.date(year, 1, 1), dt.date(year, 12, 31)
    month, day = (int(p) for p in basis.starts.split("-"))
    return dt.date(year, month, day), dt.date(year + 1, month, day) - ONE_DAY


def merge_registrations(registrations: Iterable[Registration], open_until: dt.date
                        ) -> dict[str, list[tuple[dt.date, dt.date]]]:
    """Per institution, its days as disjoint, sorted intervals (adjacent ones joined).

    Joining makes a registration split into two adjacent ones, or reported twice,
    count exactly once.
    """
    per_institution: dict[str, list[tuple[dt.date, dt.date]]] = {}
    ordered = sorted(registrations, key=lambda r: (r.institution, r.start, r.end or dt.date.max))
    for registration in ordered:
        # An open stay lasts at least until every day that can matter (open_until).
        end = registration.end if registration.end is not None else max(open_until, registration.start)
        if end < registration.start:
            raise SolidarityError(
                f"registration at {registration.institution} ends {end} before it starts "
                f"{registration.start}")
        intervals = per_institution.setdefault(registration.institution, [])
        if intervals and registration.start <= intervals[-1][1] + ONE_DAY:
            intervals[-1] = (intervals[-1][0], max(intervals[-1][1], end))
        else:
            intervals.append((registration.start, end))
    return per_institution


# Day-shares are counted in whole units of 1/SHARE_UNITS of a day, so that a day split
# between up to 12 registrations stays an integer (2520 = lcm(1..10); 27720 = lcm(1..12)).
SHARE_UNITS = 27720
SHARE_HOLDERS_MAX_EXACT = 12


def exact_shares(rule: SolidarityDistribution, birth_date: dt.date,
                 registrations: Sequence[Registration], pot_minor: int,
                 trigger_date: dt.date) -> dict[str, Fraction]:
    """The exact share of the pot per institution, plus UNALLOCATED and NOT_ACCRUED.

    Per weighted year, each part's days are counted as integers (in 1/SHARE_UNITS of a
    day, which splits a shared day exactly) and weighted over a common denominator
    (the lcm of weight denominator times days in year, over all years), so each part's
    share is one exact fraction: pot * numerator / (common * SHARE_UNITS). Same result as
    summing per-day fractions, with integer arithmetic instead of thousands of fraction
    operations.
    """
    excluded = set(rule.exclude_institutions)
    weights = rule.age_weights()
    if birth_date.year + max(weights) + 1 > dt.MAXYEAR:
        # A birth date in 9990 with years of age weighted into 10013: not a calendar day.
        raise SolidarityError(f"the weighted years of a subject born {birth_date} run past year {dt.MAXYEAR}")
    years = [(weight, *year_span(rule.year_basis, birth_date, age)) for age, weight in sorted(weights.items())]
    last_day_needed = max(last for _, _, last in years)
    intervals = {inst: spans for inst, spans in
                 merge_registrations(registrations, max(last_day_needed, trigger_date)).items()
                 if inst not in excluded}
    # Who holds a day changes only where a stay starts or ends: +1 on its first day, -1
    # on the day after its last (an institution's stays are disjoint and not adjacent).
    changes: dict[dt.date, list[tuple[str, int]]] = {}
    for inst, spans in intervals.items():
        for start, end in spans:
            changes.setdefault(start, []).append((inst, 1))
            changes.setdefault(end + ONE_DAY, []).append((inst, -1))
    change_days = sorted(changes)
    common = math.lcm(*(w.denominator * ((last - first).days + 1) for w, first, last in years))
    numerators: dict[str, int] = {UNALLOCATED: 0, NOT_ACCRUED: 0}
    after_trigger = trigger_date + ONE_DAY
    holding: set[str] = set()
    passed = 0  # change days applied to `holding`
    # One sweep through the weighted years (in order, never overlapping), segment by
    # segment: a segment ends where the year ends, a stay starts or ends, or accrual stops.
    for weight, first, last in years:
        units: dict[str, int] = {}
        cursor, year_end = first, last + ONE_DAY
        while cursor < year_end:
            while passed < len(change_days) and change_days[passed] <= cursor:
                for inst, step in changes[change_days[passed]]:
                    if step > 0:
                        holding.add(inst)
                    else:
                        holding.discard(inst)
                passed += 1
            stop = year_end
            if passed < len(change_days):
                stop = min(stop, change_days[passed])
            if cursor < after_trigger:
                stop = min(stop, after_trigger)
                holders = sorted(holding) or [UNALLOCATED]
            else:
                holders = [NOT_ACCRUED]
            if len(holders) > SHARE_HOLDERS_MAX_EXACT:
                raise SolidarityError(f"more than {SHARE_HOLDERS_MAX_EXACT} institutions share a day")
            days = (stop - cursor).days
            for holder in holders:
                units[holder] = units.get(holder, 0) + days * (SHARE_UNITS // len(holders))
            cursor = stop
        per_unit = weight.numerator * (common // (weight.denominator * ((last - first).days + 1)))
        for holder, count in units.items():
            numerators[holder] = numerators.get(holder, 0) + count * per_unit
    return {holder: Fraction(pot_minor * numerator, common * SHARE_UNITS)
            for holder, numerator in numerators.items()}


def largest_remainder(total_minor: int, exact: dict[str, Fraction]) -> dict[str, int]:
    """Whole units adding up to `total_minor`; leftovers go to the largest fractions,
    ties broken by `tie_rank` (institution ids, then UNALLOCATED, then NOT_ACCRUED)."""
    floors = {key: value.numerator // value.denominator for key, value in exact.items()}
    leftover = total_minor - sum(floors.values())
    if not 0 <= leftover <= len(exact):
        raise SolidarityError(f"shares do not add up to the total (leftover {leftover})")
    by_remainder = sorted(exact, key=lambda key: (-(exact[key] - floors[key]), tie_rank(key)))
    for key in by_remainder[:leftover]:
        floors[key] += 1
    return floors


def allocate(rule: SolidarityDistribution, birth_date: dt.date,
             registrations: Sequence[Registration], pot_minor: int,
             trigger_date: dt.date) -> Allocation:
    if pot_minor < 0:
        raise SolidarityError("the pot cannot be negative")
    shares = exact_shares(rule, birth_date, registrations, pot_minor, trigger_date)
    if sum(shares.values()) != pot_minor:
        raise SolidarityError("exact shares do not add up to the pot (weights must sum to 1)")
    whole = largest_remainder(pot_minor, shares)
    unallocated = whole.pop(UNALLOCATED)
    not_accrued = whole.pop(NOT_ACCRUED)
    allocation = Allocation(
        pot_minor=pot_minor,
        allocations=tuple(sorted((k, v) for k, v in whole.items() if v > 0)),
        unallocated_minor=unallocated,
        not_accrued_minor=not_accrued,
    )
    if allocation.total_minor() != pot_minor:
        raise SolidarityError("allocation does not conserve the pot")
    return allocation
