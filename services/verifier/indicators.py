"""Indicator outcomes in the verifier: decided when the finality frontier passes their
review date, on the facts that were in by then, and changed afterwards only by a
correction (docs/contracts.md, "Indicator outcomes" and "Finality").

Counting a population from scratch at every batch would read the whole event store.
Instead each batch keeps the part its own subjects play in every measured cell
(`verifier_indicator_members`, a pure function of the facts of a subject's stream that
are in at the frontier: `shared/domain/contracts/indicator_outcomes.py:memberships`), and
a decision sums those parts in SQL. A batch decides an indicator outcome once the
frontier is on or past its review date and no timer is due (every subject has been
evaluated at this frontier, so the decision is never made on half the population). The
facts in at a frontier day change only where a partition's facts became known, and the
frontier stops at each such day: so the first decision is on the facts in by the review
date, and each later one (a late exam result, a retraction) is a correction named after
the frontier day that brought its facts in, moving money by the difference.

Each decision runs under an advisory lock on the outcome (two replicas deciding the
same outcome serialise; the second finds it decided on the same counts), and writes the
instructions, the outcome record and the outbox in the batch's transaction: a crash, a
redelivery or a replay decides again from the same state and issues nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from services.verifier import store
from shared.domain.contracts.indicator_outcomes import (
    Cell,
    Membership,
    decide_indicator,
    deciding_version,
    indicator_instructions,
    indicator_outcome_key,
    measured_points,
    memberships,
    population_id,
)
from shared.domain.contracts.model import Contract, IndicatorOutcome
from shared.domain.contracts.payments import FINAL, Cause
from shared.domain.contracts.timeline import fold
from shared.domain.decisions import InForce, outcome_record, versions_by_contract
from shared.domain.events import Transition
from shared.platform.topics import OUTCOMES, PAYMENTS


@dataclass(frozen=True)
class Measured:
    """An indicator outcome in force, with the version that decides it."""

    contract: Contract
    outcome: IndicatorOutcome

    @property
    def member_key(self) -> str:
        return f"{self.contract.contract_id}@{self.contract.version}|{self.outcome.id}"

    @property
    def population(self) -> str:
        return population_id(self.contract.contract_id, self.outcome.id)


@dataclass(frozen=True)
class IndicatorEffects:
    instructions: int = 0
    outcomes_changed: int = 0


def measured_in_force(in_force: Sequence[InForce]) -> list[Measured]:
    found = []
    for versions in versions_by_contract(in_force).values():
        ids = sorted({o.id for contract, _ in versions for o in contract.indicator_outcomes})
        for outcome_id in ids:
            deciding = deciding_version(versions, outcome_id)
            if deciding is not None:
                found.append(Measured(*deciding))
    return found


def parts_of(measured: Sequence[Measured], subjects: Sequence[str],
             streams: Mapping[str, Sequence[Transition]], today: dt.date,
             arrived: Mapping[tuple[str, str], dt.date] | None = None) -> set[tuple[str, str, Membership]]:
    """(member key, subject, part) for every evaluated subject in every measured cell, on
    the facts in at the frontier `today` (all of them without `arrived`)."""
    parts: set[tuple[str, str, Membership]] = set()
    for subject in subjects:
        stream = [t for t in streams.get(subject, ())
                  if arrived is None or arrived.get((t.reported_by, t.event_id), store.EPOCH) < today]
        if not stream:
            continue
        timeline = fold(subject, stream[0].birth_date, stream)
        for item in measured:
            parts.update((item.member_key, subject, part) for part in memberships(item.outcome, timeline))
    return parts


async def settle_indicators(connection: asyncpg.Connection, in_force: Sequence[InForce],
                            subjects: Sequence[str], streams: Mapping[str, Sequence[Transition]],
                            today: dt.date, arrived: Mapping[tuple[str, str], dt.date] | None = None
                            ) -> IndicatorEffects:
    """Keep the evaluated subjects' parts, and decide what is due (in the caller's
    transaction). `today`: the finality frontier; `arrived`: per event id, its
    partition's watermark on arrival."""
    measured = measured_in_force(in_force)
    if not measured:
        return IndicatorEffects()
    keys = [m.member_key for m in measured]
    new = parts_of(measured, subjects, streams, today, arrived)
    old = await _stored_parts(connection, keys, subjects)
    if new != old:
        await _replace_parts(connection, keys, subjects, new)
    instructions = outcomes = 0
    for item in sorted(measured, key=lambda m: m.member_key):
        if today < item.outcome.review_on:
            continue
        if await _timers_due(connection, today):
            break  # subjects still due at this frontier: decide once every one is evaluated
        made = await _decide(connection, item, today)
        instructions += made.instructions
        outcomes += made.outcomes_changed
    return IndicatorEffects(instructions, outcomes)


async def _decide(connection: asyncpg.Connection, item: Measured, today: dt.date) -> IndicatorEffects:
    key = f"{item.contract.contract_id}|{item.outcome.id}"
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext('stafet-indicator:' || $1))", key)
    cells = await _cells(connection, item.member_key)
    if await _already_decided(connection, item, cells):
        return IndicatorEffects()  # decided on exactly these counts (by this replica or another)
    # The first decision is final; a later one is a correction by the facts that came in
    # at this frontier day, and moves money by the difference only.
    first = await _decided_member_key(connection, item) is None
    cause = FINAL if first else Cause("correction", f"known-by-{today.isoformat()}")
    decision = decide_indicator(item.contract, item.outcome, cells)
    issued = (await store.issued_payments(connection, [item.population])).get(
        (item.population, item.contract.contract_id), [])
    instructions = indicator_instructions(item.contract, decision, issued, cause)
    await store.record_payments(connection, instructions,
                                causes={i.payment_id: (cause.reason, cause.event_id) for i in instructions})
    outbox = [(PAYMENTS.name, i.payee, i.model_dump_json()) for i in instructions]
    stored = await store.stored_decisions(connection, [item.population])
    record = outcome_record(decision, item.contract.currency)
    changed = stored.get(record.outcome_key, (None,))[:3] != (
        decision.status.value, record.reason, decision.owed_minor)
    if changed:
        await store.save_decisions(connection, [(record.outcome_key, item.population, decision.contract_id,
                                                 decision.status.value, record.reason, decision.owed_minor,
                                                 record.model_dump_json())])
        outbox.insert(0, (OUTCOMES.name, item.population, record.model_dump_json()))
    await store.enqueue(connection, outbox)
    points = measured_points(item.outcome, cells)
    await connection.execute(
        "INSERT INTO verifier_indicator_decisions (outcome_key, member_key, cells, improvement, decided_on)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (outcome_key) DO UPDATE SET member_key = EXCLUDED.member_key,"
        " cells = EXCLUDED.cells, improvement = EXCLUDED.improvement, decided_on = EXCLUDED.decided_on",
        _outcome_key(item), item.member_key, _cells_json(cells), None if points is None else str(points), today)
    return IndicatorEffects(len(instructions), int(changed))


def _cells_json(cells: Mapping[str, Cell]) -> str:
    return json.dumps({name: [c.numerator, c.denominator, c.self_reported] for name, c in sorted(cells.items())},
                      separators=(",", ":"))


async def _already_decided(connection: asyncpg.Connection, item: Measured, cells: Mapping[str, Cell]) -> bool:
    row = await connection.fetchrow(
        "SELECT member_key, cells FROM verifier_indicator_decisions WHERE outcome_key = $1",
        _outcome_key(item))
    return row is not None and row["member_key"] == item.member_key and row["cells"] == _cells_json(cells)


def _outcome_key(item: Measured) -> str:
    return indicator_outcome_key(item.contract.contract_id, item.outcome)


async def _decided_member_key(connection: asyncpg.Connection, item: Measured) -> str | None:
    value = await connection.fetchval(
        "SELECT member_key FROM verifier_indicator_decisions WHERE outcome_key = $1", _outcome_key(item))
    return None if value is None else str(value)


async def _timers_due(connection: asyncpg.Connection, today: dt.date) -> bool:
    return bool(await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM verifier_timers WHERE due_on <= $1)", today))


async def _cells(connection: asyncpg.Connection, member_key: str) -> dict[str, Cell]:
    return {r["cell"]: Cell(int(r["numerator"]), int(r["denominator"]), bool(r["self_reported"]))
            for r in await connection.fetch(
                "SELECT cell, count(*) FILTER (WHERE numerator) AS numerator, count(*) AS denominator,"
                " bool_or(self_reported) AS self_reported FROM verifier_indicator_members"
                " WHERE member_key = $1 GROUP BY cell", member_key)}


async def _stored_parts(connection: asyncpg.Connection, keys: Sequence[str], subjects: Sequence[str]
                        ) -> set[tuple[str, str, Membership]]:
    return {(r["member_key"], r["subject"], Membership(r["cell"], r["numerator"], r["self_reported"]))
            for r in await connection.fetch(
                "SELECT member_key, subject, cell, numerator, self_reported FROM verifier_indicator_members"
                " WHERE member_key = ANY($1::text[]) AND subject = ANY($2::text[])", list(keys), list(subjects))}


async def _replace_parts(connection: asyncpg.Connection, keys: Sequence[str], subjects: Sequence[str],
                         parts: set[tuple[str, str, Membership]]) -> None:
    await connection.execute(
        "DELETE FROM verifier_indicator_members WHERE member_key = ANY($1::text[]) AND subject = ANY($2::text[])",
        list(keys), list(subjects))
    rows = sorted((key, subject, p.cell, p.numerator, p.self_reported) for key, subject, p in parts)
    await connection.execute(
        "INSERT INTO verifier_indicator_members (member_key, subject, cell, numerator, self_reported)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::boolean[])",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [r[4] for r in rows])
