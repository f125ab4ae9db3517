"""Exports for analysts: outcomes, payments and balances as CSV, JSON Lines or Parquet.

Each table is declared once here: its columns with a type and a description (the
documentation in docs/exports.md is generated from the same declaration, and a test
keeps the two equal) and the query that fills it. Rows are read with a server-side
cursor in chunks and written as they come, so an export's memory is bounded by the
chunk, not by the ledger. Money is integer minor units with its currency, as everywhere;
subjects are pseudonyms.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import IO

import asyncpg

from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.indicators.compute import measure
from shared.domain.indicators.model import IndicatorSet

CHUNK_ROWS = 10_000  # rows per fetch and per Parquet row group


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class ExportTable(StrEnum):
    OUTCOMES = "outcomes"
    PAYMENTS = "payments"
    BALANCES = "balances"
    # Statistics for publication, counted from the verifier's event store, small cells
    # suppressed; not a database table, so not in TABLES (docs/privacy.md, "Small cells").
    INDICATORS = "indicators"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # text, integer, decimal, date, timestamp, boolean
    description: str


@dataclass(frozen=True)
class TableSpec:
    description: str
    columns: tuple[Column, ...]
    query: str
    # Columns filled from the institution registry, not the database: (column, id column).
    names: tuple[tuple[str, str], ...] = ()

    def value(self, row: Mapping[str, object], column: str, registry_names: Mapping[str, str]) -> object:
        for name, source in self.names:
            if name == column:
                return registry_names.get(str(row[source]), "")
        return row[column]


TABLES: dict[ExportTable, TableSpec] = {
    ExportTable.OUTCOMES: TableSpec(
        "The verifier's latest decision per outcome (one row per contract, outcome, subject and trigger).",
        (Column("outcome_key", "text", "The outcome's identity: contract, outcome, subject, trigger "
                "(not the version: contract_version says which decided it)"),
         Column("contract_id", "text", "The contract"),
         Column("contract_version", "integer", "The contract version that decided"),
         Column("outcome_id", "text", "The outcome in the contract's rate card"),
         Column("subject", "text", "The subject's pseudonym (never a CPR number)"),
         Column("status", "text", "verified, rejected, capped or pending_sustainment"),
         Column("reason", "text", "The reason code of a rejection or cap; empty otherwise"),
         Column("occurred_on", "date", "When the outcome happened (the trigger's date)"),
         Column("trigger_event_id", "text", "The event that was the evidence"),
         Column("owed_minor", "integer", "Money owed for it, in minor units of currency"),
         Column("currency", "text", "ISO 4217 code")),
        "SELECT outcome_key, contract_id, (decision::json->>'contract_version')::int AS contract_version,"
        " decision::json->>'outcome_id' AS outcome_id, subject, status, coalesce(reason, '') AS reason,"
        " (decision::json->>'occurred_on')::date AS occurred_on,"
        " decision::json->>'trigger_event_id' AS trigger_event_id, owed_minor,"
        " decision::json->>'currency' AS currency FROM verifier_outcomes ORDER BY outcome_key"),
    ExportTable.PAYMENTS: TableSpec(
        "Every payment instruction and clawback in the ledger, with where it stands.",
        (Column("payment_id", "text", "Deterministic id; the end-to-end reference in payout files"),
         Column("kind", "text", "payment or clawback"),
         Column("reverses_payment_id", "text", "For a clawback: the payment it reverses; empty otherwise"),
         Column("contract_id", "text", "The contract"),
         Column("contract_version", "integer", "Its version"),
         Column("outcome_id", "text", "The outcome paid for"),
         Column("subject", "text", "The subject's pseudonym"),
         Column("payer", "text", "Institution id of the payer"),
         Column("payer_name", "text", "The payer's name in the institution registry (INSTITUTIONS_FILE)"),
         Column("payee", "text", "Institution id (or fallback account) paid"),
         Column("payee_name", "text", "The payee's name in the institution registry; empty if not registered"),
         Column("payee_role", "text", "institution or fallback"),
         Column("amount_minor", "integer", "Amount in minor units of currency (always positive)"),
         Column("currency", "text", "ISO 4217 code"),
         Column("occurred_on", "date", "The outcome's date"),
         Column("status", "text", "pending, paid, failed, returned (sent back by the bank: owed again), "
                                  "or reversed (a payment clawed back)"),
         Column("settled_on", "date", "When the bank paid or refused it; empty while pending"),
         Column("bank_reference", "text", "The bank's reference of a paid settlement"),
         Column("exported_in", "text", "The latest payout run (its id) it went out in; empty if none"),
         Column("trigger_event_id", "text", "The event that was the evidence"),
         Column("recorded_at", "timestamp", "When the ledger wrote it (UTC)")),
        "SELECT p.payment_id, p.kind, coalesce(p.reverses_payment_id, '') AS reverses_payment_id, p.contract_id,"
        " p.contract_version, p.outcome_id, p.subject, p.payer, p.payee, p.payee_role, p.amount_minor,"
        " trim(p.currency) AS currency, p.occurred_on,"
        " CASE WHEN c.payment_id IS NOT NULL THEN 'reversed' WHEN s.kind = 'settled' THEN 'paid'"
        "      WHEN s.kind IN ('failed', 'returned') THEN s.kind ELSE 'pending' END AS status,"
        " s.settled_on, coalesce(s.bank_reference, '') AS bank_reference,"
        " coalesce(x.export_id, '') AS exported_in, coalesce(p.trigger_event_id, '') AS trigger_event_id,"
        " p.recorded_at"
        " FROM ledger_entries p"
        # The latest settlement (paid, failed, or returned: owed again) and the latest payout run.
        " LEFT JOIN LATERAL (SELECT kind, settled_on, bank_reference FROM ledger_entries"
        "                     WHERE payment_id = p.payment_id AND kind IN ('settled', 'failed', 'returned')"
        "                     ORDER BY sequence DESC LIMIT 1) s ON true"
        " LEFT JOIN ledger_entries c ON c.kind = 'clawback' AND c.reverses_payment_id = p.payment_id"
        " LEFT JOIN LATERAL (SELECT l.export_id FROM payout_lines l JOIN payout_exports e USING (export_id)"
        "                     WHERE l.payment_id = p.payment_id ORDER BY e.created_at DESC, l.export_id DESC"
        "                     LIMIT 1) x ON true"
        " WHERE p.kind IN ('payment', 'clawback') ORDER BY p.sequence",
        names=(("payer_name", "payer"), ("payee_name", "payee"))),
    ExportTable.BALANCES: TableSpec(
        "Every ledger account's balance (credits minus debits), as `stafet ledger balances` shows it.",
        (Column("account", "text", "The account: kind:owner[:contract or state]"),
         Column("account_kind", "text", "budget, receivable or fallback; for investments investor, provider, "
                                        "fund or guarantee (docs/investment.md)"),
         Column("owner", "text", "The institution id that owns the account"),
         Column("detail", "text", "The rest of the account name: a contract (budget) or pending/paid"),
         Column("currency", "text", "ISO 4217 code"),
         Column("balance_minor", "integer", "Credits minus debits in minor units")),
        "SELECT account, split_part(account, ':', 1) AS account_kind, split_part(account, ':', 2) AS owner,"
        " substr(account, length(split_part(account, ':', 1)) + length(split_part(account, ':', 2)) + 3) AS detail,"
        " trim(currency) AS currency, (sum(credit_minor) - sum(debit_minor))::bigint AS balance_minor"
        " FROM ledger_lines GROUP BY account, currency ORDER BY account, currency"),
}


INDICATORS_DESCRIPTION = (
    "Every indicator of the definitions file per scope and year, counted from the verifier's event store "
    "(docs/indicators.md). A statistic for publication: a row about fewer subjects than MINIMUM_CELL "
    "(default 5), or whose numerator or its complement is, has no numbers, only `suppressed`.")
INDICATOR_COLUMNS = (
    Column("indicator_id", "text", "The indicator (examples/indicators/)"),
    Column("scope", "text", "The population measured: municipality, or an area's catchment"),
    Column("year", "integer", "The year measured (a school year by its autumn)"),
    Column("period", "text", "The period as the source writes it: 2019/2020, 2019, or the reference day"),
    Column("numerator", "integer", "Subjects counted; empty when suppressed"),
    Column("denominator", "integer", "Subjects in the population; empty when suppressed"),
    Column("percent", "decimal", "numerator / denominator in percent, two places; empty when suppressed"),
    Column("suppressed", "text", "The reason a row shows no numbers (too_few_subjects, ...); empty when shown"),
    Column("baseline_percent", "decimal", "The scope's published baseline; empty if none"),
    Column("baseline_year", "integer", "The baseline's year; empty if none"),
)


def indicator_rows(definitions: IndicatorSet, timelines: Sequence[SubjectTimeline], years: Sequence[int],
                   minimum_cell: int) -> list[dict[str, object]]:
    """The indicators export's rows, small cells suppressed (pure)."""
    rows: list[dict[str, object]] = []
    for indicator in definitions.indicators:
        for scope in definitions.scopes:
            baseline = next((b for b in indicator.baselines if b.scope == scope.name), None)
            for year in years:
                m = measure(indicator, timelines, year, scope=scope.name, institutions=scope.institutions,
                            minimum_cell=minimum_cell)
                rows.append({"indicator_id": m.indicator_id, "scope": m.scope, "year": m.year, "period": m.period,
                             "numerator": m.numerator, "denominator": m.denominator, "percent": m.percent,
                             "suppressed": m.suppressed.value if m.suppressed else "",
                             "baseline_percent": baseline.percent if baseline else None,
                             "baseline_year": baseline.year if baseline else None})
    return rows


def write_indicator_rows(rows: Sequence[dict[str, object]], output_format: ExportFormat, out: Path) -> int:
    if output_format == ExportFormat.PARQUET:
        raise ValueError("the indicators export is written as csv or jsonl")
    names = [c.name for c in INDICATOR_COLUMNS]
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = _row_writer(handle, output_format, names)
        for row in rows:
            values = [row[n] for n in names]
            if output_format == ExportFormat.CSV:
                writer(["" if v is None else str(v) for v in values])
            else:  # JSON: numbers as numbers, a decimal percentage exactly as printed
                writer([float(v) if isinstance(v, Decimal) else v for v in values])
    return len(rows)


async def _chunks(database_url: str, spec: TableSpec) -> AsyncIterator[list[asyncpg.Record]]:
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction(readonly=True, isolation="repeatable_read"):
            cursor = await connection.cursor(spec.query)
            while rows := await cursor.fetch(CHUNK_ROWS):
                yield rows
    finally:
        await connection.close()


def _plain(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


async def export_table(database_url: str, table: ExportTable, output_format: ExportFormat, out: Path,
                       registry_names: Mapping[str, str] | None = None) -> int:
    """Write the table to `out`; the number of rows written. `registry_names`: institution
    names by id, for the columns a table fills from the registry."""
    spec = TABLES[table]
    names = [c.name for c in spec.columns]
    known = registry_names or {}
    count = 0
    if output_format == ExportFormat.PARQUET:
        return await _export_parquet(database_url, spec, out, known)
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = _row_writer(handle, output_format, names)
        async for rows in _chunks(database_url, spec):
            for row in rows:
                writer([_plain(spec.value(row, n, known)) for n in names])
            count += len(rows)
    return count


def _row_writer(handle: IO[str], output_format: ExportFormat, names: Sequence[str]) -> Callable[[list[object]], object]:
    if output_format == ExportFormat.CSV:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(names)
        return writer.writerow  # type: ignore[no-any-return]

    def json_line(values: list[object]) -> None:
        handle.write(json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False) + "\n")
    return json_line



async def _export_parquet(database_url: str, spec: TableSpec, out: Path, known: Mapping[str, str]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def arrow_type(kind: str) -> pa.DataType:
        return {"text": pa.string(), "integer": pa.int64(), "date": pa.date32(),
                "timestamp": pa.timestamp("us", tz="UTC"), "boolean": pa.bool_()}[kind]

    schema = pa.schema([pa.field(c.name, arrow_type(c.type), metadata={"description": c.description})
                        for c in spec.columns], metadata={"description": spec.description})
    count = 0
    with pq.ParquetWriter(str(out), schema) as writer:
        async for rows in _chunks(database_url, spec):
            columns = {c.name: [spec.value(r, c.name, known) for r in rows] for c in spec.columns}
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            count += len(rows)
    return count


def columns_markdown() -> str:
    """docs/exports.md: every table's columns, generated from TABLES."""
    parts = ["# Exports for analysts\n",
             "`stafet export TABLE --format csv|jsonl|parquet --out FILE` writes one of the tables below from the",
             "live databases. Money is integer minor units with its currency; subjects are pseudonyms;",
             "dates are ISO 8601, timestamps UTC. Parquet files carry the same descriptions as field",
             "metadata. This file is generated from `cli/reporting/exports.py` (`stafet export --columns`).\n",
             "`outcomes`, `payments` and `balances` are records, one row per outcome, payment or account, exact",
             "to the øre, for finance and authorised analysts (read as the operator role); they are not",
             "statistics and are not for publication. `indicators` is a statistic for publication: small",
             "cells are suppressed. Anything published from the records goes through the same rule",
             "([privacy](privacy.md#small-cells)).\n"]
    declared = [(table.value, spec.description, spec.columns) for table, spec in TABLES.items()]
    declared.append((ExportTable.INDICATORS.value, INDICATORS_DESCRIPTION + " Written as csv or jsonl; "
                     "`--year` (repeatable) and `--indicators FILE` choose what.", INDICATOR_COLUMNS))
    for name, description, columns in declared:
        parts.append(f"## {name}\n\n{description}\n\n| column | type | meaning |\n|---|---|---|")
        parts.extend(f"| `{c.name}` | {c.type} | {c.description} |" for c in columns)
        parts.append("")
    return "\n".join(parts)
