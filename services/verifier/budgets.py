"""Budget grants kept up to date from the first changed claim on, not recomputed over
every claim (issue 16: the cost of a batch must not grow with the population).

Pure. `grant_budget` (shared/contracts/payments.py) defines the grants: claims in rank
order (day, then outcome key), each given what its total and calendar-year caps leave.
The store keeps every claim with the grant it was last given, and per budget and day the
sums of what was requested and granted. When a batch changes some claims, grants before
the first changed rank cannot move; from there `BudgetWalk` runs two walks side by side
over the stored claims in rank order: the old one (adding the stored grants, which is
what `grant_budget` gave before the change) and the new one (granting afresh, with the
changed claims in place). It stops as soon as nothing later can differ:

- past the last changed claim, both walks have used the same (total and this year's
  room: every later grant is computed from the same state), or
- neither walk can hit a cap any more: what is left to request fits under the smallest
  cap of the budget's versions (every later claim is granted in full, as stored), or
- both walks have used the largest total cap (every later claim gets 0, as stored).

So a batch reads the claims between its first changed rank and the point where the
walks agree, which is bounded by the budget's size in claims, not the population's.
`tests/unit/test_budget_walk.py` checks the result against `grant_budget` over every
claim, before and after, for random budgets and changes.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from shared.contracts.payments import BudgetRequest, grant_budget

Rank = tuple[dt.date, str]


@dataclass(frozen=True)
class CapBounds:
    """The caps of every version drawing on one budget (None: some version has none)."""

    total_min: int | None
    total_max: int | None  # None if any version has no total cap: never exhausted
    period_min: int | None


UNKNOWN = CapBounds(0, None, 0)  # caps not known: stop only where the walks agree


def cap_bounds(caps: Iterable[tuple[int | None, int | None]]) -> CapBounds:
    """From (total_cap_minor, period_cap_minor) of each version in the budget; UNKNOWN
    for none (a budget no version in force names: never assume it has no cap)."""
    caps = list(caps)
    if not caps:
        return UNKNOWN
    totals = [t for t, _ in caps if t is not None]
    periods = [p for _, p in caps if p is not None]
    return CapBounds(min(totals, default=None),
                     max(totals) if totals and len(totals) == len(caps) else None,
                     min(periods, default=None))


@dataclass(frozen=True)
class StoredClaim:
    request: BudgetRequest
    granted_minor: int


def changes(old: Iterable[StoredClaim], new: Iterable[BudgetRequest]
            ) -> tuple[dict[str, StoredClaim], list[BudgetRequest], dict[str, int]]:
    """The evaluated subjects' claims before and after: (removed, added, kept), where a
    changed claim is both removed (as stored) and added (as now), and `kept` gives the
    stored grant of each claim that is exactly as before."""
    before = {c.request.outcome_key: c for c in old}
    removed: dict[str, StoredClaim] = {}
    added: list[BudgetRequest] = []
    kept: dict[str, int] = {}
    now = {r.outcome_key: r for r in new}
    for key, claim in before.items():
        if now.get(key) == claim.request:
            kept[key] = claim.granted_minor
        else:
            removed[key] = claim
    added = sorted((r for k, r in now.items() if k not in kept), key=lambda r: r.rank)
    return removed, added, kept


def first_changed(removed: Mapping[str, StoredClaim], added: Sequence[BudgetRequest]) -> Rank | None:
    ranks = [c.request.rank for c in removed.values()] + [r.rank for r in added]
    return min(ranks, default=None)


@dataclass
class Days:
    """Per day of one budget: requested and granted sums (before this batch), in order."""

    days: list[dt.date]
    requested: list[int]
    granted: list[int]

    @classmethod
    def of(cls, rows: Iterable[tuple[dt.date, int, int]]) -> Days:
        ordered = sorted(rows)
        return cls([d for d, _, _ in ordered], [r for _, r, _ in ordered], [g for _, _, g in ordered])

    def granted_before(self, day: dt.date, year_only: bool) -> int:
        end = bisect_left(self.days, day)
        start = bisect_left(self.days, dt.date(day.year, 1, 1)) if year_only else 0
        return sum(self.granted[start:end])

    def requested_on(self, day: dt.date) -> int:
        at = bisect_left(self.days, day)
        return self.requested[at] if at < len(self.days) and self.days[at] == day else 0

    def requested_after(self, day: dt.date) -> dict[int, int]:
        """Per year, what days after `day` request."""
        per_year: dict[int, int] = {}
        for at in range(bisect_left(self.days, day + dt.timedelta(days=1)), len(self.days)):
            year = self.days[at].year
            per_year[year] = per_year.get(year, 0) + self.requested[at]
        return per_year


@dataclass
class _State:
    total: int
    year: dict[int, int]

    def room(self, request: BudgetRequest) -> int:
        room = request.requested_minor
        if request.total_cap_minor is not None:
            room = min(room, request.total_cap_minor - self.total)
        if request.period_cap_minor is not None:
            room = min(room, request.period_cap_minor - self.year.get(request.occurred_on.year, 0))
        return max(room, 0)

    def use(self, day: dt.date, amount: int) -> None:
        self.total += amount
        self.year[day.year] = self.year.get(day.year, 0) + amount


@dataclass
class BudgetWalk:
    """The two walks from `start` (the first changed rank) of one budget; feed it the
    stored claims from `start` on, in rank order, in chunks, until `done`."""

    removed: Mapping[str, StoredClaim]
    added: Sequence[BudgetRequest]
    start: Rank
    days: Days
    bounds: CapBounds
    # Granted before `start`: in total, in start's year, and on start's day (requested).
    granted_before: int
    granted_before_this_year: int
    requested_before_on_day: int
    # Out: every claim walked, with its new grant; and the stored claims whose grant moved.
    grants: dict[str, int] = field(default_factory=dict)
    moved: dict[str, tuple[StoredClaim, int]] = field(default_factory=dict)  # as stored, new grant
    done: bool = False
    _new: _State = field(init=False)
    _old: _State = field(init=False)
    _next_added: int = field(default=0, init=False)
    _last_changed: Rank = field(init=False)
    _consumed: dict[dt.date, int] = field(default_factory=dict, init=False)
    _checked_day: dt.date | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        year = {self.start[0].year: self.granted_before_this_year}
        self._new = _State(self.granted_before, dict(year))
        self._old = _State(self.granted_before, dict(year))
        self._last_changed = max([c.request.rank for c in self.removed.values()]
                                 + [r.rank for r in self.added])
        self._consumed[self.start[0]] = self.requested_before_on_day

    def feed(self, stored: Sequence[StoredClaim], more: bool) -> None:
        """The next stored claims in rank order; `more`: whether any follow these."""
        for claim in stored:
            if self._stop_before(claim.request.rank):
                return
            self._add_until(claim.request.rank)
            request = claim.request
            self._old.use(request.occurred_on, claim.granted_minor)
            self._consumed[request.occurred_on] = self._consumed.get(request.occurred_on, 0) + request.requested_minor
            if request.outcome_key in self.removed:
                continue  # the new walk has its replacement (if any) among `added`
            granted = self._new.room(request)
            self._new.use(request.occurred_on, granted)
            self.grants[request.outcome_key] = granted
            if granted != claim.granted_minor:
                self.moved[request.outcome_key] = (claim, granted)
        if not more:
            self._add_until(None)
            self.done = True

    def _add_until(self, rank: Rank | None) -> None:
        while self._next_added < len(self.added) and (rank is None or self.added[self._next_added].rank < rank):
            request = self.added[self._next_added]
            granted = self._new.room(request)
            self._new.use(request.occurred_on, granted)
            self.grants[request.outcome_key] = granted
            self._next_added += 1

    def _stop_before(self, rank: Rank) -> bool:
        if self.done:
            return True
        if rank <= self._last_changed:
            return False
        self._add_until(None)  # every added claim ranks before this one
        year = rank[0].year
        same_room = self._new.year.get(year, 0) == self._old.year.get(year, 0) and (
            self.bounds.total_min is None or self._new.total == self._old.total)
        exhausted = self.bounds.total_max is not None and min(self._new.total, self._old.total) >= self.bounds.total_max
        if same_room or exhausted or self._cannot_bind(rank[0]):
            self.done = True
        return self.done

    def _cannot_bind(self, day: dt.date) -> bool:
        """No cap can bind in either walk from `day` on: every later claim is granted
        in full, as stored. Checked once per day (it only gets truer within a day)."""
        if self._checked_day == day:
            return False
        self._checked_day = day
        rest = self.days.requested_after(day)
        rest[day.year] = rest.get(day.year, 0) + self.days.requested_on(day) - self._consumed.get(day, 0)
        left = sum(rest.values())
        for state in (self._new, self._old):
            if self.bounds.total_min is not None and state.total + left > self.bounds.total_min:
                return False
            if self.bounds.period_min is not None and any(
                    state.year.get(year, 0) + amount > self.bounds.period_min for year, amount in rest.items()):
                return False
        return True


def full_grants(claims: Iterable[StoredClaim]) -> dict[str, int]:
    """`grant_budget` over every claim: for a budget whose claims have no stored grant yet
    (an installation upgraded from before grants were stored)."""
    return grant_budget(c.request for c in claims)


__all__ = ["BudgetWalk", "CapBounds", "Days", "StoredClaim", "cap_bounds", "changes", "first_changed", "full_grants"]
