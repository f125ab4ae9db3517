"""Which pending payments go into a payout run, and what each transfer carries (pure).

A payout run pays each approved payment (an instruction still owed: not settled, not
failed, not clawed back, or returned by the bank since) once. A payment already out in
a live run (not voided, not rejected by the bank, not returned since) is never put in
another: it is reported with the run it is in (`already_exported`). The adapter
(services/ledger/payouts.py) records the run and marks its payments in the transaction
that commits only once the run's file is durably written.

Payments are aggregated: one transfer per payer, payee and currency in a run, whose
end-to-end id (`transfer_id_of`) is derived from the payment ids it settles; the
payment ids travel in its structured remittance and in the payee's remittance advice,
and the bank's answer for the transfer is reconciled back to each payment.

A payment is left out with a named reason, and not marked, when its payee cannot be
paid by the file asked for: the finance office fixes the master data and runs again.
Payments to the payer's own institutions (`owned_by` in the registry) never go to the
bank: they are internal postings (`--format postings`, shared/domain/finance/postings.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.domain.finance.profiles import BankProfile
from shared.domain.institutions import Institution, InstitutionRegistry, PaymentMethod


class PayoutFormat(StrEnum):
    PAIN_001 = "pain.001"   # ISO 20022 credit transfers (pain.001.001.03), for the bank
    CSV = "csv"             # one line per payment, for an ERP or the NemKonto run
    POSTINGS = "postings"   # internal journal postings for the payer's own institutions


class LeftOut(StrEnum):
    """Why a pending payment is not in this run (it stays pending, unmarked)."""

    PAYEE_NOT_REGISTERED = "payee_not_registered"
    PAYEE_WITHOUT_PAYMENT_METHOD = "payee_without_payment_method"
    # A NemKonto payee, and the bank profile takes no NemKonto transfer (or none was given).
    PAYEE_NOT_BANK_TRANSFER = "payee_not_bank_transfer"
    PAYER_WITHOUT_IBAN = "payer_without_iban"
    # The payer's own institution: an internal posting, never a bank transfer.
    PAYEE_INTERNAL = "payee_internal"
    # In a postings run: a payee that is not the payer's own institution.
    PAYEE_NOT_INTERNAL = "payee_not_internal"
    # The ledger entry is not derived from a signed instruction (a forged row: docs/security.md).
    UNPROVEN_ENTRY = "unproven_entry"


@dataclass(frozen=True)
class Payable:
    """A payment instruction still owed, as the ledger holds it."""

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
    """One payment of a run: the payment and both parties' master data, frozen when the
    run is recorded (a reissued file is identical even if the registry changed since)."""

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
    transfer_id: str | None = None  # None: recorded before transfers were aggregated
    payee_kind: str | None = None
    payee_cost_centre: str | None = None


@dataclass(frozen=True)
class Transfer:
    """One credit transfer: every payment of a run from one payer to one payee in one
    currency. Its lines are in payment id order."""

    transfer_id: str
    lines: tuple[PayoutLine, ...]

    @property
    def first(self) -> PayoutLine:
        return self.lines[0]

    @property
    def amount_minor(self) -> int:
        return sum(x.amount_minor for x in self.lines)

    @property
    def currency(self) -> str:
        return self.first.currency

    @property
    def payment_ids(self) -> tuple[str, ...]:
        return tuple(x.payment_id for x in self.lines)


@dataclass(frozen=True)
class PayoutPlan:
    run_id: str
    lines: tuple[PayoutLine, ...]
    already_exported: tuple[tuple[str, str], ...]  # (payment id, run it is out in)
    left_out: tuple[tuple[str, LeftOut], ...]       # (payment id, why)

    @property
    def export_id(self) -> str:  # the name used before runs had states
        return self.run_id

    @property
    def transfers(self) -> tuple[Transfer, ...]:
        return transfers_of(self.lines)


def run_id_of(payment_ids: Iterable[str], output_format: PayoutFormat, run_number: int = 1) -> str:
    """Derived from what the run pays and how many runs came before it, so it is the same
    for the same history, and a run voided and made again gets a new id. It is the
    pain.001 message id (35 characters at most): a bank refuses a message id it has
    already received, a second guard against paying a file twice."""
    digest = hashlib.sha256("\n".join([output_format.value, str(run_number), *sorted(payment_ids)])
                            .encode()).hexdigest()
    return f"STAFET-{digest[:28]}"


def export_id_of(payment_ids: Iterable[str], output_format: PayoutFormat) -> str:
    return run_id_of(payment_ids, output_format)


def transfer_id_of(payment_ids: Iterable[str]) -> str:
    """A transfer's end-to-end id (35 characters at most): derived from the payments it
    settles, so the bank's answer names exactly those payments."""
    return "T" + hashlib.sha256("\n".join(sorted(payment_ids)).encode()).hexdigest()[:32]


def transfers_of(lines: Iterable[PayoutLine]) -> tuple[Transfer, ...]:
    """Lines grouped into their transfers (a line recorded before aggregation is a
    transfer of its own, named by its payment id), in a stable order."""
    groups: dict[str, list[PayoutLine]] = defaultdict(list)
    for line in lines:
        groups[line.transfer_id or line.payment_id].append(line)
    transfers = [Transfer(key, tuple(sorted(group, key=lambda x: x.payment_id))) for key, group in groups.items()]
    return tuple(sorted(transfers, key=lambda t: (t.first.payer, t.currency, t.first.payment_method.value,
                                                  t.first.payee, t.transfer_id)))


def _refusal(payer: Institution | None, payee: Institution | None, payer_id: str, output_format: PayoutFormat,
             profile: BankProfile | None) -> LeftOut | None:
    if payee is None:
        return LeftOut.PAYEE_NOT_REGISTERED
    if output_format == PayoutFormat.POSTINGS:
        return None if payee.internal_to(payer_id) else LeftOut.PAYEE_NOT_INTERNAL
    if payee.internal_to(payer_id):
        return LeftOut.PAYEE_INTERNAL
    if payee.payment_method is None:
        return LeftOut.PAYEE_WITHOUT_PAYMENT_METHOD
    if output_format == PayoutFormat.PAIN_001:
        if payee.payment_method == PaymentMethod.NEMKONTO and (profile is None or profile.nemkonto is None):
            return LeftOut.PAYEE_NOT_BANK_TRANSFER
        if payer is None or payer.iban is None:
            return LeftOut.PAYER_WITHOUT_IBAN
    return None


def plan_payout(payables: Iterable[Payable], registry: InstitutionRegistry, out: Mapping[str, str],
                output_format: PayoutFormat, *, run_number: int = 1,
                profile: BankProfile | None = None, unproven: Collection[str] = frozenset()) -> PayoutPlan:
    """`out` maps every payment that is out in a live run to that run's id; `unproven`:
    the payments whose ledger entry no signed instruction yields, never paid."""
    lines: list[PayoutLine] = []
    already: list[tuple[str, str]] = []
    left_out: list[tuple[str, LeftOut]] = []
    for p in sorted(payables, key=lambda x: (x.payer, x.currency, x.payment_id)):
        if p.payment_id in out:
            already.append((p.payment_id, out[p.payment_id]))
            continue
        if p.payment_id in unproven:
            left_out.append((p.payment_id, LeftOut.UNPROVEN_ENTRY))
            continue
        payer, payee = registry.get(p.payer), registry.get(p.payee)
        refusal = _refusal(payer, payee, p.payer, output_format, profile)
        if refusal is not None:
            left_out.append((p.payment_id, refusal))
            continue
        assert payee is not None
        lines.append(PayoutLine(
            payment_id=p.payment_id, contract_id=p.contract_id, outcome_id=p.outcome_id,
            occurred_on=p.occurred_on, amount_minor=p.amount_minor, currency=p.currency,
            payer=p.payer, payer_name=payer.name if payer else p.payer,
            payer_iban=payer.iban if payer else None, payer_bic=payer.bic if payer else None,
            payee=p.payee, payee_name=payee.name, payee_cvr=payee.cvr, payee_ean=payee.ean,
            payee_iban=payee.iban, payee_bic=payee.bic,
            payment_method=payee.payment_method or PaymentMethod.BANK_TRANSFER,
            payee_kind=payee.kind, payee_cost_centre=payee.cost_centre))
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for x in lines:
        groups[(x.payer, x.payee, x.currency)].append(x.payment_id)
    transfer_of = {pid: transfer_id_of(ids) for ids in groups.values() for pid in ids}
    lines = [PayoutLine(**{**x.__dict__, "transfer_id": transfer_of[x.payment_id]}) for x in lines]
    return PayoutPlan(run_id_of((x.payment_id for x in lines), output_format, run_number), tuple(lines),
                      tuple(already), tuple(left_out))
