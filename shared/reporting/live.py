"""The report's facts from the running system: the verifier's decisions and the ledger."""

from __future__ import annotations

import asyncpg

from shared.contracts.model import Contract
from shared.institutions import InstitutionRegistry
from shared.reporting.data import Institution, MoneyRow, OutcomeRow, ReportData


async def from_database(database_url: str, registry: InstitutionRegistry, title: str) -> ReportData:
    connection = await asyncpg.connect(database_url)
    try:
        contracts = [Contract.model_validate_json(r["contract"]) for r in await connection.fetch(
            "SELECT contract FROM verifier_contracts ORDER BY contract_id, version")]
        outcomes = [OutcomeRow(r["contract_id"], r["outcome_id"], r["status"], r["reason"], r["occurred_on"],
                               int(r["owed_minor"]), r["subject"])
                    for r in await connection.fetch(
                        "SELECT contract_id, decision::json->>'outcome_id' AS outcome_id, status, reason,"
                        " (decision::json->>'occurred_on')::date AS occurred_on, owed_minor, subject"
                        " FROM verifier_outcomes")]
        money = [MoneyRow(r["contract_id"], r["outcome_id"], r["payee"], r["kind"], int(r["amount_minor"]),
                          r["occurred_on"], r["subject"], bool(r["settled"]))
                 for r in await connection.fetch(
                     "SELECT e.contract_id, e.outcome_id, e.payee, e.kind, e.amount_minor, e.occurred_on, e.subject,"
                     " EXISTS (SELECT 1 FROM ledger_entries s WHERE s.entry_id = 'settlement:' || e.payment_id"
                     "         AND s.kind = 'settled') AS settled"
                     " FROM ledger_entries e WHERE e.kind IN ('payment', 'clawback')")]
    finally:
        await connection.close()
    institutions = {i.id: Institution(i.id, i.name, i.kind) for i in registry.all()}
    return ReportData(title, tuple(contracts), tuple(outcomes), tuple(money), institutions,
                      source="the live ledger and the verifier's decisions")
