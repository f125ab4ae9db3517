"""Tamper evidence: recompute every entry's content hash and the chain from the rows.

An auditor (or `stafet ledger verify`) reads entries and lines in sequence order,
rebuilds each entry exactly as the projector hashed it, and checks that each stored
hash, each link to the predecessor and the chain head agree, and that every entry
balances. The first disagreement is named.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.ledger.postings import GENESIS_HASH, Entry, Line, chain_hash
from shared.events import PaymentInstruction, PaymentKind

VERIFY_PAGE_ROWS = 5000


@dataclass(frozen=True)
class ChainReport:
    entries: int
    head_hash: str
    first_bad_sequence: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_sequence is None


def rebuild_entry(row: asyncpg.Record, lines: list[asyncpg.Record]) -> Entry:
    instruction = PaymentInstruction(
        payment_id=row["payment_id"], kind=PaymentKind(row["kind"]),
        contract_id=row["contract_id"], contract_version=row["contract_version"],
        outcome_id=row["outcome_id"], subject=row["subject"], payer=row["payer"],
        payee=row["payee"], payee_role=row["payee_role"], amount_minor=row["amount_minor"],
        currency=row["currency"], occurred_on=row["occurred_on"],
        reverses_payment_id=row["reverses_payment_id"],
    )
    return Entry(row["entry_id"], row["kind"], instruction, tuple(
        Line(ln["account"], ln["debit_minor"], ln["credit_minor"], ln["currency"])
        for ln in lines))


async def verify_chain(connection: asyncpg.Connection) -> ChainReport:
    previous, count, after = GENESIS_HASH, 0, 0
    while True:
        rows = await connection.fetch(
            "SELECT * FROM ledger_entries WHERE sequence > $1 ORDER BY sequence LIMIT $2",
            after, VERIFY_PAGE_ROWS)
        if not rows:
            break
        lines: dict[int, list[asyncpg.Record]] = {}
        for line in await connection.fetch(
                "SELECT * FROM ledger_lines WHERE sequence > $1 AND sequence <= $2"
                " ORDER BY sequence, line", after, rows[-1]["sequence"]):
            lines.setdefault(line["sequence"], []).append(line)
        for row in rows:
            sequence = row["sequence"]
            count += 1
            problem = _check(row, lines.get(sequence, []), previous, count)
            if problem:
                return ChainReport(count - 1, previous, sequence, problem)
            previous = row["entry_hash"]
        after = rows[-1]["sequence"]
    head = await connection.fetchrow("SELECT sequence, entry_hash FROM ledger_chain_head")
    assert head is not None
    if head["entry_hash"] != previous or head["sequence"] != count:
        return ChainReport(count, previous, count + 1, "chain head does not match the last entry")
    return ChainReport(count, previous)


def _check(row: asyncpg.Record, lines: list[asyncpg.Record], previous: str, expected_sequence: int) -> str:
    if row["sequence"] != expected_sequence:
        return f"sequence gap: expected {expected_sequence}"
    if row["previous_hash"] != previous:
        return "previous_hash does not link to the preceding entry"
    debits = sum(ln["debit_minor"] for ln in lines)
    if debits == 0 or debits != sum(ln["credit_minor"] for ln in lines):
        return "entry is not balanced"
    try:
        entry = rebuild_entry(row, lines)
    except ValueError as error:
        return f"entry no longer parses: {error}"
    if entry.content_hash() != row["content_hash"]:
        return "content does not match its content_hash (altered)"
    if chain_hash(previous, row["content_hash"]) != row["entry_hash"]:
        return "entry_hash does not match"
    return ""
