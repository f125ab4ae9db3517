"""Money by state (docs/contracts.md, "Finality"): provisional (expected, instructs
nothing yet), final (instructed, net of clawbacks), paid (settled by the bank), and every
clawback by its reason. Read from the verifier's and the ledger's tables; figures are
totals per contract, never about one subject.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import asyncpg

from cli.reporting.disclosure import mark
from cli.reporting.page import money
from shared.domain.indicators.compute import Suppression

# A clawback's reason, as the instruction's cause says: the type of the correcting
# event, or `recheck` (no fact caused it: a budget's grant moved, or a contract version).
_CAUSES = """
SELECT p.contract_id, p.instruction::json ->> 'kind' AS kind, p.instruction::json ->> 'currency' AS currency,
       p.reason, e.transition::json -> 'body' ->> 'type' AS cause_type,
       sum((p.instruction::json ->> 'amount_minor')::bigint) AS amount_minor, count(*) AS instructions
  FROM verifier_payments p
  LEFT JOIN verifier_events e ON e.subject = p.subject AND e.event_id = p.cause_event_id
 GROUP BY 1, 2, 3, 4, 5
"""
_PROVISIONAL = """
SELECT contract_id, sum(owed_minor) AS owed_minor, count(*) AS outcomes
  FROM verifier_outcomes WHERE status = 'pending_review' GROUP BY contract_id
"""
_PAID = """
SELECT p.contract_id, sum(CASE WHEN p.kind = 'payment' THEN p.amount_minor ELSE -p.amount_minor END) AS paid_minor
  FROM ledger_entries p
 WHERE p.kind IN ('payment', 'clawback')
   AND EXISTS (SELECT 1 FROM ledger_entries s WHERE s.payment_id = p.payment_id AND s.kind = 'settled')
 GROUP BY p.contract_id
"""


@dataclass
class ContractMoney:
    currency: str = "DKK"
    provisional_minor: int = 0
    provisional_outcomes: int = 0
    instructed_minor: int = 0
    clawed_back_minor: int = 0
    paid_minor: int = 0
    clawbacks_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def final_minor(self) -> int:
        """Instructed net of clawbacks: what the payer owes on final outcomes."""
        return self.instructed_minor - self.clawed_back_minor


MoneyByState = dict[str, ContractMoney]


def reason_label(reason: str, cause_type: str | None) -> str:
    if reason == "correction":
        return {"retraction": "retraction", "amendment": "amendment"}.get(cause_type or "", "late fact")
    return "no correcting event" if reason == "recheck" else reason


async def money_by_state(database_url: str) -> MoneyByState:
    connection = await asyncpg.connect(database_url)
    try:
        states: MoneyByState = defaultdict(ContractMoney)
        for row in await connection.fetch(_CAUSES):
            state = states[row["contract_id"]]
            state.currency = row["currency"]
            if row["kind"] == "payment":
                state.instructed_minor += int(row["amount_minor"])
            else:
                state.clawed_back_minor += int(row["amount_minor"])
                label = reason_label(row["reason"], row["cause_type"])
                state.clawbacks_by_reason[label] = state.clawbacks_by_reason.get(label, 0) + int(row["amount_minor"])
        for row in await connection.fetch(_PROVISIONAL):
            states[row["contract_id"]].provisional_minor += int(row["owed_minor"])
            states[row["contract_id"]].provisional_outcomes += int(row["outcomes"])
        try:
            for row in await connection.fetch(_PAID):
                states[row["contract_id"]].paid_minor += int(row["paid_minor"])
        except asyncpg.UndefinedTableError:
            pass  # the verifier's database alone: nothing settled here
        return dict(states)
    finally:
        await connection.close()


def print_money_by_state(states: MoneyByState, echo: Callable[[str], None], withheld: Collection[str] = ()) -> None:
    """`withheld`: contracts whose money a publication may not show (cli/reporting/disclosure.py:
    with its price per point it would give back a suppressed cell); their row says so."""
    echo("\nMoney by state (provisional: expected, instructs nothing until the watermark passes its decision date):")
    width = max([34, *(len(contract_id) + 1 for contract_id in states)])
    hidden = mark(Suppression.REVEALS_SUPPRESSED_CELL)
    echo(f"  {'contract':<{width}}{'provisional':>21}{'final (net)':>21}{'paid':>21}  clawed back, by reason")
    for contract_id, state in sorted(states.items()):
        if contract_id in withheld:
            echo(f"  {contract_id:<{width}}{hidden:>21} {hidden:>21} {hidden:>21}  {hidden}")
            continue
        reasons = ", ".join(f"{label} {money(amount, state.currency)}"
                            for label, amount in sorted(state.clawbacks_by_reason.items())) or "none"
        echo(f"  {contract_id:<{width}}{money(state.provisional_minor, state.currency):>21}"
             f"{money(state.final_minor, state.currency):>21}{money(state.paid_minor, state.currency):>21}  {reasons}")
