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

from shared.domain.events import PaymentInstruction, Settlement
from shared.domain.ledger.investments import InvestmentEntry, RefusedInvestment
from shared.domain.ledger.postings import Entry, entry_for, settlement_entry


class SettlementRejection(StrEnum):
    UNKNOWN_PAYMENT = "unknown_payment"
    ALREADY_SETTLED = "already_settled"


@dataclass(frozen=True)
class KnownPayment:
    instruction: PaymentInstruction
    settlement_id: str | None  # the settlement already applied to it, if any


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
                 known: Mapping[str, KnownPayment]) -> JournalPlan:
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
        elif target.settlement_id == record.settlement_id:
            duplicates += 1  # the same settlement delivered twice
        elif target.settlement_id is not None:
            rejected.append(RejectedSettlement(
                record, SettlementRejection.ALREADY_SETTLED,
                f"instruction {record.payment_id} was already settled by {target.settlement_id}"))
        else:
            payments[record.payment_id] = KnownPayment(target.instruction, record.settlement_id)
            entries.append(settlement_entry(target.instruction, record))
    return JournalPlan(tuple(entries), tuple(rejected), duplicates)
