"""The bank's answers become settlement records, or refusals with a reason code (pure).

Every answer names a payment by the end-to-end id our payout file gave it. It becomes a
`Settlement` only if the ledger holds that payment, has not settled it, and the bank
moved exactly the amount and currency the ledger owes; anything else is refused with a
reason code and never published. The settlement id is derived from the payment id, so
importing the same notification twice (or the same booking from two notifications)
publishes the same settlement, which the ledger applies once.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from shared.domain.events import Settlement, SettlementStatus

_PAYMENT_ID = re.compile(r"^[0-9a-f]{32}$")


class ImportRefusal(StrEnum):
    UNKNOWN_PAYMENT = "unknown_payment"          # not a payment id the ledger holds
    DUPLICATE_REFERENCE = "duplicate_reference"  # the same payment twice in one file
    ALREADY_SETTLED = "already_settled"          # the ledger has its settlement already
    AMOUNT_MISMATCH = "amount_mismatch"          # the bank moved another amount or currency


class Answer(Protocol):
    """A bank answer from either file format."""

    @property
    def end_to_end_id(self) -> str: ...
    @property
    def paid(self) -> bool: ...
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


class Known(Protocol):
    @property
    def amount_minor(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def settled(self) -> bool: ...


@dataclass(frozen=True)
class Refused:
    end_to_end_id: str
    reason: ImportRefusal
    detail: str


def settlement_id_of(payment_id: str) -> str:
    # One answer per payment: paid or failed, whichever the bank reported first.
    return f"bank-{payment_id}"


def reconcile(answers: Sequence[Answer], known: Mapping[str, Known]) -> tuple[list[Settlement], list[Refused]]:
    settlements: list[Settlement] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    for answer in answers:
        reference = answer.end_to_end_id
        payment = known.get(reference) if _PAYMENT_ID.match(reference) else None
        if payment is None:
            refused.append(Refused(reference, ImportRefusal.UNKNOWN_PAYMENT, "no such payment in the ledger"))
            continue
        if reference in seen:
            refused.append(Refused(reference, ImportRefusal.DUPLICATE_REFERENCE, "named twice in this file"))
            continue
        seen.add(reference)
        if payment.settled:
            refused.append(Refused(reference, ImportRefusal.ALREADY_SETTLED, "the ledger has settled it already"))
            continue
        if (answer.amount_minor, answer.currency) != (payment.amount_minor, payment.currency):
            refused.append(Refused(reference, ImportRefusal.AMOUNT_MISMATCH,
                                   f"the bank moved {answer.amount_minor} {answer.currency} (minor units), "
                                   f"the ledger owes {payment.amount_minor} {payment.currency}"))
            continue
        settlements.append(Settlement(
            settlement_id=settlement_id_of(reference), payment_id=reference,
            status=SettlementStatus.PAID if answer.paid else SettlementStatus.FAILED,
            settled_on=answer.booked_on, bank_reference=answer.bank_reference if answer.paid else None,
            reason=None if answer.paid else (answer.reason or "returned by the bank")[:500]))
    return settlements, refused
