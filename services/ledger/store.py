"""The ledger's PostgreSQL adapter: append a batch of entries exactly once.

One transaction per consumed batch: lock the chain head, drop entries whose id is
already in the ledger (a redelivery or a replay), append the rest with their chain
hashes, move the head. Offsets are committed to Kafka only after this commits, so a
crash anywhere replays the batch and the unique entry ids make the replay a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.ledger.postings import Entry, chain_hash

_INSERT_ENTRY = """
INSERT INTO ledger_entries (sequence, entry_id, kind, payment_id, reverses_payment_id,
    contract_id, contract_version, outcome_id, subject, payer, payee, payee_role, currency,
    amount_minor, occurred_on, content_hash, previous_hash, entry_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
"""
_INSERT_LINE = """
INSERT INTO ledger_lines (sequence, line, account, debit_minor, credit_minor, currency)
VALUES ($1, $2, $3, $4, $5, $6)
"""


async def append_entries(pool: asyncpg.Pool, entries: Sequence[Entry]) -> int:
    """Append the entries not yet in the ledger; return how many were new."""
    if not entries:
        return 0
    unique: dict[str, Entry] = {}
    for entry in entries:
        unique.setdefault(entry.entry_id, entry)
    async with pool.acquire() as connection, connection.transaction():
        head = await connection.fetchrow(
            "SELECT sequence, entry_hash FROM ledger_chain_head FOR UPDATE")
        assert head is not None
        known = {r["entry_id"] for r in await connection.fetch(
            "SELECT entry_id FROM ledger_entries WHERE entry_id = ANY($1::text[])",
            list(unique))}
        sequence, previous = int(head["sequence"]), str(head["entry_hash"])
        entry_rows: list[tuple[object, ...]] = []
        line_rows: list[tuple[object, ...]] = []
        for entry in unique.values():
            if entry.entry_id in known:
                continue
            sequence += 1
            content = entry.content_hash()
            current = chain_hash(previous, content)
            i = entry.instruction
            entry_rows.append((sequence, entry.entry_id, entry.kind, i.payment_id,
                               i.reverses_payment_id, i.contract_id, i.contract_version,
                               i.outcome_id, i.subject, i.payer, i.payee, i.payee_role, i.currency,
                               i.amount_minor, i.occurred_on, content, previous, current))
            line_rows.extend((sequence, n, ln.account, ln.debit_minor, ln.credit_minor,
                              ln.currency) for n, ln in enumerate(entry.lines, start=1))
            previous = current
        if not entry_rows:
            return 0
        await connection.executemany(_INSERT_ENTRY, entry_rows)
        await connection.executemany(_INSERT_LINE, line_rows)
        await connection.execute(
            "UPDATE ledger_chain_head SET sequence = $1, entry_hash = $2", sequence, previous)
        return len(entry_rows)
