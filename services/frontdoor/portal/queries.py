"""What the portal reads, always for one institution: the ledger's entries whose payee it
is, the payout files they went out in, and (for a line opened) the verifier's decision,
the contract version and the child's facts. Read-only (services/frontdoor/sql/004_portal.sql).

Bounded: a statement reads at most STATEMENT_ENTRIES_MAX entries (the newest) and says so
when there were more; a line's drill-down reads one subject's stream, which the verifier
bounds itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import asyncpg

from services.frontdoor.portal.drilldown import LineDetail, line_detail
from services.frontdoor.portal.statement import (
    LedgerRow,
    OutcomeNow,
    PaymentState,
    PayoutRow,
    ProvisionalLine,
    Statement,
    StatementLine,
    assemble,
    provisional_line,
    statement_lines,
)
from shared.domain.contracts.model import Contract
from shared.domain.events import Transition

STATEMENT_ENTRIES_MAX = 5000

_ENTRIES = """
SELECT * FROM (
    SELECT sequence, kind, payment_id, reverses_payment_id, contract_id, contract_version, outcome_id,
           subject, currency, amount_minor, occurred_on, settled_on, bank_reference, failure_reason, payer
      FROM ledger_entries
     WHERE payee = $1 AND payee_role = 'institution'
     ORDER BY sequence DESC
     LIMIT $2) newest
 ORDER BY sequence
"""

_PAYOUTS = """
SELECT l.payment_id, l.export_id, x.execution_date
  FROM payout_lines l JOIN payout_exports x USING (export_id)
 WHERE l.payee = $1 AND l.payment_id = ANY($2::text[])
 ORDER BY x.created_at, l.export_id
"""  # a payment may be in several runs (one voided, or paid again after a return): the latest wins

# The decision on the outcome each payment is for: the instruction names its trigger, and
# the outcome's key is contract|outcome|subject|trigger (shared/domain/contracts/payments.py).
_OUTCOMES = """
SELECT p.payment_id, o.status, o.reason, o.owed_minor, o.decision
  FROM verifier_payments p
  JOIN verifier_outcomes o
    ON o.outcome_key = p.contract_id || '|' || (p.instruction::json ->> 'outcome_id') || '|' || p.subject
                       || '|' || (p.instruction::json ->> 'trigger_event_id')
 WHERE p.payment_id = ANY($1::text[])
"""


# Payments an open dispute of their outcome holds out of payout runs (services/ledger/payouts.py).
_HELD = """
SELECT e.payment_id
  FROM ledger_entries e
  JOIN ledger_dispute_states d
    ON d.outcome_key = e.contract_id || '|' || e.outcome_id || '|' || e.subject || '|' || e.trigger_event_id
 WHERE e.payee = $1 AND e.kind = 'payment' AND e.payment_id = ANY($2::text[])
   AND d.state IN ('open', 'correction_requested')
"""

# A payment after the first of the same outcome to the same payee: a top-up (a correction
# after finality moved the money by the difference).
_TOP_UPS = """
SELECT payment_id FROM (
    SELECT payment_id, row_number() OVER (PARTITION BY contract_id, outcome_id, subject, trigger_event_id
                                          ORDER BY sequence) AS n
      FROM ledger_entries
     WHERE payee = $1 AND payee_role = 'institution' AND kind = 'payment') mine
 WHERE n > 1 AND payment_id = ANY($2::text[])
"""


def _row(record: asyncpg.Record) -> LedgerRow:
    return LedgerRow(record["kind"], record["payment_id"], record["reverses_payment_id"], record["contract_id"],
                     int(record["contract_version"]), record["outcome_id"], record["subject"],
                     record["currency"].strip(), int(record["amount_minor"]), record["occurred_on"],
                     record["settled_on"], record["bank_reference"], record["failure_reason"],
                     record.get("payer") or "")


async def read_statement(pool: asyncpg.Pool, institution: str) -> tuple[Statement, bool]:
    """The institution's statement, and whether older entries were left out (bound)."""
    async with pool.acquire() as connection:
        records = await connection.fetch(_ENTRIES, institution, STATEMENT_ENTRIES_MAX + 1)
        truncated = len(records) > STATEMENT_ENTRIES_MAX
        rows = [_row(r) for r in records[-STATEMENT_ENTRIES_MAX:]] if truncated else [_row(r) for r in records]
        payment_ids = sorted({r.payment_id for r in rows if r.kind == "payment"})
        payouts = {r["payment_id"]: PayoutRow(r["payment_id"], r["export_id"], r["execution_date"])
                   for r in await connection.fetch(_PAYOUTS, institution, payment_ids)}
        reversed_ids = sorted({r.reverses_payment_id for r in rows if r.kind == "clawback" and r.reverses_payment_id})
        outcomes = {r["payment_id"]: OutcomeNow(r["status"], r["reason"], int(r["owed_minor"]))
                    for r in await connection.fetch(_OUTCOMES, reversed_ids)}
        held = {r["payment_id"] for r in await connection.fetch(_HELD, institution, payment_ids)}
        top_ups = {r["payment_id"] for r in await connection.fetch(_TOP_UPS, institution, payment_ids)}
    return assemble(institution, statement_lines(rows, payouts, outcomes, held, top_ups)), truncated


async def read_line(pool: asyncpg.Pool, institution: str, payment_id: str) -> LineDetail | None:
    """One of the institution's lines, opened; None when the institution has no such line
    (another institution's payment is "not found", exactly like one that does not exist)."""
    async with pool.acquire() as connection:
        records = await connection.fetch(
            "SELECT sequence, kind, payment_id, reverses_payment_id, contract_id, contract_version, outcome_id,"
            " subject, currency, amount_minor, occurred_on, settled_on, bank_reference, failure_reason, payer"
            " FROM ledger_entries WHERE payee = $1 AND payee_role = 'institution' AND payment_id = $2"
            " ORDER BY sequence", institution, payment_id)
        rows = [_row(r) for r in records]
        if not any(r.kind in ("payment", "clawback") for r in rows):
            return None
        instruction = next(r for r in rows if r.kind in ("payment", "clawback"))
        payouts = {r["payment_id"]: PayoutRow(r["payment_id"], r["export_id"], r["execution_date"])
                   for r in await connection.fetch(_PAYOUTS, institution, [payment_id])}
        decided = await connection.fetchrow(_OUTCOMES, [instruction.reverses_payment_id or payment_id])
        contract_text = await connection.fetchval(
            "SELECT contract FROM verifier_contracts WHERE contract_id = $1 AND version = $2",
            instruction.contract_id, instruction.contract_version)
        stream = await connection.fetch(
            "SELECT transition FROM verifier_events WHERE subject = $1 ORDER BY version", instruction.subject)
    outcomes = {} if decided is None else {
        instruction.reverses_payment_id or payment_id:
            OutcomeNow(decided["status"], decided["reason"], int(decided["owed_minor"]))}
    line: StatementLine = statement_lines(rows, payouts, outcomes)[0]
    decision = json.loads(decided["decision"]) if decided is not None else None
    contract = Contract.model_validate_json(contract_text) if contract_text is not None else None
    transitions = [Transition.model_validate_json(r["transition"]) for r in stream]
    return line_detail(line, institution, decision, contract, transitions)


# Provisional outcomes: verified (or waiting out their sustainment) and not yet final,
# stored by the verifier with their expected payees. Found by the institution's name among
# the decision's payees (jsonb containment: [["alsskolen"]] is in [["alsskolen", 1383014], ...]).
PROVISIONAL_MAX = 2000
_PROVISIONAL = """
SELECT o.outcome_key, o.decision, c.contract::json -> 'caps' ->> 'review_days' AS review_days
  FROM verifier_outcomes o
  JOIN verifier_contracts c
    ON c.contract_id = o.contract_id AND c.version = (o.decision::json ->> 'contract_version')::int
 WHERE o.status IN ('pending_review', 'pending_sustainment')
   AND o.decision::jsonb -> 'payees' @> jsonb_build_array(jsonb_build_array($1::text))
 ORDER BY o.decision::json ->> 'occurred_on', o.outcome_key
 LIMIT $2
"""


def provisional_reference(outcome_key: str) -> str:
    return hashlib.sha256(outcome_key.encode()).hexdigest()[:32]


async def event_time(connection: asyncpg.Connection) -> dt.date:
    """The verifier's event time: its finality frontier (verifier_frontier.final_through, issue
    26: an outcome is final once it reaches the decision date); on a database migrated before
    the frontier existed, the latest of the partitions' clocks."""
    frontier = await connection.fetchval(
        "SELECT to_regclass('verifier_frontier') IS NOT NULL"
        " AND has_table_privilege('verifier_frontier', 'SELECT')")
    if frontier:
        found = await connection.fetchval("SELECT final_through FROM verifier_frontier")
    else:
        found = await connection.fetchval("SELECT max(today) FROM verifier_clocks")
    return found if isinstance(found, dt.date) else dt.date(1900, 1, 1)


async def read_provisional(pool: asyncpg.Pool, institution: str) -> tuple[list[ProvisionalLine], dt.date]:
    """The institution's provisional entitlements, oldest first, and the event time they are
    counted from."""
    async with pool.acquire() as connection:
        now = await event_time(connection)
        rows = await connection.fetch(_PROVISIONAL, institution, PROVISIONAL_MAX)
    lines = []
    for row in rows:
        found = provisional_line(provisional_reference(row["outcome_key"]), institution, json.loads(row["decision"]),
                                 int(row["review_days"] or 0), now)
        if found is not None:
            lines.append(found)
    return lines, now


async def read_provisional_line(pool: asyncpg.Pool, institution: str, reference: str
                                ) -> tuple[ProvisionalLine, LineDetail] | None:
    """One provisional entitlement opened, like a statement line (drilldown.py)."""
    async with pool.acquire() as connection:
        now = await event_time(connection)
        rows = await connection.fetch(_PROVISIONAL.replace("SELECT o.outcome_key,", "SELECT o.outcome_key, o.subject,"),
                                      institution, PROVISIONAL_MAX)
        row = next((r for r in rows if provisional_reference(r["outcome_key"]) == reference), None)
        if row is None:
            return None
        decision = json.loads(row["decision"])
        contract_text = await connection.fetchval(
            "SELECT contract FROM verifier_contracts WHERE contract_id = $1 AND version = $2",
            decision["contract_id"], int(decision["contract_version"]))
        stream = await connection.fetch(
            "SELECT transition FROM verifier_events WHERE subject = $1 ORDER BY version", row["subject"])
    line = provisional_line(reference, institution, decision, int(row["review_days"] or 0), now)
    if line is None:
        return None
    shown = StatementLine(reference, "provisional", line.contract_id, line.contract_version, line.outcome_id,
                          line.counts_on, line.currency, line.own_minor, PaymentState.PROVISIONAL, line.decided_on)
    contract = Contract.model_validate_json(contract_text) if contract_text is not None else None
    transitions = [Transition.model_validate_json(r["transition"]) for r in stream]
    return line, line_detail(shown, institution, decision, contract, transitions)
