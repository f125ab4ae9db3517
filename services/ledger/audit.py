"""Tamper evidence: recompute every entry, its lines, its hash and the chain from rows.

An auditor (or `stafet ledger verify`) reads entries and lines in sequence order,
rebuilds each entry exactly as the projector built it (the same pure postings), and
checks that the stored lines are the ones the postings call for, that each stored hash,
each link to the predecessor and the chain head agree. The first disagreement is named.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from services.ledger.investment_store import entry_of_row
from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.ledger.investments import InvestmentEntry
from shared.domain.ledger.postings import GENESIS_HASH, Entry, chain_hash, entry_for, settlement_entry

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


def instruction_from_row(row: asyncpg.Record) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=row["payment_id"],
        kind=PaymentKind.CLAWBACK if row["reverses_payment_id"] else PaymentKind.PAYMENT,
        contract_id=row["contract_id"], contract_version=row["contract_version"],
        outcome_id=row["outcome_id"], subject=row["subject"], payer=row["payer"],
        payee=row["payee"], payee_role=row["payee_role"], amount_minor=row["amount_minor"],
        currency=row["currency"], occurred_on=row["occurred_on"],
        reverses_payment_id=row["reverses_payment_id"], trigger_event_id=row["trigger_event_id"],
    )


def rebuild_entry(row: asyncpg.Record) -> Entry | InvestmentEntry:
    """The entry as the projector would build it from the row's own facts."""
    if row.get("investment") is not None:
        return entry_of_row(row)
    instruction = instruction_from_row(row)
    if row["kind"] in ("payment", "clawback"):
        return entry_for(instruction)
    settlement = Settlement(
        settlement_id=row["settlement_id"], payment_id=row["payment_id"],
        status=_SETTLEMENT_STATUS[row["kind"]], settled_on=row["settled_on"],
        bank_reference=row["bank_reference"], reason=row["failure_reason"])
    # `settlement:<payment id>` is the first; `settlement:<payment id>:<n>` the n-th.
    number = str(row["entry_id"]).rsplit(":", 1)[1] if str(row["entry_id"]).count(":") == 2 else "1"
    return settlement_entry(instruction, settlement, int(number))


_SETTLEMENT_STATUS = {"settled": SettlementStatus.PAID, "failed": SettlementStatus.FAILED,
                      "returned": SettlementStatus.RETURNED}


RowsCheck = Callable[[Sequence[asyncpg.Record]], Awaitable[list[tuple[int, str]]]]


async def verify_chain(connection: asyncpg.Connection, anchors: Mapping[int, str] | None = None,
                       provenance: RowsCheck | None = None) -> ChainReport:
    """`anchors`: entry hash by sequence from the signed checkpoints
    (services/ledger/checkpoints.py); an entry that differs from its anchor was rewritten,
    even when whoever rewrote it recomputed the chain after it. `provenance`: names the
    entries of a page not derived from a signed record (services/ledger/provenance.py)."""
    anchors = anchors or {}
    previous, count, after = GENESIS_HASH, 0, 0
    while True:
        rows = await connection.fetch(
            "SELECT * FROM ledger_entries WHERE sequence > $1 ORDER BY sequence LIMIT $2",
            after, VERIFY_PAGE_ROWS)
        if not rows:
            break
        lines: dict[int, list[tuple[str, int, int, str]]] = {}
        for line in await connection.fetch(
                "SELECT * FROM ledger_lines WHERE sequence > $1 AND sequence <= $2"
                " ORDER BY sequence, line", after, rows[-1]["sequence"]):
            lines.setdefault(line["sequence"], []).append(
                (line["account"], line["debit_minor"], line["credit_minor"], line["currency"].strip()))
        unproven = dict(await provenance(rows)) if provenance is not None else {}
        for row in rows:
            count += 1
            problem = _check(row, lines.get(row["sequence"], []), previous, count)
            anchored = anchors.get(row["sequence"])
            if not problem and anchored is not None and anchored != row["entry_hash"]:
                problem = "entry_hash differs from the signed checkpoint (rewritten, and the chain recomputed)"
            if not problem:
                problem = unproven.get(row["sequence"], "")
            if problem:
                return ChainReport(count - 1, previous, row["sequence"], problem)
            previous = row["entry_hash"]
        after = rows[-1]["sequence"]
    head = await connection.fetchrow("SELECT sequence, entry_hash FROM ledger_chain_head")
    assert head is not None
    if head["entry_hash"] != previous or head["sequence"] != count:
        return ChainReport(count, previous, count + 1, "chain head does not match the last entry")
    if anchors and max(anchors) > count:
        return ChainReport(count, previous, count + 1,
                           f"missing: signed checkpoints cover entries up to {max(anchors)}")
    return ChainReport(count, previous)


def _check(row: asyncpg.Record, stored_lines: list[tuple[str, int, int, str]], previous: str,
           expected_sequence: int) -> str:
    if row["sequence"] != expected_sequence:
        return f"sequence gap: expected {expected_sequence}"
    if row["previous_hash"] != previous:
        return "previous_hash does not link to the preceding entry"
    try:
        entry = rebuild_entry(row)
    except ValueError as error:
        return f"entry no longer parses: {error}"
    expected_lines = [(ln.account, ln.debit_minor, ln.credit_minor, ln.currency) for ln in entry.lines]
    if stored_lines != expected_lines:
        return "lines differ from what the entry posts (altered or unbalanced)"
    if entry.content_hash() != row["content_hash"]:
        return "content does not match its content_hash (altered)"
    if chain_hash(previous, row["content_hash"]) != row["entry_hash"]:
        return "entry_hash does not match"
    return ""
