"""The ledger's record of disputes (shared/domain/disputes.py): what a payout run must hold.

Each admitted record of the disputes topic is appended to `ledger_disputes` with the
dispute's state after it, in the order read (one partition: a dispute's decisions come
after it). A record already kept (same id: a redelivery, a retry) is a duplicate; a
decision on a dispute the ledger never saw opened is `unknown_dispute`, one on a dispute
already decided `dispute_closed`; both are dead-lettered and change nothing.

A dispute kept after a payment of its outcome went out in a live payout run (the front
door checked the window against the verifier's frontier, and the ledger reads the topic
in a group of its own, so a final payment can be in a run first) is kept all the same,
holding what is not paid yet, with that run in `in_payout_run`: `already_in_payout_run`,
logged, and shown in the operator's queue, so that the run is voided before the bank
pays it, or the money recovered (docs/portal.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.ledger.payouts import out_in_live_runs
from shared.domain.disputes import DisputeOpened, DisputeResolved, DisputeState, state_after

UNKNOWN_DISPUTE = "unknown_dispute"
DISPUTE_CLOSED = "dispute_closed"
ALREADY_IN_PAYOUT_RUN = "already_in_payout_run"


@dataclass(frozen=True)
class DisputeRefusal:
    record: DisputeOpened | DisputeResolved
    reason: str
    message: str


@dataclass(frozen=True)
class Kept:
    written: int
    refused: list[DisputeRefusal]
    late: list[DisputeRefusal]  # kept, but a payment of the outcome was out in a live run already


async def _live_run_of_outcome(connection: asyncpg.Connection, outcome_key: str) -> str | None:
    """A live payout run that holds a payment of the outcome now (the first by id), if any."""
    payments = [r["payment_id"] for r in await connection.fetch(
        "SELECT payment_id FROM ledger_entries WHERE kind = 'payment' AND contract_id || '|' || outcome_id || '|'"
        " || subject || '|' || coalesce(trigger_event_id, '') = $1", outcome_key)]
    runs = await out_in_live_runs(connection, payments) if payments else {}
    return min(runs.values()) if runs else None


async def keep_disputes(pool: asyncpg.Pool, records: list[DisputeOpened | DisputeResolved]) -> Kept:
    """Append the records, in order, in one transaction; how many were new, the refused,
    and the disputes kept after their outcome's payment went out in a run."""
    refused: list[DisputeRefusal] = []
    late: list[DisputeRefusal] = []
    written = 0
    async with pool.acquire() as connection, connection.transaction():
        for record in records:
            record_id = record.dispute_id if isinstance(record, DisputeOpened) else record.resolution_id
            if await connection.fetchval("SELECT 1 FROM ledger_disputes WHERE record_id = $1", record_id):
                continue
            latest = await connection.fetchrow(
                "SELECT state, outcome_key, institution FROM ledger_disputes WHERE dispute_id = $1"
                " ORDER BY n DESC LIMIT 1", record.dispute_id)
            if isinstance(record, DisputeOpened):
                outcome_key, institution = record.outcome_key, record.institution
                before = DisputeState(latest["state"]) if latest else None
            elif latest is None:
                refused.append(DisputeRefusal(record, UNKNOWN_DISPUTE, f"no dispute {record.dispute_id} was opened"))
                continue
            else:
                outcome_key, institution, before = latest["outcome_key"], latest["institution"], DisputeState(
                    latest["state"])
            after = state_after(before, record)
            if after is None:
                refused.append(DisputeRefusal(record, DISPUTE_CLOSED,
                                              f"dispute {record.dispute_id} was decided already ({before})"))
                continue
            run = await _live_run_of_outcome(connection, outcome_key) if isinstance(record, DisputeOpened) else None
            if run is not None:
                late.append(DisputeRefusal(record, ALREADY_IN_PAYOUT_RUN,
                                           f"dispute {record.dispute_id} kept after a payment of its outcome went out"
                                           f" in payout run {run}"))
            await connection.execute(
                "INSERT INTO ledger_disputes (record_id, dispute_id, kind, outcome_key, institution, state, record,"
                " in_payout_run) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)",
                record_id, record.dispute_id, record.kind, outcome_key, institution, after.value,
                record.model_dump_json(), run)
            written += 1
    return Kept(written, refused, late)
