"""The ledger's PostgreSQL side of investment records: what it holds, and appending.

Called by `store.apply_journal` inside its transaction, with the chain head locked, for
each run of investment records in a journal batch (docs/investment.md): the book is read
inside the same transaction, so it includes every entry the batch appended before.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from shared.domain.investment.position import Repayment
from shared.domain.investment.records import INVESTMENT_RECORD, InvestmentCommitted, InvestmentRecord, record_day
from shared.domain.ledger.investments import Context, InvestmentBook, InvestmentEntry, investment_entry, parties_of
from shared.domain.ledger.postings import chain_hash

_INVESTMENT_ROWS = "SELECT entry_id, kind, contract_id, currency, investment FROM ledger_entries" \
                   " WHERE investment IS NOT NULL ORDER BY sequence"
# Outcome payments settled to (or clawbacks settled from) the investors: their paid account.
_REPAYMENTS = """
SELECT e.payee, e.contract_id, e.settled_on, sum(l.credit_minor - l.debit_minor) AS amount
  FROM ledger_entries e JOIN ledger_lines l USING (sequence)
 WHERE e.kind = 'settled' AND l.account = ANY($1::text[])
 GROUP BY e.sequence, e.payee, e.contract_id, e.settled_on
 ORDER BY e.sequence
"""
# Who pays each invested contract, as its payment instructions in the ledger say.
_PAYERS = """
SELECT DISTINCT contract_id, payer FROM ledger_entries
 WHERE kind = 'payment' AND contract_id = ANY($1::text[]) AND payer IS NOT NULL
"""
_INSERT = """
INSERT INTO ledger_entries (sequence, entry_id, kind, payment_id, contract_id, payer, payee, payee_role,
    currency, amount_minor, occurred_on, content_hash, previous_hash, entry_hash, investment)
VALUES ($1, $2, $3, $2, $4, $5, $6, 'institution', $7, $8, $9, $10, $11, $12, $13::jsonb)
"""
_INSERT_LINE = "INSERT INTO ledger_lines (sequence, line, account, debit_minor, credit_minor, currency)" \
               " VALUES ($1, $2, $3, $4, $5, $6)"


def entry_of_row(row: asyncpg.Record) -> InvestmentEntry:
    """The entry as the planner built it, from the row's own record and context."""
    stored = json.loads(row["investment"])
    record = INVESTMENT_RECORD.validate_python(stored["record"])
    return investment_entry(record, Context.from_json(stored["context"]), row["currency"].strip(),
                            row["contract_id"])


async def load_book(connection: asyncpg.Connection) -> InvestmentBook:
    book = InvestmentBook()
    for row in await connection.fetch(_INVESTMENT_ROWS):
        book.accept(entry_of_row(row))
    investors = sorted({key[0] for key in _keys(book.records)})
    for row in await connection.fetch(_REPAYMENTS, [f"receivable:{i}:paid" for i in investors]):
        book.repayments.append(Repayment(row["payee"], row["contract_id"], row["settled_on"], int(row["amount"])))
    contracts = sorted({contract for _, contract in _keys(book.records)})
    for row in await connection.fetch(_PAYERS, contracts):
        book.payers.setdefault(row["contract_id"], set()).add(row["payer"])
    return book


def _keys(records: Sequence[InvestmentRecord]) -> set[tuple[str, str]]:
    return {(r.investor, r.contract_id) for r in records if isinstance(r, InvestmentCommitted)}


async def append_investments(connection: asyncpg.Connection, entries: Sequence[InvestmentEntry], sequence: int,
                             previous: str) -> tuple[int, str]:
    """Append the entries after (sequence, previous); the new head. Few rows: one
    statement each (the payments' batched insert is for thousands)."""
    for entry in entries:
        sequence += 1
        content = entry.content_hash()
        current = chain_hash(previous, content)
        payer, payee = parties_of(entry.record, entry.context)
        await connection.execute(_INSERT, sequence, entry.entry_id, entry.kind, entry.contract_id, payer, payee,
                                 entry.currency, entry.amount_minor, record_day(entry.record), content, previous, current,
                                 entry.stored())
        await connection.executemany(_INSERT_LINE, [(sequence, n, ln.account, ln.debit_minor, ln.credit_minor,
                                                     ln.currency) for n, ln in enumerate(entry.lines, start=1)])
        previous = current
    if entries:
        await connection.execute("UPDATE ledger_chain_head SET sequence = $1, entry_hash = $2", sequence, previous)
    return sequence, previous
