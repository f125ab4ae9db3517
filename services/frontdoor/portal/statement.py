"""An institution's statement, assembled from what the ledger and the verifier hold.

Pure: the rows come in (queries.py reads them, always for one institution), the lines,
their payment state and the totals go out. A payment instruction is one line; the ledger's
settlement of it (paid, or returned by the bank) and the payout file it went out in are
its state, not lines of their own. A clawback is an adjustment line: negative, with the
reason in words (the outcome's decision as the verifier holds it now).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum


class PaymentState(StrEnum):
    PENDING = "pending"            # instructed, not yet in a payout file
    IN_PAYOUT = "in_payout"        # in a payout file handed to the bank, not yet booked
    PAID = "paid"                  # the bank booked it
    RETURNED = "returned"          # the bank returned it after booking (with its reason): owed again
    REFUSED = "refused"            # the bank refused it (failed): not paid, the ledger voids it to the budget
    ADJUSTMENT = "adjustment"      # a clawback: money owed back, or not to be paid
    PROVISIONAL = "provisional"    # an outcome in its review window: expected, not instructed


@dataclass(frozen=True)
class LedgerRow:
    """One ledger entry about the institution (kind payment, clawback, settled or failed)."""

    kind: str
    payment_id: str
    reverses_payment_id: str | None
    contract_id: str
    contract_version: int
    outcome_id: str
    subject: str
    currency: str
    amount_minor: int
    occurred_on: dt.date
    settled_on: dt.date | None = None
    bank_reference: str | None = None
    failure_reason: str | None = None
    payer: str = ""  # who pays (docs/tenancy.md): across a border, another municipality


@dataclass(frozen=True)
class PayoutRow:
    payment_id: str
    export_id: str
    execution_date: dt.date


@dataclass(frozen=True)
class OutcomeNow:
    """The verifier's latest decision on the outcome a payment is for."""

    status: str
    reason: str | None
    owed_minor: int


@dataclass(frozen=True)
class StatementLine:
    payment_id: str
    kind: str                      # payment or clawback
    contract_id: str
    contract_version: int
    outcome_id: str
    occurred_on: dt.date
    currency: str
    amount_minor: int              # signed: a clawback is negative
    state: PaymentState
    state_on: dt.date | None = None
    reference: str = ""            # bank reference, the bank's reason, or the payout file's id
    reverses_payment_id: str | None = None
    adjustment_reason: str | None = None  # a reason code, shown in words (pages.py)
    held: bool = False             # a payment an open dispute of its outcome keeps out of payout runs
    payer: str = ""  # the contract's payer tenant, which may be another municipality (docs/tenancy.md)


@dataclass(frozen=True)
class Total:
    key: tuple[str, ...]
    currency: str
    amount_minor: int


@dataclass(frozen=True)
class Statement:
    institution: str
    lines: tuple[StatementLine, ...]
    totals_by_state: tuple[Total, ...] = field(default=())
    totals_by_month_and_contract: tuple[Total, ...] = field(default=())
    total: tuple[Total, ...] = field(default=())


def adjustment_reason(original_outcome: OutcomeNow | None) -> str:
    """Why a payment was clawed back, as a code the pages put in words."""
    if original_outcome is None:
        return "outcome_unknown"
    if original_outcome.status == "rejected" and original_outcome.reason:
        return original_outcome.reason
    if original_outcome.status == "capped":
        return "capped"
    return "amount_recomputed"


def statement_lines(rows: Iterable[LedgerRow], payouts: Mapping[str, PayoutRow],
                    outcomes: Mapping[str, OutcomeNow], held: Collection[str] = (),
                    top_ups: Collection[str] = ()) -> list[StatementLine]:
    """One line per instruction, in the order the ledger recorded them. `outcomes` is keyed
    by payment id (the decision on the outcome the payment, or the reversed payment, is for).
    `held`: payments an open dispute holds; `top_ups`: payments that raise an earlier
    payment of the same outcome (a correction after finality: an adjustment, DOMAIN.md
    "Finality"), shown with the reason."""
    rows = list(rows)
    # In ledger order, so the latest settlement wins: paid, then returned by the bank, is returned.
    settled = {r.payment_id: r for r in rows if r.kind in ("settled", "failed", "returned")}
    lines: list[StatementLine] = []
    for row in rows:
        if row.kind == "payment":
            line = _payment_line(row, settled.get(row.payment_id), payouts.get(row.payment_id))
            if row.payment_id in top_ups:
                line = replace(line, adjustment_reason="amount_recomputed")
            if row.payment_id in held and line.state == PaymentState.PENDING:
                line = replace(line, held=True)
            lines.append(line)
        elif row.kind == "clawback":
            original = outcomes.get(row.reverses_payment_id or row.payment_id)
            lines.append(StatementLine(
                row.payment_id, "clawback", row.contract_id, row.contract_version, row.outcome_id, row.occurred_on,
                row.currency, -row.amount_minor, PaymentState.ADJUSTMENT, row.occurred_on,
                reverses_payment_id=row.reverses_payment_id, adjustment_reason=adjustment_reason(original),
                payer=row.payer))
    return lines


def _payment_line(row: LedgerRow, settlement: LedgerRow | None, payout: PayoutRow | None) -> StatementLine:
    state, state_on, reference = PaymentState.PENDING, None, ""
    if settlement is not None and settlement.kind == "settled":
        state, state_on, reference = PaymentState.PAID, settlement.settled_on, settlement.bank_reference or ""
    elif settlement is not None:
        state = PaymentState.RETURNED if settlement.kind == "returned" else PaymentState.REFUSED
        state_on, reference = settlement.settled_on, settlement.failure_reason or ""
    elif payout is not None:
        state, state_on, reference = PaymentState.IN_PAYOUT, payout.execution_date, payout.export_id
    return StatementLine(row.payment_id, "payment", row.contract_id, row.contract_version, row.outcome_id,
                         row.occurred_on, row.currency, row.amount_minor, state, state_on, reference,
                         payer=row.payer)


def _sum(keyed: Iterable[tuple[tuple[str, ...], str, int]]) -> tuple[Total, ...]:
    sums: dict[tuple[tuple[str, ...], str], int] = {}
    for key, currency, amount in keyed:
        sums[(key, currency)] = sums.get((key, currency), 0) + amount
    return tuple(Total(key, currency, amount) for (key, currency), amount in sorted(sums.items()))


def assemble(institution: str, lines: list[StatementLine]) -> Statement:
    """The lines with their totals: per payment state, per month and contract, overall.

    Money returned by the bank after booking is owed again (the ledger moves it back to
    pending), so it counts in the overall total; a payment the bank refused is void (the
    ledger moves it back to the payer's budget), so it does not. The totals per state say
    where the money is."""
    return Statement(
        institution=institution,
        lines=tuple(lines),
        totals_by_state=_sum(((line.state.value,), line.currency, line.amount_minor) for line in lines),
        totals_by_month_and_contract=_sum(
            ((line.occurred_on.strftime("%Y-%m"), line.contract_id), line.currency, line.amount_minor)
            for line in lines if line.state != PaymentState.REFUSED),
        total=_sum(((), line.currency, line.amount_minor) for line in lines if line.state != PaymentState.REFUSED),
    )


@dataclass(frozen=True)
class ProvisionalLine:
    """An outcome in its review window: expected money, no instruction yet (DOMAIN.md,
    "Finality"). `reference` is a hash of the outcome's key, so that the page's address
    does not carry the child's pseudonym."""

    reference: str
    contract_id: str
    contract_version: int
    outcome_id: str
    counts_on: dt.date            # the day the outcome counts
    decided_on: dt.date           # counts_on + the contract's review_days: final from then
    days_left: int                # until decided_on, from the verifier's event time now
    currency: str
    own_minor: int
    outcome_total_minor: int
    status: str

    @property
    def others_minor(self) -> int:
        return self.outcome_total_minor - self.own_minor


def provisional_line(reference: str, institution: str, decision: Mapping[str, object], review_days: int,
                     event_time: dt.date) -> ProvisionalLine | None:
    """The institution's part of a provisional outcome; None if the outcome pays it nothing."""
    payees = decision.get("payees") or []
    assert isinstance(payees, list)
    own = sum(int(amount) for payee, amount in payees if payee == institution)
    if own <= 0:
        return None
    counts_on = dt.date.fromisoformat(str(decision["occurred_on"]))
    decided_on = counts_on + dt.timedelta(days=review_days)
    return ProvisionalLine(
        reference=reference, contract_id=str(decision["contract_id"]),
        contract_version=int(str(decision["contract_version"])), outcome_id=str(decision["outcome_id"]),
        counts_on=counts_on, decided_on=decided_on, days_left=max(0, (decided_on - event_time).days),
        currency=str(decision["currency"]), own_minor=own, outcome_total_minor=int(str(decision["owed_minor"])),
        status=str(decision["status"]))
