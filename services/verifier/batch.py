"""One consumed batch of transitions, processed in one database transaction.

Append new events to their subjects' streams, advance the clock, re-evaluate every
subject that got a new event or whose timer came due, and write the resulting payment
instructions and outcome records to the outbox, all in the same transaction. A crash
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
from shared.domain.decisions import InForce, Stored, evaluate, outcome_record, settle
from shared.domain.events import PaymentInstruction, Transition
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


SWEEP_SUBJECTS_MAX = 2000  # due timers re-evaluated per batch, to bound a batch's work


Evaluated = dict[str, tuple[OutcomeDecision, ...]]


def evaluate_subjects(in_force: Sequence[InForce], subjects: Sequence[str],
                      streams: Mapping[str, Sequence[Transition]], today: dt.date,
                      directory: Mapping[str, InstitutionInfo]) -> tuple[Evaluated, list[BudgetRequest]]:
    """Every subject's decisions (before contract-wide caps) and its claims on budgets."""
    evaluated: Evaluated = {}
    claims: list[BudgetRequest] = []
    for subject in subjects:
        evaluated[subject], requests = evaluate(in_force, subject, streams[subject], today, directory)
        claims.extend(requests)
    return evaluated, claims


def settle_subjects(in_force: Sequence[InForce], evaluated: Evaluated, requests: list[BudgetRequest],
                    grants: Mapping[str, int], moved: Iterable[str], today: dt.date,
                    issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]], stored: Stored) -> BatchPlan:
    """The plan, given what the budgets granted the evaluated subjects' claims and which
    other subjects' grants moved."""
    currency = {c.contract_id: c.currency for c, _ in in_force}
    plan = BatchPlan(requests=requests)
    # A claim that moved ranks others' grants: those subjects are re-settled now-ish
    # (a timer due today), so that their payments follow the budget's new decision.
    plan.timers.extend((subject, today) for subject in sorted(set(moved)))
    for subject, decisions in evaluated.items():
        effects = settle(in_force, subject, decisions, grants, today, issued, stored)
        plan.instructions.extend(effects.instructions)
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
               claims: Sequence[BudgetRequest]) -> BatchPlan:
    """What re-evaluating `subjects` writes, given every stored claim on the budgets: the
    definition (`grant_budget` over every claim, before and after). `process_batch` gets
    the same grants from the first changed claim on (`services/verifier/budgets.py`)."""
    evaluated, requests = evaluate_subjects(in_force, subjects, streams, today, directory)
    evaluating = set(subjects)
    before = grant_budget(claims)
    after = grant_budget([c for c in claims if c.subject not in evaluating] + requests)
    moved = {c.subject for c in claims if c.subject not in evaluating
             and before.get(c.outcome_key) != after.get(c.outcome_key)}
    return settle_subjects(in_force, evaluated, requests, after, moved, today, issued, stored)


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


def clock_marks(transitions: Sequence[Transition], clock_ticks: Sequence[dt.date],
                partitions: Mapping[int, dt.date] | None) -> dict[int, dt.date]:
    """The latest date seen per consumed partition; without partitions (an in-process
    replay), everything counts as the unpartitioned clock."""
    if partitions is not None:
        return dict(partitions)
    seen = max([t.occurred_on for t in transitions] + list(clock_ticks), default=None)
    return {} if seen is None else {store.UNPARTITIONED: seen}


async def process_batch(pool: asyncpg.Pool, book: ContractBook,
                        transitions: Sequence[Transition],
                        directory: Mapping[str, InstitutionInfo],
                        clock_ticks: Sequence[dt.date] = (),
                        partitions: Mapping[int, dt.date] | None = None,
                        streams: StreamCache | None = None) -> BatchResult:
    """`partitions`: the latest date (occurred_on or clock tick) seen per transitions
    partition in this batch, which moves those partitions' clocks. `streams`: the
    process's cache of subjects' streams for this store (none: each batch reads them)."""
    marks = clock_marks(transitions, clock_ticks, partitions)
    for attempt in range(DEADLOCK_RETRIES_MAX + 1):
        try:
            return await _process(pool, book.in_force(), transitions, directory, marks, streams)
        except asyncpg.DeadlockDetectedError:
            # Two replicas locked the same subjects in two steps (one for new events,
            # one for due timers): PostgreSQL rolled this one back, nothing was written.
            if attempt == DEADLOCK_RETRIES_MAX:
                raise
    raise AssertionError("unreachable")


async def _process(pool: asyncpg.Pool, in_force: Sequence[InForce], transitions: Sequence[Transition],
                   directory: Mapping[str, InstitutionInfo], marks: Mapping[int, dt.date],
                   cache: StreamCache | None) -> BatchResult:
    async with pool.acquire() as connection, connection.transaction():
        appended = await store.append(connection, transitions)
        today = await store.advance_clock(connection, marks)
        due = await store.take_due_timers(connection, today, SWEEP_SUBJECTS_MAX)
        # The subjects with new events are locked already (append).
        versions = {**await store.lock_subjects(connection, due - set(appended.after)), **appended.after}
        subjects = sorted(versions)
        streams = await read_streams(connection, {s: versions[s] for s in subjects}, appended, cache)
        issued = await store.issued_payments(connection, subjects)
        stored = await store.stored_decisions(connection, subjects)
        # Evaluate first, then lock only the budgets these subjects claim on, for as
        # short a time as the re-granting and the writes take.
        evaluated, requests = evaluate_subjects(in_force, subjects, streams, today, directory)
        budgets = await regrant_all(connection, in_force, subjects, requests)
        grants = {k: g for _, b in budgets for k, g in b.grants.items()}
        moved = {s for _, b in budgets for s in b.moved}
        plan = settle_subjects(in_force, evaluated, requests, grants, moved, today, issued, stored)
        await store.record_payments(connection, plan.instructions, plan.instruction_payloads)
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
        measured = await settle_indicators(connection, in_force, subjects, streams, today)
        still_due = await store.timers_due(connection, today)
    if cache is not None:  # committed: these are the subjects' streams at these versions
        cache.remember(versions, streams)
    return BatchResult(appended.count, len(subjects), len(plan.instructions) + measured.instructions,
                       len(plan.decision_rows) + measured.outcomes_changed, today, still_due)


__all__ = ["BatchPlan", "BatchResult", "outcome_key", "plan_batch", "process_batch"]
