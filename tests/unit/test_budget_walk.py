"""The verifier re-grants a budget from the first changed claim on (services/verifier/
budgets.py) and must get exactly what `grant_budget` over every claim gets: the same
grants for the changed subjects' claims, and exactly the other claims whose grant moved,
with their new grants. Random budgets (total and yearly caps, versions with different
caps, claims crowded on few days as the synthetic population's are) and random changes."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left

from hypothesis import given, settings
from hypothesis import strategies as st

from services.verifier.budgets import BudgetWalk, Days, StoredClaim, cap_bounds, changes, first_changed
from shared.domain.contracts.payments import BudgetRequest, grant_budget

DAYS = [dt.date(2021, 6, 23), dt.date(2021, 6, 24), dt.date(2022, 1, 1), dt.date(2022, 3, 1), dt.date(2022, 6, 23),
        dt.date(2022, 6, 24), dt.date(2023, 6, 23)]
VERSIONS = st.lists(st.tuples(st.sampled_from([None, 150, 400, 1000]), st.sampled_from([None, 120, 300])),
                    min_size=1, max_size=2).filter(lambda vs: all(t is not None or p is not None for t, p in vs))


def claims_of(draw: st.DrawFn, subject: str, versions: list[tuple[int | None, int | None]]) -> list[BudgetRequest]:
    made = []
    for n in range(draw(st.integers(0, 2))):
        total, period = draw(st.sampled_from(versions))
        made.append(BudgetRequest("b", f"b|o{n}|{subject}|t", subject, draw(st.sampled_from(DAYS)),
                                  draw(st.integers(1, 90)), total, period))
    return made


@st.composite
def budgets(draw: st.DrawFn) -> tuple[list[tuple[int | None, int | None]], list[BudgetRequest], list[BudgetRequest], set[str]]:
    versions = draw(VERSIONS)
    subjects = [f"s{n:02d}" for n in range(draw(st.integers(1, 25)))]
    before = [c for s in subjects for c in claims_of(draw, s, versions)]
    evaluated = set(draw(st.lists(st.sampled_from([*subjects, "new1", "new2"]), max_size=5)))
    after = [c for c in before if c.subject not in evaluated]
    for subject in sorted(evaluated):
        if draw(st.booleans()):  # unchanged: a re-evaluation that changed nothing
            after.extend(c for c in before if c.subject == subject)
        else:
            after.extend(claims_of(draw, subject, versions))
    return versions, before, after, evaluated


def regrant(versions: list[tuple[int | None, int | None]], before: list[BudgetRequest],
            after: list[BudgetRequest], evaluated: set[str], chunk: int,
            read: list[StoredClaim] | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """What services/verifier/batch.py's `regrant` does, over lists instead of tables:
    the evaluated subjects' grants, and the other claims whose grant moved (`read`
    collects the stored claims the walk was fed)."""
    read = [] if read is None else read
    granted = grant_budget(before)
    stored = sorted((StoredClaim(c, granted[c.outcome_key]) for c in before), key=lambda c: c.request.rank)
    removed, added, kept = changes([c for c in stored if c.request.subject in evaluated],
                                   [c for c in after if c.subject in evaluated])
    start = first_changed(removed, added)
    if start is None:
        return kept, {}
    sums: dict[dt.date, tuple[int, int]] = {}
    for c in stored:
        r, g = sums.get(c.request.occurred_on, (0, 0))
        sums[c.request.occurred_on] = (r + c.request.requested_minor, g + c.granted_minor)
    days = Days.of((d, r, g) for d, (r, g) in sums.items())
    walk = BudgetWalk(removed, added, start, days, cap_bounds(versions))
    ranks = [c.request.rank for c in stored]
    at = 0
    while not walk.done:
        if walk.resume_at is not None:
            resume_at = walk.resume_at
            on_day = [c for c in stored if c.request.occurred_on == resume_at[0] and c.request.rank < resume_at]
            walk.resume(sum(c.granted_minor for c in on_day), sum(c.request.requested_minor for c in on_day))
            at = bisect_left(ranks, resume_at)
        piece = stored[at:at + chunk]
        walk.feed(piece, more=at + chunk < len(stored))
        read.extend(piece)
        at += chunk
    grants = dict(kept)
    grants.update({r.outcome_key: walk.grants[r.outcome_key] for r in added})
    moved = {}
    for key, (_, new) in walk.moved.items():
        if key in kept:
            grants[key] = new
        else:
            moved[key] = new
    return grants, moved


@settings(max_examples=400, deadline=None)
@given(budgets(), st.sampled_from([1, 3, 256]))
def test_regranting_from_the_first_changed_claim_equals_granting_over_every_claim(
        budget: tuple[list[tuple[int | None, int | None]], list[BudgetRequest], list[BudgetRequest], set[str]],
        chunk: int) -> None:
    versions, before, after, evaluated = budget
    grants, moved = regrant(versions, before, after, evaluated, chunk)
    old, new = grant_budget(before), grant_budget(after)
    assert grants == {c.outcome_key: new[c.outcome_key] for c in after if c.subject in evaluated}
    assert moved == {c.outcome_key: new[c.outcome_key] for c in after
                     if c.subject not in evaluated and old[c.outcome_key] != new[c.outcome_key]}


def test_a_claim_after_an_exhausted_cap_reads_no_further_claims() -> None:
    # 40 claims fill the cap on the first day; a new one ranked after them is granted
    # nothing and the walk stops at once, whatever the population behind it.
    day = DAYS[0]
    before = [BudgetRequest("b", f"b|o|s{n:05d}|t", f"s{n:05d}", day, 60, 2400, None) for n in range(2000)]
    late = BudgetRequest("b", "b|o|zzz|t", "zzz", DAYS[1], 60, 2400, None)
    grants, moved = regrant([(2400, None)], before, [*before, late], {"zzz"}, chunk=10_000)
    assert (grants, moved) == ({late.outcome_key: 0}, {})


def test_a_claim_ranked_inside_the_granted_ones_moves_only_the_claim_at_the_edge() -> None:
    day = DAYS[0]
    before = [BudgetRequest("b", f"b|o|s{n:05d}|t", f"s{n:05d}", day, 60, 2400, None) for n in range(2000)]
    early = BudgetRequest("b", "b|o|a|t", "a", day, 60, 2400, None)
    grants, moved = regrant([(2400, None)], before, [*before, early], {"a"}, chunk=256)
    assert grants == {early.outcome_key: 60}
    assert moved == {before[39].outcome_key: 0}


def test_changes_far_apart_under_a_cap_that_does_not_bind_read_only_the_claims_around_them() -> None:
    # Two claims of one batch, a year apart, with 2,000 unchanged claims between them
    # under a cap nothing reaches: the walk skips from the first day to the second
    # instead of reading the population in between.
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=n) for n in range(400)]
    before = [BudgetRequest("b", f"b|o|s{n:05d}|t", f"s{n:05d}", days[n % 400], 60, 10**9, None) for n in range(2000)]
    first = BudgetRequest("b", "b|o|a|t", "a", days[0], 60, 10**9, None)
    last = BudgetRequest("b", "b|o|a|u", "a", days[-1], 60, 10**9, None)
    read: list[StoredClaim] = []
    grants, moved = regrant([(10**9, None)], before, [*before, first, last], {"a"}, chunk=8, read=read)
    assert (grants, moved) == ({first.outcome_key: 60, last.outcome_key: 60}, {})
    assert len(read) <= 16


def test_a_cap_used_up_before_the_last_change_reads_no_further_claims() -> None:
    # The cap is used up on the first day; a batch changes a claim on that day and one a
    # year later: past the edge every claim is granted 0 in both walks, so the walk stops.
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=n) for n in range(400)]
    before = [BudgetRequest("b", f"b|o|s{n:05d}|t", f"s{n:05d}", days[n % 400], 60, 2400, None) for n in range(2000)]
    early = BudgetRequest("b", "b|o|a|t", "a", days[0], 60, 2400, None)
    late = BudgetRequest("b", "b|o|a|u", "a", days[-1], 60, 2400, None)
    read: list[StoredClaim] = []
    grants, moved = regrant([(2400, None)], before, [*before, early, late], {"a"}, chunk=8, read=read)
    old, new = grant_budget(before), grant_budget([*before, early, late])
    assert grants == {early.outcome_key: new[early.outcome_key], late.outcome_key: 0}
    assert moved == {k: g for k, g in new.items() if k in old and old[k] != g}
    assert len(read) <= 64
