"""From outcome decisions to money: contract-wide caps, deterministic payment ids,
and reconciliation of what is owed now against what was already instructed.

Nothing is edited, and nothing unchanged is reversed and re-issued: when what an
outcome owes a payee changes (a retraction, an amendment, a late fact, a new version),
the difference is instructed: a top-up payment, or clawbacks that reverse part or all
of earlier payments and reference them. Each such instruction's id derives from the
outcome, the payee and its cause (the correcting event), never from the amount.
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
    """The payments the decisions call for, each with its outcome line's first id."""
    wanted: list[PaymentInstruction] = []
    for decision in decisions:
        if decision.status != OutcomeStatus.VERIFIED:
            continue
        for payee in decision.payees:
            wanted.append(PaymentInstruction(
                payment_id=payment_id(decision, payee.payee, payee.role),
                kind=PaymentKind.PAYMENT, contract_id=decision.contract_id,
                contract_version=decision.contract_version, outcome_id=decision.outcome_id,
                subject=decision.subject, payer=contract.payer, payee=payee.payee,
                payee_role=payee.role,  # type: ignore[arg-type]
                amount_minor=payee.amount_minor, currency=contract.currency,
                occurred_on=decision.occurred_on, trigger_event_id=decision.trigger_event_id,
            ))
    return wanted


def payment_id(decision: OutcomeDecision, payee: str, role: str) -> str:
    """The first payment of an outcome to a payee: derived from contract, outcome, subject
    (and trigger) and payee, not the version and not the amount, so a changed amount is
    a difference instructed under an id of its own, never a re-issue of this one."""
    return _digest(outcome_key(decision), payee, role)


def clawback_id(original_payment_id: str, cause: str = "", sequence: int | None = None) -> str:
    """A clawback of (part of) `original_payment_id`, caused by `cause`, as the line's
    `sequence`-th instruction."""
    if not cause:
        return _digest("clawback", original_payment_id)
    return _digest("clawback", original_payment_id, cause, str(sequence))


def top_up_id(first_payment_id: str, cause: str, sequence: int) -> str:
    """A later payment on an outcome line whose first id is `first_payment_id`, caused by
    `cause` (a correcting event's id, or `recheck`), as the line's `sequence`-th instruction."""
    return _digest(first_payment_id, cause, str(sequence))


@dataclass(frozen=True)
class IssuedInstruction:
    """What an instruction's id derives from: enough of it to tell whether a correcting
    event caused it (`derived_from`), as the ledger holds it."""

    payment_id: str
    kind: PaymentKind
    reverses_payment_id: str | None
    outcome_key: str            # contract|outcome|subject|trigger
    payee: str
    payee_role: str


def derived_from(event_id: str, instructions: Sequence[IssuedInstruction]) -> bool:
    """Whether one of an outcome's instructions is an adjustment the correcting event
    `event_id` caused: a top-up or a clawback whose id `reconcile` derived from it (the
    line's first id, or the payment it reverses, with the event and the count of the
    line's earlier instructions). Ids are SHA-256 digests: a match proves the derivation,
    without the verifier's tables. The count is at most the outcome's instructions."""
    counts = range(len(instructions) + 1)
    for x in instructions:
        if x.kind == PaymentKind.CLAWBACK and x.reverses_payment_id is not None:
            if any(clawback_id(x.reverses_payment_id, event_id, n) == x.payment_id for n in counts):
                return True
        elif x.kind == PaymentKind.PAYMENT:
            first = _digest(x.outcome_key, x.payee, x.payee_role)
            if any(top_up_id(first, event_id, n) == x.payment_id for n in counts):
                return True
    return False


@dataclass(frozen=True)
class Cause:
    """Why an outcome's money changes: `final` (decided when the watermark passed its
    decision date), `correction` (a fact known after that, named by `event_id`), or
    `recheck` (no new fact: a budget's grant moved, or a contract version)."""

    reason: str
    event_id: str | None = None

    @property
    def tag(self) -> str:
        return self.event_id or self.reason


FINAL = Cause("final")
RECHECK = Cause("recheck")


def instruction_outcome_key(instruction: PaymentInstruction) -> str:
    return "|".join((instruction.contract_id, instruction.outcome_id, instruction.subject,
                     instruction.trigger_event_id or ""))


Line = tuple[str, str, str]  # outcome key, payee, role


def _line(instruction: PaymentInstruction) -> Line:
    return instruction_outcome_key(instruction), instruction.payee, instruction.payee_role


def reconcile(wanted: Sequence[PaymentInstruction], issued: Sequence[PaymentInstruction],
              causes: Mapping[str, Cause] | None = None, default: Cause = FINAL) -> list[PaymentInstruction]:
    """New instructions that bring each outcome line (outcome, payee, role) from what
    `issued` nets to what `wanted` says, by the difference only: clawbacks first (of
    the line's payments, each for at most what is left of it), then top-ups. `causes`
    names the cause per outcome key (else `default`); an id is the line's first id for
    its first, final payment, else derived from that id, the cause and how many
    instructions the line had before (so an id is never issued twice, even when a
    decision goes back and forth)."""
    causes = causes or {}
    target: dict[Line, int] = {}
    template: dict[Line, PaymentInstruction] = {}
    for instruction in wanted:
        line = _line(instruction)
        target[line] = target.get(line, 0) + instruction.amount_minor
        template.setdefault(line, instruction)
    issued_ids = {i.payment_id for i in issued}
    clawed: dict[str, int] = {}
    for instruction in issued:
        if instruction.kind == PaymentKind.CLAWBACK and instruction.reverses_payment_id is not None:
            clawed[instruction.reverses_payment_id] = clawed.get(instruction.reverses_payment_id, 0) \
                + instruction.amount_minor
    remaining: dict[Line, list[tuple[str, int, PaymentInstruction]]] = {}
    sequence: dict[Line, int] = {}
    for instruction in issued:
        sequence[_line(instruction)] = sequence.get(_line(instruction), 0) + 1
        if instruction.kind == PaymentKind.PAYMENT:
            left = instruction.amount_minor - clawed.get(instruction.payment_id, 0)
            remaining.setdefault(_line(instruction), []).append((instruction.payment_id, left, instruction))
    clawbacks: list[PaymentInstruction] = []
    payments: list[PaymentInstruction] = []
    for line in sorted(set(target) | set(remaining)):
        net = sum(left for _, left, _ in remaining.get(line, ()))
        difference = target.get(line, 0) - net
        if difference == 0:
            continue
        cause = causes.get(line[0], default)
        if difference > 0:
            fresh = template[line]
            first = fresh.payment_id
            new_id = first if not sequence.get(line) and first not in issued_ids and cause.reason == "final" \
                else top_up_id(first, cause.tag, sequence.get(line, 0))
            payments.append(fresh.model_copy(update={"payment_id": new_id, "amount_minor": difference}))
            continue
        owed_back = -difference
        for pid, left, original in sorted(remaining[line], key=lambda r: r[0]):
            if owed_back == 0:
                break
            amount = min(left, owed_back)
            if amount <= 0:
                continue
            owed_back -= amount
            clawbacks.append(original.model_copy(update={
                "payment_id": clawback_id(pid, cause.tag, sequence.get(line, 0)), "kind": PaymentKind.CLAWBACK,
                "reverses_payment_id": pid, "amount_minor": amount}))
        if owed_back:
            raise RuntimeError(f"outcome line {line} cannot claw back {owed_back} more than it was paid")
    return clawbacks + payments
