"""The ledger database's side of payout runs and bank answers.

`export_payout` runs in one transaction under an advisory lock: read what is owed in the
date range and which payments are out in a live run, plan (pure `plan_payout`), have the
caller write the run's file durably (temporary file, fsync, rename), then record the run
with its file's name, SHA-256, size and bytes, its lines and its states. The commit
comes last: a file that cannot be written raises inside the transaction and marks
nothing; a crash after the rename and before the commit leaves a file whose run the
database does not hold (the next run gets the same id, and a bank refuses a message id
twice).

A payment is out while a live run (not voided, not rejected) holds it and the bank has
not rejected it (pain.002) nor returned it since (one `returned` ledger entry frees one
run line); it is owed while its latest settlement is none or `returned`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from services.ledger.provenance import unproven_entries
from shared.domain.contracts.payments import IssuedInstruction, derived_from
from shared.domain.events import PaymentKind
from shared.domain.finance.payouts import Payable, PayoutFormat, PayoutLine, PayoutPlan, plan_payout
from shared.domain.finance.profiles import BankProfile
from shared.domain.finance.runs import LIVE, RunRefusal, RunState, refusal
from shared.domain.finance.settlements import Known, PaymentState
from shared.domain.institutions import InstitutionRegistry, PaymentMethod
from shared.platform.trust import TrustedKeys

_EXPORT_LOCK_KEY = 0x57AFE8  # one payout run (or change of a run's state) at a time per database

# Owed: a payment instruction whose latest settlement is none or a return, and that its
# clawbacks do not reverse in full. Since corrections became differences (docs/contracts.md,
# "Finality"), a clawback may take back part of a payment; such a payment is still paid in
# full and its partial clawback stays owed back by the payee (recovered as any clawback of
# a paid payment is), rather than the payment never reaching a payout file at all. Netting
# the two in one transfer would move less money; it is not done yet (see docs/ledger.md).
# A payment of an outcome an institution disputes (an open dispute, or one whose
# correction was requested) is held: in no run until an operator decides the dispute
# (services/ledger/disputes.py, DOMAIN.md "Finality": a dispute holds the outcome's payments).
# An upheld one holds them too until the correction's money is in (`_upheld_holding`).
_PAYABLE = """
SELECT p.payment_id, p.contract_id, p.outcome_id, p.payer, p.payee, p.amount_minor,
       p.currency, p.occurred_on, p.subject, p.trigger_event_id
  FROM ledger_entries p
 WHERE p.kind = 'payment' AND p.occurred_on BETWEEN $1 AND $2 AND ($3::text IS NULL OR p.payer = $3)
   AND coalesce((SELECT s.kind FROM ledger_entries s
                  WHERE s.payment_id = p.payment_id AND s.kind IN ('settled', 'failed', 'returned')
                  ORDER BY s.sequence DESC LIMIT 1), 'returned') = 'returned'
   AND p.amount_minor > coalesce((SELECT sum(c.amount_minor) FROM ledger_entries c
                                   WHERE c.kind = 'clawback' AND c.reverses_payment_id = p.payment_id), 0)
   AND NOT EXISTS (SELECT 1 FROM ledger_dispute_states d
                    WHERE d.state IN ('open', 'correction_requested')
                      AND d.outcome_key = p.contract_id || '|' || p.outcome_id || '|' || p.subject
                                          || '|' || p.trigger_event_id)
 ORDER BY p.sequence
"""

# Upheld disputes of these outcomes, each with the correcting event its decision names,
# and every payment and clawback of those outcomes the ledger holds.
_UPHELD = """
SELECT outcome_key, latest_record ->> 'correcting_event_id' AS event_id FROM ledger_dispute_states
 WHERE state = 'upheld' AND outcome_key = ANY($1::text[])
"""
_OF_OUTCOMES = """
SELECT payment_id, kind, reverses_payment_id, payee, payee_role,
       contract_id || '|' || outcome_id || '|' || subject || '|' || coalesce(trigger_event_id, '') AS outcome_key
  FROM ledger_entries
 WHERE kind IN ('payment', 'clawback')
   AND contract_id || '|' || outcome_id || '|' || subject || '|' || coalesce(trigger_event_id, '') = ANY($1::text[])
 ORDER BY sequence
"""

# Each run's state: its latest state row (a run without one was written before runs had states).
_RUN_STATE = """
coalesce((SELECT s.state FROM payout_run_states s WHERE s.run_id = e.export_id ORDER BY s.n DESC LIMIT 1),
         'written')
"""

_LINE_COLUMNS = ("payment_id, contract_id, outcome_id, occurred_on, amount_minor, currency, payer, payer_name,"
                 " payer_iban, payer_bic, payee, payee_name, payee_cvr, payee_ean, payee_iban, payee_bic,"
                 " payment_method, transfer_id, payee_kind, payee_cost_centre")


@dataclass(frozen=True)
class WrittenFile:
    """A run's file, durably on disk."""

    name: str
    sha256: str
    size_bytes: int
    content: bytes
    written_at: dt.datetime


@dataclass(frozen=True)
class PayoutRun:
    run_id: str
    run_number: int | None
    format: PayoutFormat
    profile: str | None
    date_from: dt.date
    date_to: dt.date
    execution_date: dt.date
    created_at: dt.datetime
    state: RunState
    file_name: str | None
    sha256: str | None
    size_bytes: int | None
    content: bytes | None
    lines: tuple[PayoutLine, ...]

    @property
    def export_id(self) -> str:
        return self.run_id


PayoutExport = PayoutRun  # the name before runs had states


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    run_number: int | None
    state: RunState
    created_at: dt.datetime
    format: str
    profile: str | None
    payments: int
    transfers: int
    totals: tuple[tuple[str, int], ...]  # (currency, minor units)
    file_name: str | None
    sha256: str | None
    size_bytes: int | None


async def out_in_live_runs(connection: asyncpg.Connection, payment_ids: Sequence[str]) -> dict[str, str]:
    """Each payment that is out in a live run, and that run (the latest)."""
    rows = await connection.fetch(f"""
        SELECT l.payment_id, l.export_id, e.created_at, {_RUN_STATE} AS state,
               EXISTS (SELECT 1 FROM payout_rejections r
                        WHERE r.run_id = l.export_id AND r.payment_id = l.payment_id) AS rejected
          FROM payout_lines l JOIN payout_exports e USING (export_id)
         WHERE l.payment_id = ANY($1::text[])
         ORDER BY e.created_at, l.export_id""", list(payment_ids))
    returns = {r["payment_id"]: int(r["n"]) for r in await connection.fetch(
        "SELECT payment_id, count(*) AS n FROM ledger_entries WHERE kind = 'returned'"
        " AND payment_id = ANY($1::text[]) GROUP BY payment_id", list(payment_ids))}
    live: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if RunState(r["state"]) in LIVE and not r["rejected"]:
            live[r["payment_id"]].append(r["export_id"])
    return {payment_id: runs[-1] for payment_id, runs in live.items() if len(runs) > returns.get(payment_id, 0)}


class SeveralPayers(Exception):
    """Payments of more than one payer are owed and no payer was named: a run's file pays
    from one payer's account (its debtor), so each payer's run is made on its own."""

    def __init__(self, payers: Sequence[str]) -> None:
        super().__init__(", ".join(payers))
        self.payers = tuple(payers)


async def export_payout(connection: asyncpg.Connection, registry: InstitutionRegistry, *,
                        date_from: dt.date, date_to: dt.date, output_format: PayoutFormat,
                        execution_date: dt.date, now: dt.datetime, profile: BankProfile | None = None,
                        write: Callable[[PayoutPlan], WrittenFile] | None = None,
                        proof: tuple[TrustedKeys, str] | None = None, payer: str | None = None) -> PayoutPlan:
    """Plan a run of the payments owed in the range; if it has lines, write its file
    (`write`) and record the run, its lines and its states, all or nothing. `proof`: whose
    signatures make an entry payable and the journal they are on; a payment whose entry no
    signed instruction yields is left out as `unproven_entry` (services/ledger/provenance.py).
    `payer`: only that payer's payments (a tenant's run, docs/tenancy.md); None: every
    payer's, which must then be one payer (a run pays from one account): else
    `SeveralPayers`, nothing written."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _EXPORT_LOCK_KEY)
        rows = await connection.fetch(_PAYABLE, date_from, date_to, payer)
        held = await _upheld_holding(connection, {_outcome_key(r) for r in rows})
        rows = [r for r in rows if _outcome_key(r) not in held]
        unproven = await _unproven_payments(connection, [r["payment_id"] for r in rows], *proof) if proof else set()
        payables = [Payable(r["payment_id"], r["contract_id"], r["outcome_id"], r["payer"], r["payee"],
                            int(r["amount_minor"]), r["currency"].strip(), r["occurred_on"]) for r in rows]
        out = await out_in_live_runs(connection, [p.payment_id for p in payables])
        run_number = int(await connection.fetchval("SELECT count(*) FROM payout_exports")) + 1
        plan = plan_payout(payables, registry, out, output_format, run_number=run_number, profile=profile,
                           unproven=unproven)
        if not plan.lines:
            return plan
        payers = sorted({line.payer for line in plan.lines})
        if len(payers) > 1:
            raise SeveralPayers(payers)
        written = write(plan) if write is not None else None
        await connection.execute(
            "INSERT INTO payout_exports (export_id, format, date_from, date_to, execution_date, created_at,"
            " run_number, profile, file_name, sha256, size_bytes, content)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            plan.run_id, output_format.value, date_from, date_to, execution_date, now, run_number,
            profile.id if profile else None, written.name if written else None,
            written.sha256 if written else None, written.size_bytes if written else None,
            written.content if written else None)
        await connection.executemany(
            f"INSERT INTO payout_lines (export_id, line, {_LINE_COLUMNS}) VALUES"
            " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
            [(plan.run_id, n, x.payment_id, x.contract_id, x.outcome_id, x.occurred_on, x.amount_minor,
              x.currency, x.payer, x.payer_name, x.payer_iban, x.payer_bic, x.payee, x.payee_name,
              x.payee_cvr, x.payee_ean, x.payee_iban, x.payee_bic, x.payment_method.value, x.transfer_id,
              x.payee_kind, x.payee_cost_centre)
             for n, x in enumerate(plan.lines, start=1)])
        await connection.executemany(
            "INSERT INTO payout_run_states (run_id, n, state, at, detail) VALUES ($1, $2, $3, $4, $5)",
            [(plan.run_id, 1, RunState.CREATED.value, now, ""),
             (plan.run_id, 2, RunState.WRITTEN.value, written.written_at if written else now,
              written.name if written else "")])
    return plan


def _outcome_key(row: asyncpg.Record) -> str:
    return f"{row['contract_id']}|{row['outcome_id']}|{row['subject']}|{row['trigger_event_id'] or ''}"


async def _upheld_holding(connection: asyncpg.Connection, outcome_keys: set[str]) -> set[str]:
    """The outcomes whose dispute is upheld but whose correction has not reached the
    ledger yet: the decision names the correcting event, and the verifier's adjustment
    (a top-up or clawback whose id derives from that event) comes later, through its
    outbox, the journal and the ledger. Released before it, a run would pay the amount
    the dispute said was wrong; so such an outcome stays held until the ledger holds an
    instruction derived from the named event (`derived_from`: provable from the ids)."""
    upheld = {r["outcome_key"]: r["event_id"]
              for r in await connection.fetch(_UPHELD, sorted(outcome_keys)) if r["event_id"]}
    if not upheld:
        return set()
    instructions: dict[str, list[IssuedInstruction]] = defaultdict(list)
    for r in await connection.fetch(_OF_OUTCOMES, sorted(upheld)):
        instructions[r["outcome_key"]].append(IssuedInstruction(
            r["payment_id"], PaymentKind(r["kind"]), r["reverses_payment_id"], r["outcome_key"], r["payee"],
            r["payee_role"]))
    return {key for key, event_id in upheld.items() if not derived_from(event_id, instructions[key])}


async def _unproven_payments(connection: asyncpg.Connection, payment_ids: Sequence[str], trust: TrustedKeys,
                             journal_topic: str) -> set[str]:
    rows = await connection.fetch("SELECT * FROM ledger_entries WHERE kind = 'payment' AND"
                                  " payment_id = ANY($1::text[]) ORDER BY sequence", list(payment_ids))
    by_sequence = {int(r["sequence"]): str(r["payment_id"]) for r in rows}
    return {by_sequence[sequence] for sequence, _ in await unproven_entries(connection, rows, trust, journal_topic)}


async def recorded_run(connection: asyncpg.Connection, run_id: str) -> PayoutRun | None:
    """A run exactly as recorded: its lines, its state, its file's bytes."""
    head = await connection.fetchrow(
        f"SELECT e.*, {_RUN_STATE} AS state FROM payout_exports e WHERE e.export_id = $1", run_id)
    if head is None:
        return None
    rows = await connection.fetch(
        f"SELECT {_LINE_COLUMNS} FROM payout_lines WHERE export_id = $1 ORDER BY line", run_id)
    lines = tuple(PayoutLine(**{**dict(r), "currency": r["currency"].strip(),
                                "amount_minor": int(r["amount_minor"]),
                                "payment_method": PaymentMethod(r["payment_method"])}) for r in rows)
    return PayoutRun(head["export_id"], head["run_number"], PayoutFormat(head["format"]), head["profile"],
                     head["date_from"], head["date_to"], head["execution_date"], head["created_at"],
                     RunState(head["state"]), head["file_name"], head["sha256"],
                     None if head["size_bytes"] is None else int(head["size_bytes"]),
                     None if head["content"] is None else bytes(head["content"]), lines)


recorded_export = recorded_run


async def list_runs(connection: asyncpg.Connection) -> list[RunSummary]:
    rows = await connection.fetch(f"""
        SELECT e.export_id, e.run_number, e.created_at, e.format, e.profile, e.file_name, e.sha256, e.size_bytes,
               {_RUN_STATE} AS state,
               (SELECT count(*) FROM payout_lines l WHERE l.export_id = e.export_id) AS payments,
               (SELECT count(DISTINCT coalesce(l.transfer_id, l.payment_id)) FROM payout_lines l
                 WHERE l.export_id = e.export_id) AS transfers,
               (SELECT array_agg(l.currency || ':' || l.total ORDER BY l.currency)
                  FROM (SELECT currency, sum(amount_minor) AS total FROM payout_lines
                         WHERE export_id = e.export_id GROUP BY currency) l) AS totals
          FROM payout_exports e
         ORDER BY e.created_at, e.export_id""")
    return [RunSummary(r["export_id"], r["run_number"], RunState(r["state"]), r["created_at"], r["format"],
                       r["profile"], int(r["payments"]), int(r["transfers"]),
                       tuple((t.split(":")[0].strip(), int(t.split(":")[1])) for t in (r["totals"] or [])),
                       r["file_name"], r["sha256"], None if r["size_bytes"] is None else int(r["size_bytes"]))
            for r in rows]


class RunChangeRefused(Exception):
    def __init__(self, reason: RunRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def _append_state(connection: asyncpg.Connection, run_id: str, state: RunState, at: dt.datetime,
                        detail: str) -> None:
    n = int(await connection.fetchval(
        "SELECT coalesce(max(n), 0) FROM payout_run_states WHERE run_id = $1", run_id))
    await connection.execute("INSERT INTO payout_run_states (run_id, n, state, at, detail) VALUES ($1, $2, $3, $4, $5)",
                             run_id, n + 1, state.value, at, detail)


async def change_run_state(connection: asyncpg.Connection, run_id: str, wanted: RunState, *, now: dt.datetime,
                           detail: str = "") -> PayoutRun:
    """Move a run to `wanted` (sent, voided), or raise RunChangeRefused with the reason.
    A run some of whose payments the bank has booked as paid is never voided."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _EXPORT_LOCK_KEY)
        run = await recorded_run(connection, run_id)
        if run is None:
            raise RunChangeRefused(RunRefusal.NO_SUCH_RUN, f"no payout run {run_id!r}")
        problem = refusal(run.state, wanted)
        if problem is not None:
            raise RunChangeRefused(problem, f"run {run_id} is {run.state.value}: it cannot be {wanted.value}")
        if wanted == RunState.VOIDED:
            paid = await connection.fetch(
                "SELECT DISTINCT payment_id FROM ledger_entries WHERE kind = 'settled' AND payment_id = ANY($1::text[])"
                " AND recorded_at >= $2", [x.payment_id for x in run.lines], run.created_at)
            if paid:
                raise RunChangeRefused(RunRefusal.PAYMENTS_SETTLED,
                                       f"the bank booked {len(paid)} of run {run_id}'s payments as paid "
                                       f"(e.g. {paid[0]['payment_id']}): it cannot be voided")
        await _append_state(connection, run_id, wanted, now, detail)
    found = await recorded_run(connection, run_id)
    assert found is not None
    return found


@dataclass(frozen=True)
class StatusApplied:
    run_id: str
    state: RunState
    rejected_payments: tuple[tuple[str, str], ...]  # (payment id, reason)
    already_imported: bool


async def apply_status_report(connection: asyncpg.Connection, *, message_id: str, run_id: str,
                              group_status: str | None, rejected_run: bool,
                              rejected_transfers: Sequence[tuple[str, str]], now: dt.datetime) -> StatusApplied:
    """A pain.002 for a run: the run is acknowledged, or rejected whole (its payments are
    free); each transfer rejected on its own frees its payments, with the reason.
    Idempotent by the report's message id."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _EXPORT_LOCK_KEY)
        run = await recorded_run(connection, run_id)
        if run is None:
            raise RunChangeRefused(RunRefusal.NO_SUCH_RUN, f"no payout run {run_id!r} (the report's OrgnlMsgId)")
        if await connection.fetchval("SELECT 1 FROM payout_status_reports WHERE message_id = $1", message_id):
            return StatusApplied(run_id, run.state, (), True)
        wanted = RunState.REJECTED if rejected_run else RunState.ACKNOWLEDGED
        if run.state != wanted:
            problem = refusal(run.state, wanted)
            if problem is not None:
                raise RunChangeRefused(problem, f"run {run_id} is {run.state.value}: the bank's report says "
                                                f"{group_status or 'accepted'}"
                                       + ("; its payments may be in a later run: ask the bank to stop it"
                                          if run.state == RunState.VOIDED and not rejected_run else ""))
            await _append_state(connection, run_id, wanted, now, f"pain.002 {message_id}: {group_status or ''}")
        by_transfer: dict[str, list[str]] = defaultdict(list)
        for x in run.lines:
            by_transfer[x.transfer_id or x.payment_id].append(x.payment_id)
        rejected: list[tuple[str, str]] = []
        for transfer_id, reason in rejected_transfers:
            if transfer_id not in by_transfer:
                raise RunChangeRefused(RunRefusal.NO_SUCH_RUN, f"run {run_id} has no transfer {transfer_id!r}")
            rejected.extend((payment_id, reason) for payment_id in by_transfer[transfer_id])
        await connection.executemany(
            "INSERT INTO payout_rejections (run_id, payment_id, reason, bank_reference, recorded_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            [(run_id, payment_id, reason, message_id, now) for payment_id, reason in rejected])
        await connection.execute(
            "INSERT INTO payout_status_reports (message_id, run_id, group_status, recorded_at) VALUES ($1, $2, $3, $4)",
            message_id, run_id, group_status, now)
    return StatusApplied(run_id, wanted, tuple(rejected), False)


async def transfers_named(connection: asyncpg.Connection, references: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Each transfer id among `references` and the payment ids it settles."""
    rows = await connection.fetch(
        "SELECT DISTINCT transfer_id, payment_id FROM payout_lines WHERE transfer_id = ANY($1::text[])"
        " ORDER BY transfer_id, payment_id", list(references))
    found: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        found[r["transfer_id"]].append(r["payment_id"])
    return {k: tuple(v) for k, v in found.items()}


_STATE_OF_KIND = {"settled": PaymentState.PAID, "failed": PaymentState.FAILED, "returned": PaymentState.RETURNED}


async def ledger_payments(connection: asyncpg.Connection, payment_ids: Sequence[str]) -> dict[str, Known]:
    """What the ledger knows of each payment a bank answer names: amount, where it stands
    (its latest settlement), and every settlement id it holds."""
    rows = await connection.fetch(
        "SELECT payment_id, kind, amount_minor, currency, settlement_id FROM ledger_entries"
        " WHERE payment_id = ANY($1::text[]) AND kind IN ('payment', 'clawback', 'settled', 'failed', 'returned')"
        " ORDER BY sequence", list(payment_ids))
    known: dict[str, Known] = {}
    for r in rows:
        if r["kind"] in ("payment", "clawback"):
            known[r["payment_id"]] = Known(int(r["amount_minor"]), r["currency"].strip(), PaymentState.PENDING,
                                           frozenset(), r["kind"] == "payment")
        elif (k := known.get(r["payment_id"])) is not None:
            known[r["payment_id"]] = Known(k.amount_minor, k.currency, _STATE_OF_KIND[r["kind"]],
                                           k.settlement_ids | {r["settlement_id"]}, k.is_payment)
    return known
