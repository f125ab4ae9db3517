"""The report's facts from the running system: the verifier's decisions and the ledger,
and (when asked) the indicators and experiments counted from the verifier's event store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from cli.reporting.data import Institution, MoneyRow, OutcomeRow, ReportData
from cli.reporting.disclosure import indicator_cells, publishable, revealing_payments
from cli.reporting.evidence import Evidence, ExperimentResult, trend_years, trends
from cli.reporting.live_indicators import live_timelines
from cli.synthetic.trial import evaluate
from shared.domain.contracts.model import Contract
from shared.domain.indicators.experiment import Experiment, UnitAssigned, check_assignment
from shared.domain.indicators.model import IndicatorSet
from shared.domain.institutions import InstitutionRegistry


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
                     # Paid: the latest settlement is a payment (a return since makes it owed again).
                     " coalesce((SELECT s.kind = 'settled' FROM ledger_entries s WHERE s.payment_id = e.payment_id"
                     "           AND s.kind IN ('settled', 'failed', 'returned') ORDER BY s.sequence DESC LIMIT 1),"
                     "          false) AS settled"
                     " FROM ledger_entries e WHERE e.kind IN ('payment', 'clawback')")]
    finally:
        await connection.close()
    institutions = {i.id: Institution(i.id, i.name, i.kind) for i in registry.all()}
    return ReportData(title, tuple(contracts), tuple(outcomes), tuple(money), institutions,
                      source="the live ledger and the verifier's decisions")


async def published_from_database(database_url: str, registry: InstitutionRegistry, title: str,
                                  minimum_cell: int) -> ReportData:
    """The report's facts as a publication shows them: an indicator contract's money that
    would give back a suppressed cell is left out (cli/reporting/disclosure.py)."""
    data = await from_database(database_url, registry, title)
    measured = [c for c in data.contracts if c.indicator_outcomes]
    if not measured:
        return data
    cells = indicator_cells(measured, await live_timelines(database_url))
    return publishable(data, revealing_payments(measured, cells, minimum_cell))


async def live_evidence(database_url: str, definitions: IndicatorSet, minimum_cell: int,
                        experiments: Sequence[tuple[Experiment, Sequence[UnitAssigned]]] = (),
                        permutation_seed: int = 1) -> Evidence:
    """The indicators per year from the verifier's event store, small cells suppressed,
    and each experiment evaluated over the same subjects (its assignment checked first)."""
    timelines = await live_timelines(database_url)
    measurements = trends(definitions, timelines, trend_years(definitions, timelines), minimum_cell)
    results = []
    for experiment, assigned in experiments:
        check_assignment(experiment, assigned)
        # Pure and CPU-bound: off the event loop.
        estimates, left_out = await asyncio.to_thread(evaluate, experiment, definitions, assigned, timelines,
                                                      permutation_seed)
        results.append(ExperimentResult(experiment, tuple(estimates), tuple(left_out),
                                        "the verifier's event store"))
    return Evidence(definitions, measurements, tuple(results))
