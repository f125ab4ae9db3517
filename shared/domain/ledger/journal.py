"""The ledger journal, decided: which records become entries, which are rejected.

Pure: given the journal records of a batch (in journal order) and what the ledger
already knows about the payments they reference, return the entries to append and the
settlements to reject. Because the journal's order is the chain's order and this
function is deterministic, replaying the journal rebuilds the same chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.ledger.investments import InvestmentEntry, RefusedInvestment
from shared.domain.ledger.postings import Entry, entry_for, settlement_entry
from shared.domain.tenancy import Tenancy, TenancyRefusal


class SettlementRejection(StrEnum):
    UNKNOWN_PAYMENT = "unknown_payment"
    ALREADY_SETTLED = "already_settled"
    NOT_PAID = "not_paid"  # a return of an instruction that is not settled as paid
    # Settled or returned by a finance principal of another payer (shared/domain/tenancy.py).
    FOREIGN_TENANT_SETTLEMENT = TenancyRefusal.FOREIGN_TENANT_SETTLEMENT.value


@dataclass(frozen=True)
class KnownPayment:
    instruction: PaymentInstruction
    settlement_id: str | None  # the latest settlement applied to it, if any
    # Every settlement applied to it, in journal order, with its status.
    settlements: tuple[tuple[str, SettlementStatus], ...] = ()

    @property
    def state(self) -> SettlementStatus | None:
        """The latest settlement's status: None while pending."""
        return self.settlements[-1][1] if self.settlements else None

    def applied(self, settlement: Settlement) -> KnownPayment:
        return KnownPayment(self.instruction, settlement.settlement_id,
                            (*self.settlements, (settlement.settlement_id, settlement.status)))


@dataclass(frozen=True)
class RejectedSettlement:
    settlement: Settlement
    reason: SettlementRejection
    message: str


@dataclass(frozen=True)
class JournalPlan:
    entries: tuple[Entry, ...]
    rejected: tuple[RejectedSettlement, ...]
    duplicates: int
    # Investment records (shared/domain/ledger/investments.py), decided in their own runs.
    investments: tuple[InvestmentEntry, ...] = ()
    refused_investments: tuple[RefusedInvestment, ...] = ()

    @property
    def written(self) -> int:
        return len(self.entries) + len(self.investments)

    @classmethod
    def merged(cls, plans: Sequence[JournalPlan]) -> JournalPlan:
        return cls(tuple(e for p in plans for e in p.entries), tuple(r for p in plans for r in p.rejected),
                   sum(p.duplicates for p in plans), tuple(e for p in plans for e in p.investments),
                   tuple(r for p in plans for r in p.refused_investments))


def plan_journal(records: Sequence[PaymentInstruction | Settlement],
                 known: Mapping[str, KnownPayment], tenancy: Tenancy | None = None) -> JournalPlan:
    """`tenancy`: when given, a settlement counts only from a finance principal of the
    payment's payer (`settled_by`); else `foreign_tenant_settlement`."""
    payments = dict(known)
    entries: list[Entry] = []
    rejected: list[RejectedSettlement] = []
    duplicates = 0
    for record in records:
        if isinstance(record, PaymentInstruction):
            if record.payment_id in payments:
                duplicates += 1  # a redelivery or a replay: already in the ledger
                continue
            payments[record.payment_id] = KnownPayment(record, None)
            entries.append(entry_for(record))
            continue
        target = payments.get(record.payment_id)
        if target is None:
            rejected.append(RejectedSettlement(
                record, SettlementRejection.UNKNOWN_PAYMENT,
                f"no instruction {record.payment_id} in the ledger"))
        elif tenancy is not None and (
                refusal := tenancy.settlement_refusal(record.settled_by, target.instruction.payer)) is not None:
            rejected.append(RejectedSettlement(record, SettlementRejection.FOREIGN_TENANT_SETTLEMENT,
                                               refusal.message))
        elif any(known_id == record.settlement_id for known_id, _ in target.settlements):
            duplicates += 1  # the same settlement delivered twice
        elif (problem := _misfit(target, record)) is not None:
            rejected.append(RejectedSettlement(record, *problem))
        else:
            payments[record.payment_id] = target.applied(record)
            entries.append(settlement_entry(target.instruction, record, len(target.settlements) + 1))
    return JournalPlan(tuple(entries), tuple(rejected), duplicates)


def _misfit(target: KnownPayment, record: Settlement) -> tuple[SettlementRejection, str] | None:
    """Why the settlement does not fit where the instruction stands, or None: paid or
    failed while pending or returned; returned (payments only) while paid."""
    state = target.state
    if record.status == SettlementStatus.RETURNED:
        if state == SettlementStatus.PAID and target.instruction.kind == PaymentKind.PAYMENT:
            return None
        return (SettlementRejection.NOT_PAID,
                f"instruction {target.instruction.payment_id} is not settled as paid: nothing to return")
    if state is None or state == SettlementStatus.RETURNED:
        return None
    return (SettlementRejection.ALREADY_SETTLED,
            f"instruction {target.instruction.payment_id} was already settled by {target.settlement_id}")
