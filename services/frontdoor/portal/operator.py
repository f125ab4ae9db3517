"""The operator's overview (issue 29, item 4), for users with the operator role: per
contract the money provisional, instructed, paid, returned and clawed back (by reason), the
verifier's event time per transitions partition, and the latest payout runs.

Sums only: no child, no statement line. Read as the front door's role, which may read the
ledger's entries and payout records and the verifier's decisions (sql/004_portal.sql).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from services.frontdoor.portal.statement import OutcomeNow, adjustment_reason

PAYOUT_RUNS_SHOWN = 10


@dataclass(frozen=True)
class ContractMoney:
    contract_id: str
    currency: str
    provisional_minor: int = 0
    instructed_minor: int = 0     # payments
    clawed_back_minor: int = 0    # clawbacks
    paid_minor: int = 0           # booked by the bank, less what it returned after booking and what was recovered
    failed_minor: int = 0         # refused by the bank: not paid, back to the budget (the ledger voids it)
    returned_minor: int = 0       # returned by the bank after booking: owed again

    @property
    def owed_minor(self) -> int:
        """Instructed, not clawed back, not paid, not voided: what finance still has to pay."""
        return self.instructed_minor - self.clawed_back_minor - self.paid_minor - self.failed_minor


@dataclass(frozen=True)
class Overview:
    contracts: tuple[ContractMoney, ...]
    clawed_back_by_reason: tuple[tuple[str, str, str, int], ...]   # contract, reason, currency, amount
    watermarks: tuple[tuple[int, dt.date], ...]                      # partition (-1: none), its clock
    # id, execution date, made, currency, lines, amount (one row per currency of a run)
    payout_runs: tuple[tuple[str, dt.date, dt.datetime, str, int, int], ...]


_MONEY = """
SELECT contract_id, currency,
       kind || CASE WHEN reverses_payment_id IS NOT NULL AND kind IN ('settled', 'failed') THEN ':clawback' ELSE '' END
           AS kind,
       sum(amount_minor)::bigint AS amount
  FROM ledger_entries
 WHERE kind IN ('payment', 'clawback', 'settled', 'failed', 'returned') AND ($1::text IS NULL OR payer = $1)
 GROUP BY 1, 2, 3
"""

_PROVISIONAL = """
SELECT contract_id, decision::json ->> 'currency' AS currency, sum(owed_minor)::bigint AS amount
  FROM verifier_outcomes
 WHERE status IN ('pending_review', 'pending_sustainment') AND owed_minor > 0
   AND ($1::text IS NULL OR contract_id IN (SELECT contract_id FROM verifier_contracts
                                             WHERE contract::json ->> 'payer' = $1))
 GROUP BY contract_id, decision::json ->> 'currency'
"""

# Each clawback with the decision now on the outcome of the payment it reverses.
_CLAWBACKS = """
SELECT c.contract_id, c.currency, c.amount_minor, o.status, o.reason
  FROM ledger_entries c
  LEFT JOIN verifier_payments p ON p.payment_id = c.reverses_payment_id
  LEFT JOIN verifier_outcomes o
    ON o.outcome_key = p.contract_id || '|' || (p.instruction::json ->> 'outcome_id') || '|' || p.subject
                       || '|' || (p.instruction::json ->> 'trigger_event_id')
 WHERE c.kind = 'clawback' AND ($1::text IS NULL OR c.payer = $1)
"""

_RUNS = """
SELECT x.export_id, x.execution_date, x.created_at, coalesce(l.currency, 'DKK') AS currency,
       count(l.payment_id) AS lines, coalesce(sum(l.amount_minor), 0)::bigint AS amount
  FROM payout_exports x LEFT JOIN payout_lines l USING (export_id)
 WHERE $2::text IS NULL OR x.export_id IN (SELECT export_id FROM payout_lines WHERE payer = $2)
 GROUP BY x.export_id, x.execution_date, x.created_at, l.currency
 ORDER BY x.created_at DESC, x.export_id
 LIMIT $1
"""

# (field, sign) per ledger kind; a settlement of a clawback carries the clawback's
# reverses_payment_id (":clawback"): settled, the money came back; failed, the clawback is void.
_FIELDS = {"payment": (("instructed_minor", 1),), "clawback": (("clawed_back_minor", 1),),
           "settled": (("paid_minor", 1),), "failed": (("failed_minor", 1),),
           "returned": (("paid_minor", -1), ("returned_minor", 1)),
           "settled:clawback": (("paid_minor", -1),), "failed:clawback": (("clawed_back_minor", -1),)}


def contract_money(money_rows: list[tuple[str, str, str, int]], provisional_rows: list[tuple[str, str, int]]
                   ) -> tuple[ContractMoney, ...]:
    """Per (contract, currency), from the ledger's sums per kind and the provisional sums."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    for contract_id, currency, kind, amount in money_rows:
        sums = found.setdefault((contract_id, currency), {})
        for name, sign in _FIELDS[kind]:
            sums[name] = sums.get(name, 0) + sign * amount
    for contract_id, currency, amount in provisional_rows:
        found.setdefault((contract_id, currency), {})["provisional_minor"] = amount
    return tuple(ContractMoney(contract_id, currency, **sums)  # type: ignore[arg-type]
                 for (contract_id, currency), sums in sorted(found.items()))


async def read_overview(pool: asyncpg.Pool, payer: str | None = None) -> Overview:
    """Every contract's money; `payer`: only that payer's (a tenant's operator, docs/tenancy.md)."""
    async with pool.acquire() as connection:
        money = [(r["contract_id"], r["currency"].strip(), r["kind"], int(r["amount"]))
                 for r in await connection.fetch(_MONEY, payer)]
        provisional = [(r["contract_id"], r["currency"] or "", int(r["amount"]))
                       for r in await connection.fetch(_PROVISIONAL, payer)]
        clawbacks = await connection.fetch(_CLAWBACKS, payer)
        watermarks = await connection.fetch("SELECT partition, today FROM verifier_clocks ORDER BY partition")
        runs = await connection.fetch(_RUNS, PAYOUT_RUNS_SHOWN, payer)
    by_reason: dict[tuple[str, str, str], int] = {}
    for row in clawbacks:
        outcome = OutcomeNow(row["status"], row["reason"], 0) if row["status"] is not None else None
        key = (row["contract_id"], adjustment_reason(outcome), row["currency"].strip())
        by_reason[key] = by_reason.get(key, 0) + int(row["amount_minor"])
    return Overview(
        contracts=contract_money(money, provisional),
        clawed_back_by_reason=tuple((c, r, cur, amount) for (c, r, cur), amount in sorted(by_reason.items())),
        watermarks=tuple((int(r["partition"]), r["today"]) for r in watermarks),
        payout_runs=tuple((r["export_id"], r["execution_date"], r["created_at"], r["currency"].strip(),
                           int(r["lines"]), int(r["amount"])) for r in runs),
    )
