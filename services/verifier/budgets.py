"""Budget grants kept up to date from the first changed claim on, not recomputed over
every claim (issue 16: the cost of a batch must not grow with the population).

Pure. `grant_budget` (shared/domain/contracts/payments.py) defines the grants: claims in rank
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
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from shared.domain.contracts.payments import BudgetRequest, grant_budget

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
        return self.requested_between(day, None)

    def requested_between(self, after: dt.date, before: dt.date | None) -> dict[int, int]:
        """Per year, what the days after `after` and before `before` (if any) request."""
        per_year: dict[int, int] = {}
        end = len(self.days) if before is None else bisect_left(self.days, before)
        for at in range(bisect_left(self.days, after + dt.timedelta(days=1)), end):
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
    """The two walks from `start` (the first changed rank) of one budget. The driver
    reads from the store what the walk asks for, until `done`:

    - while `resume_at` is set: the sums of the claims on its day ranked before it
      (`resume`), then the stored claims from it on;
    - then the stored claims in rank order, in chunks (`feed`).

    The walk starts by asking for `start`; it skips stored claims (asks for a later
    rank) where it can tell that each is granted what is stored, and asks for nothing
    when the day sums show the cap used up before it."""

    removed: Mapping[str, StoredClaim]
    added: Sequence[BudgetRequest]
    start: Rank
    days: Days
    bounds: CapBounds
    # Out: every claim walked, with its new grant; and the stored claims whose grant moved.
    grants: dict[str, int] = field(default_factory=dict)
    moved: dict[str, tuple[StoredClaim, int]] = field(default_factory=dict)  # as stored, new grant
    done: bool = False
    # Out: the rank the next stored claims are read from, once its day's sums before it
    # are given to `resume`; the unchanged claims before it are not read.
    resume_at: Rank | None = None
    _new: _State = field(init=False)
    _old: _State = field(init=False)
    _next_added: int = field(default=0, init=False)
    _last_changed: Rank = field(init=False)
    _consumed: dict[dt.date, int] = field(default_factory=dict, init=False)
    _checked_day: dt.date | None = field(default=None, init=False)
    _removed_ranks: list[Rank] = field(init=False)
    _total_delta: int = field(default=0, init=False)
    _year_delta: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._removed_ranks = sorted(c.request.rank for c in self.removed.values())
        self._last_changed = max(self._removed_ranks + [r.rank for r in self.added])
        self._new, self._old = _State(0, {}), _State(0, {})
        self._resume_at(self.start)

    def _resume_at(self, rank: Rank) -> None:
        """Both walks stand as the stored grants do up to `rank`, the new one off by
        `_total_delta` and `_year_delta` (in rank's year): ask for the sums of the claims
        on rank's day before it, unless the cap was used up before that day."""
        day = rank[0]
        total = self.days.granted_before(day, year_only=False)
        self._old = _State(total, {day.year: self.days.granted_before(day, year_only=True)})
        self._new = _State(total + self._total_delta, {day.year: self._old.year[day.year] + self._year_delta})
        self._consumed = {}
        self._checked_day = None
        if self._exhausted():
            self._add_until(None)  # granted 0 in both walks from here on, as stored
            self.done = True
        else:
            self.resume_at = rank

    def resume(self, granted_on_day: int, requested_on_day: int) -> None:
        """What the stored claims on `resume_at`'s day ranked before it granted and requested."""
        assert self.resume_at is not None
        day = self.resume_at[0]
        for state in (self._new, self._old):
            state.use(day, granted_on_day)
        self._consumed[day] = requested_on_day
        self.resume_at = None

    def feed(self, stored: Sequence[StoredClaim], more: bool) -> None:
        """The next stored claims in rank order; `more`: whether any follow these."""
        assert self.resume_at is None
        for claim in stored:
            if self._stop_before(claim.request.rank):
                return
            if self._exhausted():
                # Both walks used the largest total cap: every later claim, stored or
                # added, is granted 0 in both (as stored).
                self._add_until(None)
                self.done = True
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
        elif stored:
            self._skip_after(stored[-1].request.rank)

    def _add_until(self, rank: Rank | None) -> None:
        while self._next_added < len(self.added) and (rank is None or self.added[self._next_added].rank < rank):
            request = self.added[self._next_added]
            granted = self._new.room(request)
            self._new.use(request.occurred_on, granted)
            self.grants[request.outcome_key] = granted
            self._next_added += 1

    def _exhausted(self) -> bool:
        return self.bounds.total_max is not None and min(self._new.total, self._old.total) >= self.bounds.total_max

    def _skip_after(self, rank: Rank) -> None:
        """After the stored claim at `rank`: skip the unchanged claims up to the next
        changed one, on a later day, if each of them is granted what is stored (both
        walks stand alike, or neither can reach a cap before that day)."""
        pending = [r.rank for r in self.added[self._next_added:self._next_added + 1]]
        pending += self._removed_ranks[bisect_right(self._removed_ranks, rank):][:1]
        if not pending:
            return  # past the last change: `_stop_before` decides
        day, target = rank[0], min(pending)
        if target[0] <= day:
            return
        # What the skipped claims request: the rest of this day, the days in between,
        # and at most all of target's day (those ranked before target are skipped too).
        between = self.days.requested_between(day, target[0])
        between[day.year] = between.get(day.year, 0) + self.days.requested_on(day) - self._consumed.get(day, 0)
        between[target[0].year] = between.get(target[0].year, 0) + self.days.requested_on(target[0])
        if not (self._same_room(day.year) or all(self._fits(state, between) for state in (self._new, self._old))):
            return
        # The skipped claims add the same to both walks: the old one stands where the
        # stored sums say, the new one as far from it as now.
        self._total_delta = self._new.total - self._old.total
        self._year_delta = self._new.year.get(target[0].year, 0) - self._old.year.get(target[0].year, 0)
        self._resume_at(target)

    def _fits(self, state: _State, requested: Mapping[int, int]) -> bool:
        """Whether `state` can grant every claim of `requested` (per year) in full."""
        if self.bounds.total_min is not None and state.total + sum(requested.values()) > self.bounds.total_min:
            return False
        return self.bounds.period_min is None or all(
            state.year.get(year, 0) + amount <= self.bounds.period_min for year, amount in requested.items())

    def _same_room(self, year: int) -> bool:
        return self._new.year.get(year, 0) == self._old.year.get(year, 0) and (
            self.bounds.total_min is None or self._new.total == self._old.total)

    def _stop_before(self, rank: Rank) -> bool:
        if self.done:
            return True
        if rank <= self._last_changed:
            return False
        self._add_until(None)  # every added claim ranks before this one
        if self._same_room(rank[0].year) or self._exhausted() or self._cannot_bind(rank[0]):
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
        return all(self._fits(state, rest) for state in (self._new, self._old))


def full_grants(claims: Iterable[StoredClaim]) -> dict[str, int]:
    """`grant_budget` over every claim: for a budget whose claims have no stored grant yet
    (an installation upgraded from before grants were stored)."""
    return grant_budget(c.request for c in claims)


__all__ = ["BudgetWalk", "CapBounds", "Days", "StoredClaim", "cap_bounds", "changes", "first_changed", "full_grants"]
