"""The ledger's PostgreSQL adapter: apply a batch of journal records exactly once.

One transaction per consumed batch: lock the chain head, load what the ledger knows of
the payments the batch references, decide (pure `plan_journal`), append the new entries
with their chain hashes, move the head. Offsets are committed to Kafka only after this
commits, so a crash anywhere replays the batch and the replay decides "already there".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from services.ledger.audit import instruction_from_row
from services.ledger.investment_store import append_investments, load_book
from services.ledger.provenance import SourceRecord, insert_sources, source_object
from shared.domain.events import PaymentInstruction, Settlement, SettlementStatus
from shared.domain.investment.records import InvestmentRecord
from shared.domain.ledger.investments import plan_investments
from shared.domain.ledger.journal import JournalPlan, KnownPayment, plan_journal
from shared.domain.ledger.postings import Entry, chain_hash
from shared.domain.tenancy import Tenancy

JournalItem = PaymentInstruction | Settlement | InvestmentRecord

# One statement per table per batch (unnest over column arrays), not one per row.
_INSERT_ENTRIES = """
INSERT INTO ledger_entries (sequence, entry_id, kind, payment_id, reverses_payment_id,
    contract_id, contract_version, outcome_id, subject, payer, payee, payee_role, currency,
    amount_minor, occurred_on, content_hash, previous_hash, entry_hash,
    settlement_id, bank_reference, settled_on, failure_reason, trigger_event_id)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::date[],
    $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::date[], $22::text[], $23::text[])
"""
_INSERT_LINES = """
INSERT INTO ledger_lines (sequence, line, account, debit_minor, credit_minor, currency)
SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
"""


async def known_payments(connection: asyncpg.Connection, payment_ids: Sequence[str]
                         ) -> dict[str, KnownPayment]:
    rows = await connection.fetch(
        "SELECT * FROM ledger_entries WHERE payment_id = ANY($1::text[]) ORDER BY sequence",
        list(payment_ids))
    known: dict[str, KnownPayment] = {}
    for row in rows:
        if row["kind"] in ("payment", "clawback"):
            known[row["payment_id"]] = KnownPayment(instruction_from_row(row), None)
    for row in rows:  # in sequence order: the journal's order
        if row["kind"] in _SETTLEMENT_KINDS and row["payment_id"] in known:
            known[row["payment_id"]] = known[row["payment_id"]].applied(Settlement(
                settlement_id=row["settlement_id"], payment_id=row["payment_id"],
                status=_SETTLEMENT_KINDS[row["kind"]], settled_on=row["settled_on"],
                bank_reference=row["bank_reference"], reason=row["failure_reason"]))
    return known


_SETTLEMENT_KINDS = {"settled": SettlementStatus.PAID, "failed": SettlementStatus.FAILED,
                     "returned": SettlementStatus.RETURNED}


async def apply_journal(pool: asyncpg.Pool, records: Sequence[JournalItem],
                        sources: Mapping[int, SourceRecord] | None = None,
                        tenancy: Tenancy | None = None) -> JournalPlan:
    """Append what the records call for; return the plan (entries written, rejections).
    `sources`: id() of each record -> the signed journal record it was parsed from, kept
    with the entry it becomes (services/ledger/provenance.py). `tenancy`: whose finance
    principals may settle which payer's payments (shared/domain/tenancy.py)."""
    if not records:
        return JournalPlan((), (), 0)
    sources = sources or {}
    async with pool.acquire() as connection, connection.transaction():
        head = await connection.fetchrow(
            "SELECT sequence, entry_hash FROM ledger_chain_head FOR UPDATE")
        assert head is not None
        sequence, previous = int(head["sequence"]), str(head["entry_hash"])
        plans: list[JournalPlan] = []
        # Runs of payments and settlements, and runs of investment records, in journal
        # order: each run is decided on what the transaction holds so far, so an investment
        # closed after its last repayment in the same batch sees that repayment.
        for investments, run in _runs(records):
            if investments:
                decided = plan_investments(run, await load_book(connection))  # type: ignore[arg-type]
                first = sequence
                sequence, previous = await append_investments(connection, decided.entries, sequence, previous)
                await insert_sources(connection, [(first + n, sources.get(id(source_object(e))))
                                                  for n, e in enumerate(decided.entries, start=1)])
                plans.append(JournalPlan((), (), decided.duplicates, decided.entries, decided.refused))
                continue
            payments: Sequence[PaymentInstruction | Settlement] = run  # type: ignore[assignment]
            known = await known_payments(connection, sorted({r.payment_id for r in payments}))
            plan = plan_journal(payments, known, tenancy)
            first = sequence
            sequence, previous = await _append(connection, plan.entries, sequence, previous)
            await insert_sources(connection, [(first + n, sources.get(id(source_object(e))))
                                              for n, e in enumerate(plan.entries, start=1)])
            plans.append(plan)
    return JournalPlan.merged(plans)


def _runs(records: Sequence[JournalItem]) -> list[tuple[bool, list[JournalItem]]]:
    runs: list[tuple[bool, list[JournalItem]]] = []
    for record in records:
        investment = not isinstance(record, PaymentInstruction | Settlement)
        if not runs or runs[-1][0] != investment:
            runs.append((investment, []))
        runs[-1][1].append(record)
    return runs


async def _append(connection: asyncpg.Connection, entries: Sequence[Entry], sequence: int,
                  previous: str) -> tuple[int, str]:
    if not entries:
        return sequence, previous
    entry_rows: list[tuple[object, ...]] = []
    line_rows: list[tuple[object, ...]] = []
    for entry in entries:
        sequence += 1
        content = entry.content_hash()
        current = chain_hash(previous, content)
        i, s = entry.instruction, entry.settlement
        entry_rows.append((
            sequence, entry.entry_id, entry.kind, i.payment_id, i.reverses_payment_id,
            i.contract_id, i.contract_version, i.outcome_id, i.subject, i.payer, i.payee,
            i.payee_role, i.currency, i.amount_minor, i.occurred_on, content, previous, current,
            s.settlement_id if s else None, s.bank_reference if s else None,
            s.settled_on if s else None, s.reason if s else None, i.trigger_event_id))
        line_rows.extend((sequence, n, ln.account, ln.debit_minor, ln.credit_minor, ln.currency)
                         for n, ln in enumerate(entry.lines, start=1))
        previous = current
    await connection.execute(_INSERT_ENTRIES, *(list(column) for column in zip(*entry_rows, strict=True)))
    await connection.execute(_INSERT_LINES, *(list(column) for column in zip(*line_rows, strict=True)))
    await connection.execute(
        "UPDATE ledger_chain_head SET sequence = $1, entry_hash = $2", sequence, previous)
    return sequence, previous
