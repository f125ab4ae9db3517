"""What one subject's (re-)evaluation changes: new instructions, changed decisions, timers.

Pure: given the contracts, the subject's stream, the clock, what was already issued and
decided, and the contract caps' state, it returns the effects. The batch handler does
the I/O around it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.contracts.evaluation import (
    InstitutionInfo,
    OutcomeDecision,
    OutcomeStatus,
    RejectionReason,
    evaluate_subject,
)
from shared.contracts.model import Contract
from shared.contracts.payments import (
    CapState,
    apply_contract_caps,
    desired_instructions,
    outcome_key,
    reconcile,
)
from shared.contracts.timeline import fold
from shared.events import OutcomeRecorded, PaymentInstruction, Transition

EVENT_NAMES = {
    OutcomeStatus.VERIFIED: "OutcomeVerified",
    OutcomeStatus.REJECTED: "OutcomeRejected",
    OutcomeStatus.CAPPED: "OutcomeCapped",
    OutcomeStatus.PENDING_SUSTAINMENT: "OutcomePending",
}


@dataclass
class SubjectEffects:
    instructions: list[PaymentInstruction] = field(default_factory=list)
    changed: list[OutcomeDecision] = field(default_factory=list)
    timers: list[dt.date] = field(default_factory=list)


InForce = tuple[Contract, tuple[dt.date, dt.date]]


def decide_subject(contracts: Sequence[InForce], subject: str, stream: Sequence[Transition],
                   today: dt.date, directory: Mapping[str, InstitutionInfo],
                   issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]],
                   stored: Mapping[str, tuple[str, str | None, int]],
                   caps: Mapping[tuple[str, int], CapState]) -> SubjectEffects:
    effects = SubjectEffects()
    timeline = fold(subject, stream[0].birth_date, stream)
    seen: set[str] = set()
    for contract, window in contracts:
        decisions = evaluate_subject(contract, timeline, today, directory, window)
        decisions = apply_contract_caps(contract, subject, decisions,
                                        caps[(contract.contract_id, contract.version)])
        wanted = desired_instructions(contract, decisions)
        effects.instructions.extend(
            reconcile(wanted, issued.get((subject, contract.contract_id), ())))
        for decision in decisions:
            seen.add(outcome_key(decision))
            current = (decision.status.value, decision.reason.value if decision.reason else None,
                       decision.owed_minor)
            if stored.get(outcome_key(decision)) != current:
                effects.changed.append(decision)
            if decision.status == OutcomeStatus.PENDING_SUSTAINMENT:
                effects.timers.append(decision.occurred_on)
    effects.changed.extend(_withdrawn(stored, seen, subject, today))
    return effects


def _withdrawn(stored: Mapping[str, tuple[str, str | None, int]], seen: set[str], subject: str,
               today: dt.date) -> list[OutcomeDecision]:
    """Decisions recorded earlier whose trigger no longer exists (retracted, amended)."""
    gone = RejectionReason.EVIDENCE_WITHDRAWN
    withdrawn = []
    for key, (status, reason, _) in sorted(stored.items()):
        if key in seen or (status == OutcomeStatus.REJECTED.value and reason == gone.value):
            continue
        contract_id, version, outcome_id, key_subject, trigger = key.split("|")
        if key_subject != subject:
            continue
        withdrawn.append(OutcomeDecision(contract_id, int(version), outcome_id, subject, trigger, "",
                                         OutcomeStatus.REJECTED, gone, today))
    return withdrawn


def outcome_record(decision: OutcomeDecision, currency: str) -> OutcomeRecorded:
    return OutcomeRecorded(
        type=EVENT_NAMES[decision.status],  # type: ignore[arg-type]
        outcome_key=outcome_key(decision), contract_id=decision.contract_id,
        contract_version=decision.contract_version, outcome_id=decision.outcome_id,
        subject=decision.subject, trigger_event_id=decision.trigger_event_id,
        status=decision.status,
        reason=decision.reason.value if decision.reason else None,
        occurred_on=decision.occurred_on, owed_minor=decision.owed_minor, currency=currency,
        payees=tuple((p.payee, p.amount_minor) for p in decision.payees),
    )
