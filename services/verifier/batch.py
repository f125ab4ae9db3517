"""One consumed batch of transitions, processed in one database transaction.

Append new events to their subjects' streams, advance the clock, re-evaluate every
subject that got a new event or whose timer came due, and write the resulting payment
instructions and outcome records to the outbox, all in the same transaction. A crash
before the commit loses nothing (the batch is consumed again and the event ids make it
a no-op where it was already stored); a crash after it loses nothing (the outbox is
published by the relay on restart).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from services.verifier import store
from services.verifier.decisions import decide_subject, outcome_record
from shared.contracts.book import ContractBook
from shared.contracts.evaluation import InstitutionInfo
from shared.contracts.payments import outcome_key
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


SWEEP_SUBJECTS_MAX = 2000  # due timers re-evaluated per batch, to bound a batch's work


async def process_batch(pool: asyncpg.Pool, book: ContractBook,
                        transitions: Sequence[Transition],
                        directory: Mapping[str, InstitutionInfo],
                        clock_ticks: Sequence[dt.date] = ()) -> BatchResult:
    in_force = book.in_force()
    contracts = [c for c, _ in in_force]
    currency = {c.contract_id: c.currency for c in contracts}
    seen = max([t.occurred_on for t in transitions] + list(clock_ticks), default=None)
    async with pool.acquire() as connection, connection.transaction():
        changed_subjects, new_events = await store.append_events(connection, transitions)
        today = await store.advance_clock(connection, seen)
        due = await store.take_due_timers(connection, today, SWEEP_SUBJECTS_MAX)
        subjects = sorted(changed_subjects | due)
        streams = await store.load_streams(connection, subjects)
        issued = await store.issued_payments(connection, subjects)
        stored = await store.stored_decisions(connection, subjects)
        caps = await store.load_cap_states(
            connection, {(c.contract_id, c.version) for c in contracts})
        instructions: list[PaymentInstruction] = []
        outbox: list[tuple[str, str, str]] = []
        decision_rows: list[tuple[str, str, str, str, str | None, int, str]] = []
        timers: list[tuple[str, dt.date]] = []
        for subject in subjects:
            effects = decide_subject(in_force, subject, streams[subject], today, directory,
                                     issued, stored, caps)
            instructions.extend(effects.instructions)
            timers.extend((subject, due) for due in effects.timers)
            for decision in effects.changed:
                record = outcome_record(decision, currency[decision.contract_id])
                outbox.append((OUTCOMES.name, subject, record.model_dump_json()))
                decision_rows.append((record.outcome_key, subject, decision.contract_id,
                                      decision.status.value, record.reason,
                                      decision.owed_minor, record.model_dump_json()))
        outbox.extend((PAYMENTS.name, i.payee, i.model_dump_json()) for i in instructions)
        await store.record_payments(connection, instructions)
        await store.save_decisions(connection, decision_rows)
        await store.set_timers(connection, timers)
        await store.save_cap_states(connection, caps)
        await store.enqueue(connection, outbox)
        still_due = await store.timers_due(connection, today)
    return BatchResult(new_events, len(subjects), len(instructions), len(decision_rows), today,
                       still_due)


__all__ = ["BatchResult", "outcome_key", "process_batch"]
