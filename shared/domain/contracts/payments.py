"""From outcome decisions to money: contract-wide caps, deterministic payment ids,
and reconciliation of what is owed now against what was already instructed.

Nothing is edited: when a decision changes (a retraction, an amendment, a late breaking
event), instructions that no longer hold are reversed by clawbacks that reference them,
and whatever is owed now is instructed afresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from shared.domain.contracts.evaluation import (
    OutcomeDecision,
    OutcomeStatus,
    RejectionReason,
    budget_scope,
    scale_to_room,
)
from shared.domain.contracts.model import Contract
from shared.domain.contracts.target_group import eligible_referrals
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.events import PaymentInstruction, PaymentKind

GENERATIONS_MAX = 1000  # a payment re-instructed after this many clawbacks is a bug


def outcome_key(decision: OutcomeDecision) -> str:
    """The outcome's identity: contract, outcome, subject and trigger, not the version.

    Which version decides an outcome is an attribute of the decision, not part of its
    identity: a new version that prices an outcome the same leaves its payment alone,
    one that prices it differently moves it by exactly the difference.
    """
    return "|".join((decision.contract_id, decision.outcome_id, decision.subject,
                     decision.trigger_event_id))


def _digest(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class BudgetRequest:
    """A verified outcome's claim on a contract-wide budget (total or per-period cap).

    `total_cap_minor` and `period_cap_minor` are the caps of the version that decides
    the outcome; the room they leave is shared with every other request in the budget.
    """

    budget: str
    outcome_key: str
    subject: str
    occurred_on: dt.date
    requested_minor: int
    total_cap_minor: int | None
    period_cap_minor: int | None

    @property
    def rank(self) -> tuple[dt.date, str]:
        return (self.occurred_on, self.outcome_key)


def budget_requests(contract: Contract, decisions: Iterable[OutcomeDecision]) -> list[BudgetRequest]:
    """The claims a subject's verified (or review-pending) outcomes under `contract`
    make on its budget; none if the version has no contract-wide cap."""
    caps = contract.caps
    if not caps.contract_wide:
        return []
    return [BudgetRequest(
        budget=budget_scope(contract), outcome_key=outcome_key(d), subject=d.subject,
        occurred_on=d.occurred_on, requested_minor=d.owed_minor,
        total_cap_minor=caps.total_minor,
        period_cap_minor=caps.per_period.amount_minor if caps.per_period else None,
    ) for d in decisions if d.status == OutcomeStatus.VERIFIED and d.owed_minor > 0]


def grant_budget(requests: Iterable[BudgetRequest]) -> dict[str, int]:
    """Who gets the room: requests in rank order (occurred_on, then outcome key), each
    given what is left under its total and calendar-year caps.

    A pure function of the set of requests, not of the order they arrived in: the same
    facts give the same granted amounts whatever the batching, crashes or a rebuild.
    """
    granted: dict[str, int] = {}
    used_total: dict[str, int] = {}
    used_year: dict[tuple[str, int], int] = {}
    for request in sorted(requests, key=lambda r: (r.budget, r.rank)):
        room = request.requested_minor
        if request.total_cap_minor is not None:
            room = min(room, request.total_cap_minor - used_total.get(request.budget, 0))
        year = (request.budget, request.occurred_on.year)
        if request.period_cap_minor is not None:
            room = min(room, request.period_cap_minor - used_year.get(year, 0))
        room = max(room, 0)
        granted[request.outcome_key] = room
        used_total[request.budget] = used_total.get(request.budget, 0) + room
        used_year[year] = used_year.get(year, 0) + room
    return granted


def place_key(contract_id: str, subject: str) -> str:
    return f"place|{contract_id}|{subject}"


def place_budget(contract_id: str, municipality: str, cluster: str) -> str:
    return f"places|{contract_id}|{municipality}|{cluster}"


def place_budgets(contract: Contract) -> set[str]:
    rule = contract.eligibility.referral
    if rule is None:
        return set()
    return {place_budget(contract.contract_id, p.municipality, p.cluster) for p in rule.places}


def place_requests(contract: Contract, timeline: SubjectTimeline) -> list[BudgetRequest]:
    """A citizen's claim on a place: its first eligible referral's cluster, one place,
    ranked by the referral's day (then the claim key). Granted over every citizen's
    claim by `grant_budget`, like a budget whose unit is a place."""
    rule = contract.eligibility.referral
    if rule is None or not rule.places:
        return []
    first = next(iter(eligible_referrals(rule, timeline)), None)
    if first is None:
        return []
    municipality, cluster = str(first.body.get("municipality")), str(first.body.get("cluster"))
    return [BudgetRequest(
        budget=place_budget(contract.contract_id, municipality, cluster),
        outcome_key=place_key(contract.contract_id, timeline.subject), subject=timeline.subject,
        occurred_on=first.occurred_on, requested_minor=1,
        total_cap_minor=rule.places_of(municipality, cluster), period_cap_minor=None)]


def apply_grants(decisions: Iterable[OutcomeDecision], grants: Mapping[str, int]
                 ) -> tuple[OutcomeDecision, ...]:
    """Verified decisions scaled to what the budget granted them (capped at 0); those
    of a citizen whose place claim was not granted are rejected `over_capacity`."""
    granted = []
    for d in decisions:
        if d.status in (OutcomeStatus.VERIFIED, OutcomeStatus.PENDING_SUSTAINMENT) \
                and grants.get(place_key(d.contract_id, d.subject)) == 0:
            d = replace(d, status=OutcomeStatus.REJECTED, reason=RejectionReason.OVER_CAPACITY, payees=(),
                        detail="the referral found its cluster's places taken")
        elif d.status == OutcomeStatus.VERIFIED and outcome_key(d) in grants:
            d = scale_to_room(d, grants[outcome_key(d)])
        granted.append(d)
    return tuple(granted)


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
    """Derived from contract, outcome, subject (and trigger) and payee, not the version.

    The amount is part of it so that an amended amount is a new instruction (the old
    one is clawed back); the generation lets an identical payment be instructed again
    after its earlier twin was clawed back.
    """
    return _digest(outcome_key(decision), payee, role, str(amount_minor), str(generation))


def reissued_id(first_payment_id: str, generation: int) -> str:
    """The id of a payment instructed again after its earlier twins were clawed back
    (generation 0 is the first id itself)."""
    return first_payment_id if generation == 0 else _digest(first_payment_id, str(generation))


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
            candidate = reissued_id(instruction.payment_id, generation)
        if candidate in active:
            keep.add(candidate)
        elif candidate == instruction.payment_id:
            new_payments.append(instruction)  # frozen: no copy needed for the same id
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
