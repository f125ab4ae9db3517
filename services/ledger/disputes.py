"""The ledger's record of disputes (shared/domain/disputes.py): what a payout run must hold.

Each admitted record of the disputes topic is appended to `ledger_disputes` with the
dispute's state after it, in the order read (one partition: a dispute's decisions come
after it). A record already kept (same id: a redelivery, a retry) is a duplicate; a
decision on a dispute the ledger never saw opened is `unknown_dispute`, one on a dispute
already decided `dispute_closed`; both are dead-lettered and change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.domain.disputes import DisputeOpened, DisputeResolved, DisputeState, state_after

UNKNOWN_DISPUTE = "unknown_dispute"
DISPUTE_CLOSED = "dispute_closed"


@dataclass(frozen=True)
class DisputeRefusal:
    record: DisputeOpened | DisputeResolved
    reason: str
    message: str


async def keep_disputes(pool: asyncpg.Pool, records: list[DisputeOpened | DisputeResolved]
                        ) -> tuple[int, list[DisputeRefusal]]:
    """Append the records, in order, in one transaction; how many were new, and the refused."""
    refused: list[DisputeRefusal] = []
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
            await connection.execute(
                "INSERT INTO ledger_disputes (record_id, dispute_id, kind, outcome_key, institution, state, record)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
                record_id, record.dispute_id, record.kind, outcome_key, institution, after.value,
                record.model_dump_json())
            written += 1
    return written, refused
