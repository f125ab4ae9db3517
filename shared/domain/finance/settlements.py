"""The bank's answers become settlement records, or refusals with a reason code (pure).

Every answer names a transfer by the end-to-end id our payout file gave it: a transfer
id (one payee's payments of a run, aggregated) or, for files written before transfers
were aggregated, a payment id. An answer for a transfer must move exactly the sum the
ledger owes for its payments, and becomes one settlement per payment.

An answer is `paid` (the bank booked the transfer), `returned` (it came back after
booking: the payment is owed again and goes in a later run), or `failed` (a CSV answer:
the payment will not be made, its money goes back to the budget). Answers are applied
in file order, so a transfer booked and returned in one notification is paid, then
returned. Each becomes a settlement only if it fits where the payment stands; anything
else is refused with a reason code and never published.

Idempotent by the bank's reference: the settlement id is derived from the payment, the
answer's kind and the bank reference, so importing a notification twice (or the same
booking from two notifications) publishes the same settlements, which the ledger applies
once; an answer the ledger already holds is reported as already imported, not refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shared.domain.events import Settlement, SettlementStatus

_PAYMENT_ID = re.compile(r"^[0-9a-f]{32}$")


class AnswerStatus(StrEnum):
    PAID = "paid"
    RETURNED = "returned"
    FAILED = "failed"


class ImportRefusal(StrEnum):
    UNKNOWN_PAYMENT = "unknown_payment"          # not a transfer or payment id the ledger holds
    DUPLICATE_REFERENCE = "duplicate_reference"  # the same answer (kind, bank reference) twice in one file
    ALREADY_SETTLED = "already_settled"          # paid or failed already, by another answer
    NOT_PAID = "not_paid"                        # a return of a payment the bank has not booked as paid
    AMOUNT_MISMATCH = "amount_mismatch"          # the bank moved another amount or currency


class Answer(Protocol):
    """A bank answer from either file format."""

    @property
    def end_to_end_id(self) -> str: ...
    @property
    def status(self) -> AnswerStatus: ...
    @property
    def amount_minor(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def booked_on(self) -> dt.date: ...
    @property
    def bank_reference(self) -> str: ...
    @property
    def reason(self) -> str | None: ...


class PaymentState(StrEnum):
    """Where a payment stands in the ledger: its latest settlement, or none."""

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    RETURNED = "returned"


@dataclass(frozen=True)
class Known:
    """What the ledger knows of a payment an answer names."""

    amount_minor: int
    currency: str
    state: PaymentState
    settlement_ids: frozenset[str] = frozenset()
    is_payment: bool = True  # False: a clawback (money owed back), which is never returned

    @property
    def settled(self) -> bool:
        return self.state in (PaymentState.PAID, PaymentState.FAILED)


@dataclass(frozen=True)
class Refused:
    end_to_end_id: str
    reason: ImportRefusal
    detail: str


@dataclass(frozen=True)
class Reconciled:
    settlements: tuple[Settlement, ...]
    refused: tuple[Refused, ...]
    already_imported: tuple[Settlement, ...]  # held by the ledger already: nothing to publish


_STATUS = {AnswerStatus.PAID: SettlementStatus.PAID, AnswerStatus.RETURNED: SettlementStatus.RETURNED,
           AnswerStatus.FAILED: SettlementStatus.FAILED}
_NEXT = {  # (state, answer) -> the state after it; a pair not here is refused
    (PaymentState.PENDING, AnswerStatus.PAID): PaymentState.PAID,
    (PaymentState.PENDING, AnswerStatus.FAILED): PaymentState.FAILED,
    (PaymentState.RETURNED, AnswerStatus.PAID): PaymentState.PAID,
    (PaymentState.RETURNED, AnswerStatus.FAILED): PaymentState.FAILED,
    (PaymentState.PAID, AnswerStatus.RETURNED): PaymentState.RETURNED,
}


def settlement_id_of(payment_id: str, status: AnswerStatus = AnswerStatus.PAID, bank_reference: str = "") -> str:
    """One settlement per payment, kind of answer and bank reference."""
    digest = hashlib.sha256(f"{payment_id}\n{status.value}\n{bank_reference}".encode()).hexdigest()
    return f"bank-{status.value}-{digest[:32]}"


def reconcile(answers: Sequence[Answer], known: Mapping[str, Known],
              transfers: Mapping[str, Sequence[str]] | None = None) -> Reconciled:
    """`known`: the ledger's payments by id; `transfers`: each transfer id's payment ids."""
    transfers = transfers or {}
    state = {payment_id: k.state for payment_id, k in known.items()}
    settlements: list[Settlement] = []
    already: list[Settlement] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    for answer in answers:
        reference = answer.end_to_end_id
        payment_ids = list(transfers.get(reference, ()))
        if not payment_ids and _PAYMENT_ID.match(reference):
            payment_ids = [reference]
        if not payment_ids or any(p not in known for p in payment_ids):
            refused.append(Refused(reference, ImportRefusal.UNKNOWN_PAYMENT, "no such transfer or payment in the ledger"))
            continue
        made = [_settlement(p, answer) for p in payment_ids]
        if any(s.settlement_id in seen for s in made):
            refused.append(Refused(reference, ImportRefusal.DUPLICATE_REFERENCE,
                                   f"{answer.status.value} with bank reference {answer.bank_reference} twice in this file"))
            continue
        seen.update(s.settlement_id for s in made)
        if all(s.settlement_id in known[s.payment_id].settlement_ids for s in made):
            already.extend(made)
            continue
        owed = sum(known[p].amount_minor for p in payment_ids)
        currencies = {known[p].currency for p in payment_ids}
        if (answer.amount_minor, {answer.currency}) != (owed, currencies):
            refused.append(Refused(reference, ImportRefusal.AMOUNT_MISMATCH,
                                   f"the bank moved {answer.amount_minor} {answer.currency} (minor units), "
                                   f"the ledger owes {owed} {'/'.join(sorted(currencies))}"))
            continue
        problem = _misfit(answer.status, [(state[p], known[p]) for p in payment_ids])
        if problem is not None:
            refused.append(Refused(reference, *problem))
            continue
        for s in made:
            state[s.payment_id] = _NEXT[(state[s.payment_id], answer.status)]
        settlements.extend(made)
    return Reconciled(tuple(settlements), tuple(refused), tuple(already))


def _misfit(status: AnswerStatus, payments: Sequence[tuple[PaymentState, Known]]) -> tuple[ImportRefusal, str] | None:
    for current, payment in payments:
        if status == AnswerStatus.RETURNED and not payment.is_payment:
            return ImportRefusal.NOT_PAID, "a clawback is never returned"
        if (current, status) in _NEXT:
            continue
        if status == AnswerStatus.RETURNED:
            return ImportRefusal.NOT_PAID, f"the ledger has it {current.value}, not paid: nothing to return"
        return ImportRefusal.ALREADY_SETTLED, f"the ledger has it {current.value} already"
    return None


def _settlement(payment_id: str, answer: Answer) -> Settlement:
    paid = answer.status == AnswerStatus.PAID
    return Settlement(
        settlement_id=settlement_id_of(payment_id, answer.status, answer.bank_reference), payment_id=payment_id,
        status=_STATUS[answer.status], settled_on=answer.booked_on,
        bank_reference=answer.bank_reference,
        reason=None if paid else (answer.reason or "returned by the bank")[:500])
