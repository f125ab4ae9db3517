"""From outcome decisions to money: contract-wide caps, deterministic payment ids,
and reconciliation of what is owed now against what was already instructed.

Nothing is edited: when a decision changes (a retraction, an amendment, a late breaking
event), instructions that no longer hold are reversed by clawbacks that reference them,
and whatever is owed now is instructed afresh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shared.contracts.evaluation import OutcomeDecision, OutcomeStatus, scale_to_room
from shared.contracts.model import Contract
from shared.events import PaymentInstruction, PaymentKind

GENERATIONS_MAX = 1000  # a payment re-instructed after this many clawbacks is a bug


def outcome_key(decision: OutcomeDecision) -> str:
    return "|".join((decision.contract_id, str(decision.contract_version), decision.outcome_id,
                     decision.subject, decision.trigger_event_id))


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


@dataclass
class CapState:
    """What a contract has committed so far, for its total and per-period caps."""

    charged: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (year, owed)

    @property
    def total_minor(self) -> int:
        return sum(amount for _, amount in self.charged.values())

    def year_minor(self, year: int) -> int:
        return sum(amount for y, amount in self.charged.values() if y == year)


def apply_contract_caps(contract: Contract, subject: str,
                        decisions: Sequence[OutcomeDecision], state: CapState
                        ) -> tuple[OutcomeDecision, ...]:
    """Cap one subject's decisions against the contract's total and per-year room.

    Mutates `state` (the caller persists it). An outcome already charged keeps its
    charge; one that no longer holds releases its charge.
    """
    caps = contract.caps
    if caps.total_minor is None and caps.per_period is None:
        return tuple(decisions)
    live = {outcome_key(d) for d in decisions if d.status == OutcomeStatus.VERIFIED}
    prefix = f"{contract.contract_id}|{contract.version}|"
    for key in [k for k in state.charged
                if k.startswith(prefix) and k.split("|")[3] == subject and k not in live]:
        del state.charged[key]  # the outcome no longer holds: its money is clawed back
    result: list[OutcomeDecision] = []
    for decision in decisions:
        key = outcome_key(decision)
        if decision.status != OutcomeStatus.VERIFIED:
            result.append(decision)
            continue
        already = state.charged.get(key)
        if already is not None:
            result.append(scale_to_room(decision, already[1]))
            continue
        room = decision.owed_minor
        if caps.total_minor is not None:
            room = min(room, caps.total_minor - state.total_minor)
        year = decision.occurred_on.year
        if caps.per_period is not None:
            room = min(room, caps.per_period.amount_minor - state.year_minor(year))
        decision = scale_to_room(decision, room)
        if decision.status == OutcomeStatus.VERIFIED:
            state.charged[key] = (year, decision.owed_minor)
        result.append(decision)
    return tuple(result)


def desired_instructions(contract: Contract, decisions: Iterable[OutcomeDecision]
                         ) -> list[PaymentInstruction]:
    """The payments the decisions call for, each with its generation-0 id."""
    wanted: list[PaymentInstruction] = []
    for decision in decisions:
        if decision.status != OutcomeStatus.VERIFIED:
            continue
        for payee in decision.payees:
            wanted.append(PaymentInstruction(
                payment_id=payment_id(decision, payee.payee, payee.role, payee.amount_minor, 0),
                kind=PaymentKind.PAYMENT, contract_id=decision.contract_id,
                contract_version=decision.contract_version, outcome_id=decision.outcome_id,
                subject=decision.subject, payer=contract.payer, payee=payee.payee,
                payee_role=payee.role,  # type: ignore[arg-type]
                amount_minor=payee.amount_minor, currency=contract.currency,
                occurred_on=decision.occurred_on, trigger_event_id=decision.trigger_event_id,
            ))
    return wanted


def payment_id(decision: OutcomeDecision, payee: str, role: str, amount_minor: int,
               generation: int) -> str:
    """Derived from contract, version, outcome, subject (and trigger) and payee.

    The amount is part of it so that an amended amount is a new instruction (the old
    one is clawed back); the generation lets an identical payment be instructed again
    after its earlier twin was clawed back.
    """
    return _digest(outcome_key(decision), payee, role, str(amount_minor), str(generation))


def clawback_id(original_payment_id: str) -> str:
    return _digest("clawback", original_payment_id)


def reconcile(wanted: Sequence[PaymentInstruction], issued: Sequence[PaymentInstruction]
              ) -> list[PaymentInstruction]:
    """New instructions that turn `issued` into `wanted`: clawbacks first, then payments."""
    reversed_ids = {i.reverses_payment_id for i in issued if i.kind == PaymentKind.CLAWBACK}
    issued_ids = {i.payment_id for i in issued}
    active = {i.payment_id: i for i in issued
              if i.kind == PaymentKind.PAYMENT and i.payment_id not in reversed_ids}
    keep: set[str] = set()
    new_payments: list[PaymentInstruction] = []
    for instruction in wanted:
        generation, candidate = 0, instruction.payment_id
        while candidate in issued_ids and candidate not in active:
            generation += 1
            if generation > GENERATIONS_MAX:
                raise RuntimeError(f"payment {instruction.payment_id} re-instructed too often")
            candidate = _digest(instruction.payment_id, str(generation))
        if candidate in active:
            keep.add(candidate)
        else:
            new_payments.append(instruction.model_copy(update={"payment_id": candidate}))
    clawbacks = [
        original.model_copy(update={
            "payment_id": clawback_id(original.payment_id), "kind": PaymentKind.CLAWBACK,
            "reverses_payment_id": original.payment_id,
        })
        for pid, original in sorted(active.items()) if pid not in keep
    ]
    return clawbacks + new_payments
