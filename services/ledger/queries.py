"""Read-side queries over the ledger (balances, statements); used by the CLI and tests."""

from __future__ import annotations

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
