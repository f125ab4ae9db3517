"""What one subject's (re-)evaluation changes: new instructions, changed decisions, timers.

Pure. Two steps, so that contract-wide budgets do not depend on processing order:
`evaluate` decides a subject's outcomes under every contract (all versions, per-subject
caps applied) and yields the claims its verified outcomes make on contract budgets;
`settle` applies what the budgets granted (`grant_budget`, over every subject's claims),
holds outcomes inside their contract's review window, and reconciles the money with
what was already issued. The batch handler does the I/O around them; `decide_all` runs
both over a whole population at once (simulate, the tests' oracle).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from shared.domain.contracts.evaluation import (
    InstitutionInfo,
    OutcomeDecision,
    OutcomeStatus,
    RejectionReason,
    evaluate_versions,
)
from shared.domain.contracts.model import Contract
from shared.domain.contracts.payments import (
    BudgetRequest,
    apply_grants,
    budget_requests,
    desired_instructions,
    grant_budget,
    outcome_key,
    place_requests,
    reconcile,
)
from shared.domain.contracts.timeline import fold
from shared.domain.events import OutcomeRecorded, PaymentInstruction, Transition

EVENT_NAMES = {
    OutcomeStatus.VERIFIED: "OutcomeVerified",
    OutcomeStatus.REJECTED: "OutcomeRejected",
    OutcomeStatus.CAPPED: "OutcomeCapped",
    OutcomeStatus.PENDING_SUSTAINMENT: "OutcomePending",
    OutcomeStatus.PENDING_REVIEW: "OutcomePending",
}

InForce = tuple[Contract, tuple[dt.date, dt.date]]
# outcome key -> (status, reason, owed_minor, contract_version) as last recorded
Stored = Mapping[str, tuple[str, str | None, int, int]]


@dataclass
class SubjectEffects:
    instructions: list[PaymentInstruction] = field(default_factory=list)
    changed: list[OutcomeDecision] = field(default_factory=list)
    timers: list[dt.date] = field(default_factory=list)
    decisions: tuple[OutcomeDecision, ...] = ()


def versions_by_contract(in_force: Sequence[InForce]) -> dict[str, list[InForce]]:
    grouped: dict[str, list[InForce]] = {}
    for contract, window in in_force:
        grouped.setdefault(contract.contract_id, []).append((contract, window))
    return grouped


def evaluate(in_force: Sequence[InForce], subject: str, stream: Sequence[Transition],
             today: dt.date, directory: Mapping[str, InstitutionInfo]
             ) -> tuple[tuple[OutcomeDecision, ...], list[BudgetRequest]]:
    """The subject's decisions under every contract (before contract-wide caps) and
    the claims they make on contract budgets."""
    authorities = {i: info.authority for i, info in directory.items() if info.authority is not None}
    timeline = fold(subject, stream[0].birth_date, stream, authorities)
    decisions: list[OutcomeDecision] = []
    requests: list[BudgetRequest] = []
    for versions in versions_by_contract(in_force).values():
        decided = evaluate_versions(versions, timeline, today, directory)
        decisions.extend(decided)
        for contract, _ in versions:
            requests.extend(budget_requests(
                contract, (d for d in decided if d.contract_version == contract.version)))
        # Places are the agreement's, not a version's: the latest version's count.
        requests.extend(place_requests(max((c for c, _ in versions), key=lambda c: c.version), timeline))
    return tuple(decisions), requests


def review_due(contract: Contract, decision: OutcomeDecision) -> dt.date:
    try:
        return decision.occurred_on + dt.timedelta(days=contract.caps.review_days)
    except OverflowError:
        return dt.date.max


def settle(in_force: Sequence[InForce], subject: str, decisions: Sequence[OutcomeDecision],
           grants: Mapping[str, int], today: dt.date,
           issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]],
           stored: Stored) -> SubjectEffects:
    versions = {(c.contract_id, c.version): c for c, _ in in_force}
    effects = SubjectEffects()
    final: list[OutcomeDecision] = []
    for decision in apply_grants(decisions, grants):
        contract = versions[(decision.contract_id, decision.contract_version)]
        if decision.status == OutcomeStatus.VERIFIED and contract.caps.contract_wide \
                and today < review_due(contract, decision):
            # Ranked in the budget already, paid once the review window has passed:
            # a late fact inside the window changes the ranking without a clawback.
            effects.timers.append(review_due(contract, decision))
            decision = replace(decision, status=OutcomeStatus.PENDING_REVIEW, payees=(),
                               detail=f"in review until {review_due(contract, decision)}")
        if decision.status == OutcomeStatus.PENDING_SUSTAINMENT:
            effects.timers.append(decision.occurred_on)
        final.append(decision)
    # One reconciliation per contract over all its versions: a version never sees
    # another version's payments as something to claw back.
    for contract_id in sorted({contract_id for contract_id, _ in versions}):
        wanted: list[PaymentInstruction] = []
        for (cid, version), contract in sorted(versions.items()):
            if cid == contract_id:
                wanted.extend(desired_instructions(
                    contract, (d for d in final if d.contract_id == cid and d.contract_version == version)))
        effects.instructions.extend(reconcile(wanted, issued.get((subject, contract_id), ())))
    seen: set[str] = set()
    for decision in final:
        key = outcome_key(decision)
        seen.add(key)
        current = (decision.status.value, decision.reason.value if decision.reason else None,
                   decision.owed_minor)
        if stored.get(key, (None,))[:3] != current:
            effects.changed.append(decision)
    effects.changed.extend(_withdrawn(stored, seen, subject, today))
    effects.decisions = tuple(final)
    return effects


def decide_subject(in_force: Sequence[InForce], subject: str, stream: Sequence[Transition],
                   today: dt.date, directory: Mapping[str, InstitutionInfo],
                   issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]],
                   stored: Stored, grants: Mapping[str, int]) -> SubjectEffects:
    """`evaluate` then `settle` for one subject, with the budgets' grants given."""
    decisions, _ = evaluate(in_force, subject, stream, today, directory)
    return settle(in_force, subject, decisions, grants, today, issued, stored)


def decide_all(in_force: Sequence[InForce], streams: Mapping[str, Sequence[Transition]],
               today: dt.date, directory: Mapping[str, InstitutionInfo]
               ) -> dict[str, SubjectEffects]:
    """Every subject at once, nothing issued or recorded before: what the verifier's
    store holds once it has processed these streams, however they were batched."""
    evaluated = {subject: evaluate(in_force, subject, streams[subject], today, directory)
                 for subject in sorted(streams)}
    grants = grant_budget(r for _, requests in evaluated.values() for r in requests)
    return {subject: settle(in_force, subject, decisions, grants, today, {}, {})
            for subject, (decisions, _) in evaluated.items()}


def _withdrawn(stored: Stored, seen: set[str], subject: str, today: dt.date) -> list[OutcomeDecision]:
    """Decisions recorded earlier whose trigger no longer exists (retracted, amended)."""
    gone = RejectionReason.EVIDENCE_WITHDRAWN
    withdrawn = []
    for key, (status, reason, _, version) in sorted(stored.items()):
        if key in seen or (status == OutcomeStatus.REJECTED.value and reason == gone.value):
            continue
        contract_id, outcome_id, key_subject, trigger = key.split("|")
        if key_subject != subject:
            continue
        withdrawn.append(OutcomeDecision(contract_id, version, outcome_id, subject, trigger, "",
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
