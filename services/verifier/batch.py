"""One consumed batch of transitions, processed in one database transaction.

Append new events to their subjects' streams (each with the watermark its partition had
when it arrived), move the partitions' watermarks, move the finality frontier towards
the global watermark, re-evaluate every subject that got a new event or whose timer
came due on the facts that are in at the frontier, and write the resulting payment
instructions and outcome records to the outbox, all in the same transaction.

Finality (docs/contracts.md, "Finality"): the facts "in" at frontier day F are those that
arrived before their partition's watermark reached F (`known_after < F`); outcomes whose
decision date is on or before F are final. The frontier never moves past the global
watermark (the least partition watermark), never past a day on which a partition's
facts became known (so each such day is decided as a view of its own, whatever the
batching), and never past a day whose timers it has not swept: so the instructions are
a function of the per-partition logs, not of how they were batched or interleaved. A crash
before the commit loses nothing (the batch is consumed again and the event ids make it
a no-op where it was already stored); a crash after it loses nothing (the outbox is
published by the relay on restart).

`plan_batch` is the pure core (no I/O): the subjects' decisions, their claims on the
contract budgets, the budgets' grants over every claim, and which other subjects' grants
moved (they are scheduled, so the store converges on the same state for any batching).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from services.verifier import store
from services.verifier.budgets import BudgetWalk, CapBounds, StoredClaim, cap_bounds, changes, first_changed
from services.verifier.indicators import settle_indicators
from services.verifier.streams import StreamCache, read_streams
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo, OutcomeDecision, budget_scope
from shared.domain.contracts.payments import BudgetRequest, grant_budget, outcome_key, place_budget
from shared.domain.decisions import InForce, Known, Stored, evaluate, outcome_record, settle
from shared.domain.events import ClockTick, PaymentInstruction, Transition
from shared.domain.signing import RecordSigner
from shared.platform.topics import OUTCOMES, PAYMENTS


@dataclass(frozen=True)
class BatchResult:
    new_events: int
    subjects_evaluated: int
    instructions: int
    outcomes_changed: int
    today: dt.date
    timers_still_due: int


@dataclass
class BatchPlan:
    instructions: list[PaymentInstruction] = field(default_factory=list)
    outbox: list[tuple[str, str, str]] = field(default_factory=list)
    decision_rows: list[tuple[str, str, str, str, str | None, int, str]] = field(default_factory=list)
    timers: list[tuple[str, dt.date]] = field(default_factory=list)
    # The evaluated subjects' claims on budgets (they replace the stored ones).
    requests: list[BudgetRequest] = field(default_factory=list)
    # Each instruction as JSON, once: the same text goes to the store and the outbox.
    instruction_payloads: list[str] = field(default_factory=list)
    # Per payment id: why it was issued (reason, correcting event).
    causes: dict[str, tuple[str, str | None]] = field(default_factory=dict)


SWEEP_SUBJECTS_MAX = 2000  # due timers re-evaluated per batch, to bound a batch's work


Evaluated = dict[str, tuple[OutcomeDecision, ...]]


def evaluate_subjects(in_force: Sequence[InForce], subjects: Sequence[str],
                      streams: Mapping[str, Sequence[Transition]], today: dt.date,
                      directory: Mapping[str, InstitutionInfo],
                      known: Mapping[str, Known] | None = None) -> tuple[Evaluated, list[BudgetRequest]]:
    """Every subject's decisions (before contract-wide caps) and its claims on budgets;
    `streams` are the facts that are in, `known` the same with their partitions'
    watermarks on arrival."""
    evaluated: Evaluated = {}
    claims: list[BudgetRequest] = []
    for subject in subjects:
        arrivals = dict(known[subject]) if known is not None else None
        evaluated[subject], requests = evaluate(in_force, subject, streams[subject], today, directory, arrivals)
        claims.extend(requests)
    return evaluated, claims


def settle_subjects(in_force: Sequence[InForce], evaluated: Evaluated, requests: list[BudgetRequest],
                    grants: Mapping[str, int], moved: Iterable[str], today: dt.date,
                    issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]], stored: Stored,
                    known: Mapping[str, Known] | None = None, since: dt.date | None = None) -> BatchPlan:
    """The plan, given what the budgets granted the evaluated subjects' claims and which
    other subjects' grants moved."""
    currency = {c.contract_id: c.currency for c, _ in in_force}
    plan = BatchPlan(requests=requests)
    # A claim that moved ranks others' grants: those subjects are re-settled now-ish
    # (a timer due today), so that their payments follow the budget's new decision.
    plan.timers.extend((subject, today) for subject in sorted(set(moved)))
    for subject, decisions in evaluated.items():
        effects = settle(in_force, subject, decisions, grants, today, issued, stored, (known or {}).get(subject, ()),
                         since)
        plan.instructions.extend(effects.instructions)
        plan.causes.update(effects.causes)
        plan.timers.extend((subject, due) for due in effects.timers)
        for decision in effects.changed:
            record = outcome_record(decision, currency[decision.contract_id])
            payload = record.model_dump_json()
            plan.outbox.append((OUTCOMES.name, subject, payload))
            plan.decision_rows.append((record.outcome_key, subject, decision.contract_id,
                                       decision.status.value, record.reason, decision.owed_minor, payload))
    for instruction in plan.instructions:
        payload = instruction.model_dump_json()
        plan.instruction_payloads.append(payload)
        plan.outbox.append((PAYMENTS.name, instruction.payee, payload))
    return plan


def plan_batch(in_force: Sequence[InForce], subjects: Sequence[str],
               streams: Mapping[str, Sequence[Transition]], today: dt.date,
               directory: Mapping[str, InstitutionInfo],
               issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]], stored: Stored,
               claims: Sequence[BudgetRequest], arrived: Mapping[EventKey, dt.date] | None = None,
               since: dt.date | None = None) -> BatchPlan:
    """What re-evaluating `subjects` at frontier `today` writes, given every stored claim
    on the budgets: the definition (`grant_budget` over every claim, before and after).
    `process_batch` gets the same grants from the first changed claim on
    (`services/verifier/budgets.py`). `streams`: the subjects' whole streams; `arrived`:
    per event id, its partition's watermark on arrival (none: every fact is in); `since`:
    the frontier before this step."""
    views, known = facts_in(subjects, streams, arrived or {}, today)
    evaluated, requests = evaluate_subjects(in_force, subjects, views, today, directory, known)
    evaluating = set(subjects)
    before = grant_budget(claims)
    after = grant_budget([c for c in claims if c.subject not in evaluating] + requests)
    moved = {c.subject for c in claims if c.subject not in evaluating
             and before.get(c.outcome_key) != after.get(c.outcome_key)}
    plan = settle_subjects(in_force, evaluated, requests, after, moved, today, issued, stored, known, since)
    plan.timers.extend(next_timers(subjects, streams, arrived or {}, today))
    return plan


ONE_DAY = dt.timedelta(days=1)
EventKey = tuple[str, str]  # (reported_by, event_id): an event id belongs to its reporter


def event_key(transition: Transition) -> EventKey:
    return transition.reported_by, transition.event_id


def facts_in(subjects: Sequence[str], streams: Mapping[str, Sequence[Transition]],
             arrived: Mapping[EventKey, dt.date], frontier: dt.date
             ) -> tuple[dict[str, list[Transition]], dict[str, Known]]:
    """Per subject, the facts that are in at `frontier` (arrived before their partition's
    watermark reached it), and the same as (event id, watermark on arrival)."""
    views: dict[str, list[Transition]] = {}
    known: dict[str, Known] = {}
    for subject in subjects:
        views[subject] = [t for t in streams.get(subject, ()) if arrived.get(event_key(t), store.EPOCH) < frontier]
        known[subject] = [(t.event_id, arrived.get(event_key(t), store.EPOCH)) for t in views[subject]]
    return views, known


def next_timers(subjects: Sequence[str], streams: Mapping[str, Sequence[Transition]],
                arrived: Mapping[EventKey, dt.date], frontier: dt.date) -> list[tuple[str, dt.date]]:
    """When each subject must be looked at again: the day after the watermark its facts
    not yet in arrived under (they come in then), and its first fact dated after the
    frontier (the frontier reaches it then)."""
    timers: set[tuple[str, dt.date]] = set()
    for subject in subjects:
        later = [t.occurred_on for t in streams.get(subject, ())
                 if arrived.get(event_key(t), store.EPOCH) < frontier and t.occurred_on > frontier]
        if later:
            timers.add((subject, min(later)))
        timers.update((subject, arrived.get(event_key(t), store.EPOCH) + ONE_DAY) for t in streams.get(subject, ())
                      if arrived.get(event_key(t), store.EPOCH) >= frontier)
    return sorted(timers)


Arrival = tuple[int, Transition | ClockTick]  # (partition, record), in each partition's order


def arrivals_of(transitions: Sequence[Transition], clock_ticks: Sequence[dt.date]) -> list[Arrival]:
    """An in-process replay's batch: its facts, then its watermarks, on no partition."""
    return [(store.UNPARTITIONED, t) for t in transitions] + \
        [(store.UNPARTITIONED, ClockTick(today=d)) for d in clock_ticks]


def watermarks_on_arrival(arrivals: Sequence[Arrival], stored: Mapping[int, dt.date]
                          ) -> tuple[dict[EventKey, dt.date], dict[int, dt.date]]:
    """Per fact (reporter, event id), the watermark its partition had when it arrived (stored, or
    moved by a watermark earlier in the batch); and each partition's latest watermark."""
    running = dict(stored)
    known: dict[EventKey, dt.date] = {}
    marks: dict[int, dt.date] = {}
    for partition, record in arrivals:
        if isinstance(record, ClockTick):
            running[partition] = max(running.get(partition, store.EPOCH), record.today)
            marks[partition] = running[partition]
        else:
            known.setdefault(event_key(record), running.get(partition, store.EPOCH))
    return known, marks


@dataclass
class Regranted:
    """One budget after a batch: the grants of the evaluated subjects' (new) claims, the
    grants to store for other subjects' claims, whose subjects moved, and how the
    budget's day sums change."""

    grants: dict[str, int] = field(default_factory=dict)
    others: dict[str, int] = field(default_factory=dict)
    moved: set[str] = field(default_factory=set)
    days: dict[dt.date, tuple[int, int, int]] = field(default_factory=dict)
    recount: bool = False

    def add_day(self, day: dt.date, requested: int, granted: int, claims: int) -> None:
        r, g, c = self.days.get(day, (0, 0, 0))
        self.days[day] = (r + requested, g + granted, c + claims)


# Stored claims read per round trip while the walks disagree: a few first (the walks
# usually agree right after the last changed claim), then more each round.
WALK_CHUNK_FIRST, WALK_CHUNK_MAX = 8, 1024


async def regrant(connection: asyncpg.Connection, budget: str, bounds: CapBounds,
                  old: Sequence[StoredClaim], new: Sequence[BudgetRequest]) -> Regranted:
    """The budget's grants after the evaluated subjects' claims went from `old` to `new`
    (the budget is locked)."""
    evaluating = {c.request.subject for c in old} | {r.subject for r in new}
    result = Regranted()
    if await store.ungranted(connection, budget):
        # Claims stored before grants were (sql/009): grant over every claim once.
        claims = [c.request for c in await store.budget_claims(connection, [budget])]
        before = grant_budget(claims)
        others = [c for c in claims if c.subject not in evaluating]
        after = grant_budget(others + list(new))
        result.grants = {r.outcome_key: after[r.outcome_key] for r in new}
        result.others = {c.outcome_key: after[c.outcome_key] for c in others}
        result.moved = {c.subject for c in others if before.get(c.outcome_key) != after[c.outcome_key]}
        result.recount = True
        return result
    removed, added, kept = changes(old, new)
    start = first_changed(removed, added)
    result.grants = dict(kept)
    if start is None:
        return result  # the same claims as stored: the same grants, nobody moved
    days = await store.budget_days(connection, budget)
    walk = BudgetWalk(removed, added, start, days, bounds)
    rank, inclusive, size = start, True, WALK_CHUNK_FIRST
    while not walk.done:
        if walk.resume_at is not None:  # from the first changed claim, or past unchanged ones
            rank, inclusive, size = walk.resume_at, True, WALK_CHUNK_FIRST
            walk.resume(*await store.before_on_day(connection, budget, rank))
        chunk = await store.claims_from(connection, budget, rank, inclusive, size)
        walk.feed(chunk, more=len(chunk) == size)
        if chunk:
            rank, inclusive = chunk[-1].request.rank, False
        size = min(size * 4, WALK_CHUNK_MAX)
    for request in added:
        result.grants[request.outcome_key] = walk.grants[request.outcome_key]
    for claim in removed.values():
        result.add_day(claim.request.occurred_on, -claim.request.requested_minor, -claim.granted_minor, -1)
    for request in added:
        result.add_day(request.occurred_on, request.requested_minor, result.grants[request.outcome_key], 1)
    for key, (claim, granted) in walk.moved.items():
        result.add_day(claim.request.occurred_on, 0, granted - claim.granted_minor, 0)
        if key in kept:
            result.grants[key] = granted  # an evaluated subject's claim, stored anew below
        else:
            result.others[key] = granted
            result.moved.add(claim.request.subject)
    return result


async def regrant_all(connection: asyncpg.Connection, in_force: Sequence[InForce], subjects: Sequence[str],
                      requests: Sequence[BudgetRequest]) -> list[tuple[str, Regranted]]:
    """Every budget the evaluated subjects' claims touch (before or after), locked and
    re-granted; budgets they do not touch are neither locked nor read."""
    touched = {c.request.budget for c in await store.claims_of_subjects(connection, subjects)}
    touched |= {r.budget for r in requests}
    if not touched:
        return []
    await store.lock_budgets(connection, touched)
    # Read again under the locks: another replica may have moved these claims' grants.
    old: dict[str, list[StoredClaim]] = {}
    for claim in await store.claims_of_subjects(connection, subjects):
        old.setdefault(claim.request.budget, []).append(claim)
    caps = budget_caps(in_force)
    return [(budget, await regrant(connection, budget, cap_bounds(caps.get(budget, [])), old.get(budget, []),
                                   [r for r in requests if r.budget == budget]))
            for budget in sorted(touched)]


def budget_caps(in_force: Sequence[InForce]) -> dict[str, list[tuple[int | None, int | None]]]:
    """Per budget, the (total, yearly) caps its claims can carry: each version's caps for
    a contract budget, each cluster's places for a place budget."""
    caps: dict[str, list[tuple[int | None, int | None]]] = {}
    for contract, _ in in_force:
        if contract.caps.contract_wide:
            caps.setdefault(budget_scope(contract), []).append(
                (contract.caps.total_minor, contract.caps.per_period.amount_minor if contract.caps.per_period else None))
        rule = contract.eligibility.referral
        for places in rule.places if rule is not None else ():
            caps.setdefault(place_budget(contract.contract_id, places.municipality, places.cluster), []).append(
                (places.places, None))
    return caps


DEADLOCK_RETRIES_MAX = 5


async def process_batch(pool: asyncpg.Pool, book: ContractBook,
                        transitions: Sequence[Transition],
                        directory: Mapping[str, InstitutionInfo],
                        clock_ticks: Sequence[dt.date] = (),
                        *, streams: StreamCache | None = None,
                        arrivals: Sequence[Arrival] | None = None,
                        partition_ids: Sequence[int] = (store.UNPARTITIONED,),
                        signer: RecordSigner | None = None) -> BatchResult:
    """`arrivals`: the batch's records per transitions partition, in each partition's
    order (facts and `stafet clock` watermarks); without them (an in-process replay),
    `transitions` then `clock_ticks` on no partition. `partition_ids`: every partition of
    the transitions topic (the global watermark is the least of theirs). `streams`: the
    process's cache of subjects' streams for this store (none: each batch reads them).
    `signer`: the verifier's key, which signs what the batch puts in the outbox, in the
    batch's transaction (none: a rebuild, whose outbox is never published)."""
    arrivals = arrivals_of(transitions, clock_ticks) if arrivals is None else arrivals
    facts = [record for _, record in arrivals if isinstance(record, Transition)]
    for attempt in range(DEADLOCK_RETRIES_MAX + 1):
        try:
            return await _process(pool, book.in_force(), facts, arrivals, directory, partition_ids, streams, signer)
        except asyncpg.DeadlockDetectedError:
            # Two replicas locked the same subjects in two steps (one for new events,
            # one for due timers): PostgreSQL rolled this one back, nothing was written.
            if attempt == DEADLOCK_RETRIES_MAX:
                raise
    raise AssertionError("unreachable")


def frontier_step(final_through: dt.date, target: dt.date, due: Sequence[tuple[dt.date, int]],
                  limit: int) -> dt.date:
    """How far the frontier moves towards `target` (the global watermark, or the first
    day after the frontier on which some partition's facts became known, whichever is
    earlier) in one batch, given the timers due per day by `target`: all the way if they
    number at most `limit`, else to the day before the first day that would not fit. A
    day's timers are never split between batches (a first day that alone exceeds
    `limit` is taken whole), so every claim on a day is decided with all the others."""
    taken = 0
    for day, count in due:
        if day > final_through and taken > 0 and taken + count > limit:
            return max(final_through, day - ONE_DAY)
        taken += count
    return target


@dataclass(frozen=True)
class Frontier:
    before: dt.date
    now: dt.date
    watermark: dt.date
    due: set[str]


async def move_frontier(connection: asyncpg.Connection, arrivals: Sequence[Arrival], facts: Sequence[Transition],
                        partition_ids: Sequence[int]) -> tuple[Frontier, store.Appended]:
    """Lock the frontier (alone if this batch moves it), append the facts with their
    partitions' watermarks on arrival, move the watermarks, move the frontier as far as
    it may go, and take the timers due by then."""
    stored = await store.watermarks(connection)
    arrived, marks = watermarks_on_arrival(arrivals, stored)
    watermark = store.global_watermark({**stored, **marks}, partition_ids)
    final_through, _ = await store.frontier(connection)
    # A batch that moves a partition's watermark holds the frontier alone too, even when the
    # global watermark does not seem to move: two replicas that each move their own partitions'
    # last watermark at once each saw the other's as it was, so neither saw the global
    # watermark move, and the frontier stayed behind with nothing left to move it (write skew,
    # found by `make chaos SEED=2`: outcomes stayed provisional after the last watermark).
    exclusive = watermark > final_through or any(day > stored.get(p, store.EPOCH) for p, day in marks.items())
    await store.lock_frontier(connection, exclusive=exclusive)
    # As the last holder left them: the frontier, and every partition's watermark that a batch
    # holding the frontier alone committed while this one waited.
    final_through, _ = await store.frontier(connection)
    latest = await store.watermarks(connection)
    watermark = store.global_watermark(
        {p: max(latest.get(p, store.EPOCH), marks.get(p, store.EPOCH)) for p in {*latest, *marks}}, partition_ids)
    appended = await store.append(connection, facts, arrived)
    await store.advance_watermarks(connection, marks)
    if not exclusive or watermark <= final_through or await store.due_counts(connection, final_through):
        # Held shared (or moved already by another replica), or subjects still due at the
        # frontier as it stands (a budget's grant moved, a new version's sweep): decide at
        # it first; the next batch that finds the watermark ahead and nothing due moves it.
        await store.note_watermark(connection, watermark)
        due = await store.take_due_timers(connection, final_through, SWEEP_SUBJECTS_MAX)
        return Frontier(final_through, final_through, watermark, due), appended
    next_known = await store.next_known_after(connection, final_through)
    target = watermark if next_known is None else min(watermark, next_known)
    now = frontier_step(final_through, target, await store.due_counts(connection, target), SWEEP_SUBJECTS_MAX)
    due = await store.take_due_timers(connection, now, None if now > final_through else SWEEP_SUBJECTS_MAX)
    await store.set_frontier(connection, now, watermark)
    return Frontier(final_through, now, watermark, due), appended


async def _process(pool: asyncpg.Pool, in_force: Sequence[InForce], facts: Sequence[Transition],
                   arrivals: Sequence[Arrival], directory: Mapping[str, InstitutionInfo],
                   partition_ids: Sequence[int], cache: StreamCache | None,
                   signer: RecordSigner | None) -> BatchResult:
    async with pool.acquire() as connection, connection.transaction():
        frontier, appended = await move_frontier(connection, arrivals, facts, partition_ids)
        today = frontier.now
        # The subjects with new events are locked already (append).
        versions = {**await store.lock_subjects(connection, frontier.due - set(appended.after)), **appended.after}
        subjects = sorted(versions)
        streams = await read_streams(connection, {s: versions[s] for s in subjects}, appended, cache)
        arrived = await store.known_after_of(connection, subjects)
        views, known = facts_in(subjects, streams, arrived, today)
        issued = await store.issued_payments(connection, subjects)
        stored = await store.stored_decisions(connection, subjects)
        # Evaluate first, then lock only the budgets these subjects claim on, for as
        # short a time as the re-granting and the writes take.
        evaluated, requests = evaluate_subjects(in_force, subjects, views, today, directory, known)
        budgets = await regrant_all(connection, in_force, subjects, requests)
        grants = {k: g for _, b in budgets for k, g in b.grants.items()}
        moved = {s for _, b in budgets for s in b.moved}
        plan = settle_subjects(in_force, evaluated, requests, grants, moved, today, issued, stored, known,
                               frontier.before)
        plan.timers.extend(next_timers(subjects, streams, arrived, today))
        await store.record_payments(connection, plan.instructions, plan.instruction_payloads, plan.causes)
        await store.save_decisions(connection, plan.decision_rows)
        await store.replace_budget_requests(connection, subjects, plan.requests, grants)
        for budget, regranted in budgets:
            await store.set_grants(connection, budget, regranted.others)
            if regranted.recount:
                await store.recount_days(connection, budget)
            else:
                await store.add_to_days(connection, budget, regranted.days)
        await store.set_timers(connection, plan.timers)
        await store.enqueue(connection, plan.outbox)
        measured = await settle_indicators(connection, in_force, subjects, streams, today, arrived)
        if signer is not None:
            # Signed where it is decided: the relay only forwards (services/verifier/relay.py).
            await store.sign_outbox(connection, signer)
        still_due = await store.timers_due(connection, frontier.watermark) + int(today < frontier.watermark)
    if cache is not None:  # committed: these are the subjects' streams at these versions
        cache.remember(versions, streams)
    return BatchResult(appended.count, len(subjects), len(plan.instructions) + measured.instructions,
                       len(plan.decision_rows) + measured.outcomes_changed, today, still_due)


__all__ = ["Arrival", "BatchPlan", "BatchResult", "outcome_key", "plan_batch", "process_batch"]
