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
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from shared.contracts.model import SolidarityDistribution, YearBasis

ONE_DAY = dt.timedelta(days=1)
UNALLOCATED = "\uffff:unallocated"  # sorts after every institution id in tie-breaks
NOT_ACCRUED = "\uffff:not_accrued"


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


def _covering(intervals: dict[str, list[tuple[dt.date, dt.date]]], start: dt.date,
              end: dt.date) -> list[str]:
    return [inst for inst, spans in intervals.items()
            if any(s <= start and end <= e for s, e in spans)]


def exact_shares(rule: SolidarityDistribution, birth_date: dt.date,
                 registrations: Sequence[Registration], pot_minor: int,
                 trigger_date: dt.date) -> dict[str, Fraction]:
    """The exact share of the pot per institution, plus UNALLOCATED and NOT_ACCRUED."""
    excluded = set(rule.exclude_institutions)
    last_day_needed = max(year_span(rule.year_basis, birth_date, age)[1]
                          for age in rule.age_weights())
    intervals = {inst: spans for inst, spans in
                 merge_registrations(registrations, max(last_day_needed, trigger_date)).items()
                 if inst not in excluded}
    shares: dict[str, Fraction] = {UNALLOCATED: Fraction(0), NOT_ACCRUED: Fraction(0)}
    for age, weight in sorted(rule.age_weights().items()):
        first, last = year_span(rule.year_basis, birth_date, age)
        per_day = Fraction(pot_minor) * weight / ((last - first).days + 1)
        cuts = {first, last + ONE_DAY, trigger_date + ONE_DAY}
        for spans in intervals.values():
            for start, end in spans:
                cuts.update((start, end + ONE_DAY))
        points = sorted(c for c in cuts if first <= c <= last + ONE_DAY)
        for segment_start, next_start in itertools.pairwise(points):
            segment_end = next_start - ONE_DAY
            value = per_day * (next_start - segment_start).days
            if segment_start > trigger_date:
                shares[NOT_ACCRUED] += value
                continue
            holders = _covering(intervals, segment_start, segment_end)
            if not holders:
                shares[UNALLOCATED] += value
                continue
            for holder in holders:
                shares[holder] = shares.get(holder, Fraction(0)) + value / len(holders)
    return shares


def largest_remainder(total_minor: int, exact: dict[str, Fraction]) -> dict[str, int]:
    """Whole units adding up to `total_minor`; leftovers go to the largest fractions,
    ties broken by key (institution ids sort before UNALLOCATED, then NOT_ACCRUED)."""
    floors = {key: value.numerator // value.denominator for key, value in exact.items()}
    leftover = total_minor - sum(floors.values())
    if not 0 <= leftover <= len(exact):
        raise SolidarityError(f"shares do not add up to the total (leftover {leftover})")
    by_remainder = sorted(exact, key=lambda key: (-(exact[key] - floors[key]), key))
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
