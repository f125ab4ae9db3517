"""The ledger database's side of payout files and bank answers.

`export_payout` runs in one transaction under an advisory lock: read what is pending in
the date range and what was ever exported, plan (pure `plan_payout`), record the lines.
The file is written from the recorded lines after the commit, so a crash between the
two leaves the payments marked and the file recoverable with `--reissue`, never paid
twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from shared.domain.finance.payouts import Payable, PayoutFormat, PayoutLine, PayoutPlan, plan_payout
from shared.domain.institutions import InstitutionRegistry, PaymentMethod

_EXPORT_LOCK_KEY = 0x57AFE8  # one payout export at a time per database

# Pending: a payment instruction with no settlement (paid or failed) and no clawback.
_PAYABLE = """
SELECT p.payment_id, p.contract_id, p.outcome_id, p.payer, p.payee, p.amount_minor,
       p.currency, p.occurred_on
  FROM ledger_entries p
 WHERE p.kind = 'payment' AND p.occurred_on BETWEEN $1 AND $2
   AND NOT EXISTS (SELECT 1 FROM ledger_entries s
                    WHERE s.payment_id = p.payment_id AND s.kind IN ('settled', 'failed'))
   AND NOT EXISTS (SELECT 1 FROM ledger_entries c
                    WHERE c.kind = 'clawback' AND c.reverses_payment_id = p.payment_id)
 ORDER BY p.sequence
"""

_LINE_COLUMNS = ("payment_id, contract_id, outcome_id, occurred_on, amount_minor, currency, payer, payer_name,"
                 " payer_iban, payer_bic, payee, payee_name, payee_cvr, payee_ean, payee_iban, payee_bic,"
                 " payment_method")


@dataclass(frozen=True)
class PayoutExport:
    export_id: str
    format: PayoutFormat
    execution_date: dt.date
    created_at: dt.datetime
    lines: tuple[PayoutLine, ...]


async def export_payout(connection: asyncpg.Connection, registry: InstitutionRegistry, *,
                        date_from: dt.date, date_to: dt.date, output_format: PayoutFormat,
                        execution_date: dt.date, now: dt.datetime) -> PayoutPlan:
    """Plan a payout of the pending payments in the range and record its lines."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _EXPORT_LOCK_KEY)
        rows = await connection.fetch(_PAYABLE, date_from, date_to)
        payables = [Payable(r["payment_id"], r["contract_id"], r["outcome_id"], r["payer"], r["payee"],
                            int(r["amount_minor"]), r["currency"].strip(), r["occurred_on"]) for r in rows]
        exported = {r["payment_id"]: r["export_id"] for r in await connection.fetch(
            "SELECT payment_id, export_id FROM payout_lines WHERE payment_id = ANY($1::text[])",
            [p.payment_id for p in payables])}
        plan = plan_payout(payables, registry, exported, output_format)
        if plan.lines:
            await connection.execute(
                "INSERT INTO payout_exports (export_id, format, date_from, date_to, execution_date, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                plan.export_id, output_format.value, date_from, date_to, execution_date, now)
            await connection.executemany(
                f"INSERT INTO payout_lines (export_id, line, {_LINE_COLUMNS}) VALUES"
                " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
                [(plan.export_id, n, x.payment_id, x.contract_id, x.outcome_id, x.occurred_on, x.amount_minor,
                  x.currency, x.payer, x.payer_name, x.payer_iban, x.payer_bic, x.payee, x.payee_name,
                  x.payee_cvr, x.payee_ean, x.payee_iban, x.payee_bic, x.payment_method.value)
                 for n, x in enumerate(plan.lines, start=1)])
    return plan


async def recorded_export(connection: asyncpg.Connection, export_id: str) -> PayoutExport | None:
    """An export exactly as recorded, to write its file (again)."""
    head = await connection.fetchrow("SELECT * FROM payout_exports WHERE export_id = $1", export_id)
    if head is None:
        return None
    rows = await connection.fetch(
        f"SELECT {_LINE_COLUMNS} FROM payout_lines WHERE export_id = $1 ORDER BY line", export_id)
    lines = tuple(PayoutLine(**{**dict(r), "currency": r["currency"].strip(),
                                "amount_minor": int(r["amount_minor"]),
                                "payment_method": PaymentMethod(r["payment_method"])}) for r in rows)
    return PayoutExport(head["export_id"], PayoutFormat(head["format"]), head["execution_date"],
                        head["created_at"], lines)


@dataclass(frozen=True)
class LedgerPayment:
    """What the ledger knows of a payment a bank answer names."""

    payment_id: str
    amount_minor: int
    currency: str
    settled: bool  # a paid or failed settlement is already recorded


async def ledger_payments(connection: asyncpg.Connection, payment_ids: Sequence[str]) -> dict[str, LedgerPayment]:
    rows = await connection.fetch(
        "SELECT p.payment_id, p.amount_minor, p.currency,"
        "       EXISTS (SELECT 1 FROM ledger_entries s WHERE s.payment_id = p.payment_id"
        "               AND s.kind IN ('settled', 'failed')) AS settled"
        "  FROM ledger_entries p"
        " WHERE p.kind IN ('payment', 'clawback') AND p.payment_id = ANY($1::text[])",
        list(payment_ids))
    return {r["payment_id"]: LedgerPayment(r["payment_id"], int(r["amount_minor"]), r["currency"].strip(),
                                           bool(r["settled"])) for r in rows}
