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


@dataclass(frozen=True)
class Statement:
    institution: str
    opening_pending_minor: int
    opening_paid_minor: int
    lines: tuple[StatementLine, ...]

    @property
    def closing_pending_minor(self) -> int:
        return self.opening_pending_minor + sum(x.pending_change_minor for x in self.lines)

    @property
    def closing_paid_minor(self) -> int:
        return self.opening_paid_minor + sum(x.paid_change_minor for x in self.lines)


_STATEMENT = """
SELECT e.sequence, coalesce(e.settled_on, e.occurred_on) AS day, e.kind, e.contract_id,
       e.outcome_id, e.payment_id, coalesce(e.bank_reference, e.failure_reason, '') AS reference,
       e.currency,
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
                                   row["currency"].strip(), int(row["pending"]), int(row["paid"])))
    return Statement(institution, opening_pending, opening_paid, tuple(lines))
