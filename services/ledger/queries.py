"""Read-side queries over the ledger: balances and institution statements."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class AccountBalance:
    account: str
    currency: str
    balance_minor: int  # credits minus debits


async def account_balances(database_url: str) -> list[AccountBalance]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT account, currency, sum(credit_minor) - sum(debit_minor) AS balance"
            " FROM ledger_lines GROUP BY account, currency ORDER BY account, currency")
    finally:
        await connection.close()
    return [AccountBalance(r["account"], r["currency"].strip(), int(r["balance"])) for r in rows]


@dataclass(frozen=True)
class StatementLine:
    sequence: int
    day: dt.date
    kind: str
    contract_id: str
    outcome_id: str
    payment_id: str
    reference: str
    currency: str
    pending_change_minor: int
    paid_change_minor: int
    state: str = ""  # where the payment stands now: pending, paid, failed, returned, clawed back
    # Who pays (the contract's payer tenant, docs/tenancy.md): across a border, another
    # municipality than the institution's own.
    payer: str = ""


@dataclass(frozen=True)
class Statement:
    institution: str
    opening_pending_minor: int
    opening_paid_minor: int
    lines: tuple[StatementLine, ...]
    in_ledger: bool = True  # the ledger names the institution at all

    def subtotals(self) -> list[tuple[str, str, str, int, int]]:
        """(contract, month, currency, pending change, paid change), per contract and month."""
        totals: dict[tuple[str, str, str], list[int]] = {}
        for x in self.lines:
            key = (x.contract_id, x.day.strftime("%Y-%m"), x.currency)
            pair = totals.setdefault(key, [0, 0])
            pair[0] += x.pending_change_minor
            pair[1] += x.paid_change_minor
        return [(*key, pending, paid) for key, (pending, paid) in sorted(totals.items())]

    @property
    def closing_pending_minor(self) -> int:
        return self.opening_pending_minor + sum(x.pending_change_minor for x in self.lines)

    @property
    def closing_paid_minor(self) -> int:
        return self.opening_paid_minor + sum(x.paid_change_minor for x in self.lines)


_STATEMENT = """
SELECT e.sequence, coalesce(e.settled_on, e.occurred_on) AS day, e.kind, e.contract_id,
       e.outcome_id, e.payment_id, e.payer,
       CASE WHEN e.kind IN ('failed', 'returned') THEN e.failure_reason || coalesce(' (' || e.bank_reference || ')', '')
            ELSE coalesce(e.bank_reference, '') END AS reference,
       e.currency,
       CASE WHEN EXISTS (SELECT 1 FROM ledger_entries c WHERE c.kind = 'clawback'
                          AND c.reverses_payment_id = e.payment_id) THEN 'clawed back'
            ELSE coalesce((SELECT CASE s.kind WHEN 'settled' THEN 'paid' ELSE s.kind END FROM ledger_entries s
                            WHERE s.payment_id = e.payment_id AND s.kind IN ('settled', 'failed', 'returned')
                            ORDER BY s.sequence DESC LIMIT 1), 'pending') END AS state,
       sum(CASE WHEN l.account LIKE '%:pending' THEN l.credit_minor - l.debit_minor ELSE 0 END) AS pending,
       sum(CASE WHEN l.account LIKE '%:paid' THEN l.credit_minor - l.debit_minor ELSE 0 END) AS paid
  FROM ledger_entries e JOIN ledger_lines l USING (sequence)
 WHERE l.account IN ($1, $2, $3, $4)
   AND ($5::text IS NULL OR e.contract_id = $5)
 GROUP BY e.sequence
 ORDER BY day, e.sequence
"""


async def institution_statement(database_url: str, institution: str, *, contract_id: str | None,
                                date_from: dt.date | None, date_to: dt.date | None) -> Statement:
    accounts = [f"receivable:{institution}:pending", f"receivable:{institution}:paid",
                f"fallback:{institution}:pending", f"fallback:{institution}:paid"]
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(_STATEMENT, *accounts, contract_id)
        known = bool(rows) or bool(await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM ledger_entries WHERE payee = $1 OR payer = $1)", institution))
    finally:
        await connection.close()
    opening_pending = opening_paid = 0
    lines = []
    for row in rows:
        if date_from is not None and row["day"] < date_from:
            opening_pending += int(row["pending"])
            opening_paid += int(row["paid"])
            continue
        if date_to is not None and row["day"] > date_to:
            continue
        lines.append(StatementLine(row["sequence"], row["day"], row["kind"], row["contract_id"],
                                   row["outcome_id"], row["payment_id"], row["reference"],
                                   row["currency"].strip(), int(row["pending"]), int(row["paid"]), row["state"],
                                   row["payer"]))
    return Statement(institution, opening_pending, opening_paid, tuple(lines), known)
