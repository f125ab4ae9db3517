"""Which pending payments go into a payout file, and what each line carries (pure).

A payout file pays each approved payment (an instruction still pending: not settled,
not failed, not clawed back) exactly once. The payment id is the line's end-to-end
reference, so the bank's answer (camt.054) names the payment it settles. A payment
already in an earlier payout file is never put in another: it is reported as
exported, with the file it went out in (`already_exported`), and the adapter records
every exported payment under a primary key, so even two exports racing cannot repeat
one.

A payment is left out with a named reason, and not marked, when its payee cannot be
paid by the file asked for: the finance office fixes the master data and exports again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.domain.institutions import Institution, InstitutionRegistry, PaymentMethod


class PayoutFormat(StrEnum):
    PAIN_001 = "pain.001"  # ISO 20022 credit transfers (pain.001.001.03), for the bank
    CSV = "csv"            # one line per payment, for an ERP or the NemKonto run


class LeftOut(StrEnum):
    """Why a pending payment is not in this payout file (it stays pending, unmarked)."""

    PAYEE_NOT_REGISTERED = "payee_not_registered"
    PAYEE_WITHOUT_PAYMENT_METHOD = "payee_without_payment_method"
    # pain.001 transfers to an IBAN; a NemKonto payee goes in the CSV instead.
    PAYEE_NOT_BANK_TRANSFER = "payee_not_bank_transfer"
    PAYER_WITHOUT_IBAN = "payer_without_iban"


@dataclass(frozen=True)
class Payable:
    """A pending payment instruction as the ledger holds it."""

    payment_id: str
    contract_id: str
    outcome_id: str
    payer: str
    payee: str
    amount_minor: int
    currency: str
    occurred_on: dt.date


@dataclass(frozen=True)
class PayoutLine:
    """One line of a payout file: the payment and both parties' master data, frozen at
    export time (a reissued file is identical even if the registry changed since)."""

    payment_id: str
    contract_id: str
    outcome_id: str
    occurred_on: dt.date
    amount_minor: int
    currency: str
    payer: str
    payer_name: str
    payer_iban: str | None
    payer_bic: str | None
    payee: str
    payee_name: str
    payee_cvr: str | None
    payee_ean: str | None
    payee_iban: str | None
    payee_bic: str | None
    payment_method: PaymentMethod


@dataclass(frozen=True)
class PayoutPlan:
    export_id: str
    lines: tuple[PayoutLine, ...]
    already_exported: tuple[tuple[str, str], ...]  # (payment id, export id it went out in)
    left_out: tuple[tuple[str, LeftOut], ...]       # (payment id, why)


def export_id_of(payment_ids: Iterable[str], output_format: PayoutFormat) -> str:
    """Derived from what the file pays, so the same lines always make the same id. It is
    the pain.001 message id (35 characters at most): a bank refuses a message id it has
    already received, a second guard against paying a file twice."""
    digest = hashlib.sha256("\n".join([output_format.value, *sorted(payment_ids)]).encode()).hexdigest()
    return f"STAFET-{digest[:28]}"


def _refusal(payer: Institution | None, payee: Institution | None, output_format: PayoutFormat) -> LeftOut | None:
    if payee is None:
        return LeftOut.PAYEE_NOT_REGISTERED
    if payee.payment_method is None:
        return LeftOut.PAYEE_WITHOUT_PAYMENT_METHOD
    if output_format == PayoutFormat.PAIN_001:
        if payee.payment_method != PaymentMethod.BANK_TRANSFER:
            return LeftOut.PAYEE_NOT_BANK_TRANSFER
        if payer is None or payer.iban is None:
            return LeftOut.PAYER_WITHOUT_IBAN
    return None


def plan_payout(payables: Iterable[Payable], registry: InstitutionRegistry,
                exported: Mapping[str, str], output_format: PayoutFormat) -> PayoutPlan:
    """`exported` maps every payment id ever exported to its export id."""
    lines: list[PayoutLine] = []
    already: list[tuple[str, str]] = []
    left_out: list[tuple[str, LeftOut]] = []
    for p in sorted(payables, key=lambda x: (x.payer, x.currency, x.payment_id)):
        if p.payment_id in exported:
            already.append((p.payment_id, exported[p.payment_id]))
            continue
        payer, payee = registry.get(p.payer), registry.get(p.payee)
        refusal = _refusal(payer, payee, output_format)
        if refusal is not None:
            left_out.append((p.payment_id, refusal))
            continue
        assert payee is not None
        assert payee.payment_method is not None
        lines.append(PayoutLine(
            payment_id=p.payment_id, contract_id=p.contract_id, outcome_id=p.outcome_id,
            occurred_on=p.occurred_on, amount_minor=p.amount_minor, currency=p.currency,
            payer=p.payer, payer_name=payer.name if payer else p.payer,
            payer_iban=payer.iban if payer else None, payer_bic=payer.bic if payer else None,
            payee=p.payee, payee_name=payee.name, payee_cvr=payee.cvr, payee_ean=payee.ean,
            payee_iban=payee.iban, payee_bic=payee.bic, payment_method=payee.payment_method))
    return PayoutPlan(export_id_of((x.payment_id for x in lines), output_format), tuple(lines),
                      tuple(already), tuple(left_out))
