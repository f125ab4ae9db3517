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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import asyncpg

from services.verifier import store
from services.verifier.decisions import InForce, Stored, evaluate, outcome_record, settle
from services.verifier.indicators import settle_indicators
from shared.contracts.book import ContractBook
from shared.contracts.evaluation import InstitutionInfo, budget_scope
from shared.contracts.payments import BudgetRequest, grant_budget, outcome_key, place_budgets
from shared.events import PaymentInstruction, Transition
from shared.topics import OUTCOMES, PAYMENTS


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


SWEEP_SUBJECTS_MAX = 2000  # due timers re-evaluated per batch, to bound a batch's work


def budgets_of(in_force: Sequence[InForce]) -> set[str]:
    return ({budget_scope(c) for c, _ in in_force if c.caps.contract_wide}
            | {b for c, _ in in_force for b in place_budgets(c)})


def plan_batch(in_force: Sequence[InForce], subjects: Sequence[str],
               streams: Mapping[str, Sequence[Transition]], today: dt.date,
               directory: Mapping[str, InstitutionInfo],
               issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]], stored: Stored,
               claims: Sequence[BudgetRequest]) -> BatchPlan:
    """What re-evaluating `subjects` writes, given every stored claim on the budgets."""
    currency = {c.contract_id: c.currency for c, _ in in_force}
    plan = BatchPlan()
    evaluated = {}
    for subject in subjects:
        decisions, requests = evaluate(in_force, subject, streams[subject], today, directory)
        evaluated[subject] = decisions
        plan.requests.extend(requests)
    evaluating = set(subjects)
    before = grant_budget(claims)
    after = grant_budget([c for c in claims if c.subject not in evaluating] + plan.requests)
    # A claim that moved ranks others' grants: those subjects are re-settled now-ish
    # (a timer due today), so that their payments follow the budget's new decision.
    moved = {c.subject for c in claims if c.subject not in evaluating
             and before.get(c.outcome_key) != after.get(c.outcome_key)}
    plan.timers.extend((subject, today) for subject in sorted(moved))
    for subject in subjects:
        effects = settle(in_force, subject, evaluated[subject], after, today, issued, stored)
        plan.instructions.extend(effects.instructions)
        plan.timers.extend((subject, due) for due in effects.timers)
        for decision in effects.changed:
            record = outcome_record(decision, currency[decision.contract_id])
            plan.outbox.append((OUTCOMES.name, subject, record.model_dump_json()))
            plan.decision_rows.append((record.outcome_key, subject, decision.contract_id,
                                       decision.status.value, record.reason,
                                       decision.owed_minor, record.model_dump_json()))
    plan.outbox.extend((PAYMENTS.name, i.payee, i.model_dump_json()) for i in plan.instructions)
    return plan


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
                        partitions: Mapping[int, dt.date] | None = None) -> BatchResult:
    """`partitions`: the latest date (occurred_on or clock tick) seen per transitions
    partition in this batch, which moves those partitions' clocks."""
    marks = clock_marks(transitions, clock_ticks, partitions)
    for attempt in range(DEADLOCK_RETRIES_MAX + 1):
        try:
            return await _process(pool, book.in_force(), transitions, directory, marks)
        except asyncpg.DeadlockDetectedError:
            # Two replicas locked the same subjects in two steps (one for new events,
            # one for due timers): PostgreSQL rolled this one back, nothing was written.
            if attempt == DEADLOCK_RETRIES_MAX:
                raise
    raise AssertionError("unreachable")


async def _process(pool: asyncpg.Pool, in_force: Sequence[InForce], transitions: Sequence[Transition],
                   directory: Mapping[str, InstitutionInfo], marks: Mapping[int, dt.date]) -> BatchResult:
    async with pool.acquire() as connection, connection.transaction():
        changed_subjects, new_events = await store.append_events(connection, transitions)
        today = await store.advance_clock(connection, marks)
        due = await store.take_due_timers(connection, today, SWEEP_SUBJECTS_MAX)
        # The subjects with new events are locked already (append_events).
        await store.lock_subjects(connection, due - changed_subjects)
        subjects = sorted(changed_subjects | due)
        streams = await store.load_streams(connection, subjects)
        issued = await store.issued_payments(connection, subjects)
        stored = await store.stored_decisions(connection, subjects)
        claims = await store.load_budget_requests(connection, budgets_of(in_force))
        plan = plan_batch(in_force, subjects, streams, today, directory, issued, stored, claims)
        await store.record_payments(connection, plan.instructions)
        await store.save_decisions(connection, plan.decision_rows)
        await store.replace_budget_requests(connection, subjects, plan.requests)
        await store.set_timers(connection, plan.timers)
        await store.enqueue(connection, plan.outbox)
        measured = await settle_indicators(connection, in_force, subjects, streams, today)
        still_due = await store.timers_due(connection, today)
    return BatchResult(new_events, len(subjects), len(plan.instructions) + measured.instructions,
                       len(plan.decision_rows) + measured.outcomes_changed, today, still_due)


__all__ = ["BatchPlan", "BatchResult", "outcome_key", "plan_batch", "process_batch"]
