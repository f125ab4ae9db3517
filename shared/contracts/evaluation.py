"""Evaluation: from (contract, subject timeline, evaluation date) to outcome decisions.

A pure function: the same contract, facts and date give the same decisions, whatever
order the facts arrived in and however often it runs. Expected failures are decisions
with a named reason code, never exceptions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from shared.contracts.model import (
    Contract,
    DirectDistribution,
    FixedPrice,
    Outcome,
    Payee,
    Predicate,
    SolidarityDistribution,
    SplitDistribution,
    exact,
)
from shared.contracts.solidarity import allocate, largest_remainder
from shared.contracts.timeline import Fact, SubjectTimeline
from shared.events import OutcomeStatus as OutcomeStatus  # the engine decides it; re-exported


class RejectionReason(StrEnum):
    NOT_ELIGIBLE = "not_eligible"
    OUTSIDE_CONTRACT_PERIOD = "outside_contract_period"
    AFTER_DEADLINE = "after_deadline"
    CONDITION_NOT_MET = "condition_not_met"
    AGE_LIMIT = "age_limit"
    UNTRUSTED_EVIDENCE = "untrusted_evidence"
    SELF_REPORTED_EVIDENCE = "self_reported_evidence"
    PREREQUISITE_MISSING = "prerequisite_missing"
    MAX_PER_SUBJECT_REACHED = "max_per_subject_reached"
    NOT_SUSTAINED = "not_sustained"
    NO_PAYEE = "no_payee"
    NO_AMOUNT = "no_amount"
    # The trigger was retracted or amended away after a decision was recorded.
    EVIDENCE_WITHDRAWN = "evidence_withdrawn"


@dataclass(frozen=True)
class PayeeAmount:
    payee: str
    amount_minor: int
    role: str = "institution"  # or "fallback"


@dataclass(frozen=True)
class InstitutionInfo:
    kind: str
    municipality: str = ""


@dataclass(frozen=True)
class OutcomeDecision:
    contract_id: str
    contract_version: int
    outcome_id: str
    subject: str
    trigger_event_id: str
    trigger_reported_by: str
    status: OutcomeStatus
    reason: RejectionReason | None
    # The day the outcome counts: the trigger date, or the end of its sustainment.
    occurred_on: dt.date
    price_minor: int = 0
    payees: tuple[PayeeAmount, ...] = ()
    detail: str = ""

    @property
    def owed_minor(self) -> int:
        return sum(p.amount_minor for p in self.payees)


def field_value(body: Mapping[str, object], path: str) -> object:
    value: object = body
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def predicate_holds(predicate: Predicate, body: Mapping[str, object]) -> bool:
    actual = field_value(body, predicate.field)
    expected = predicate.value
    if actual is None:
        return False
    if predicate.op == "in":
        return isinstance(expected, tuple) and str(actual) in expected
    if predicate.op in ("eq", "ne"):
        same = str(actual) == str(expected) if isinstance(expected, str) else actual == expected
        return same if predicate.op == "eq" else not same
    if not isinstance(actual, int | float | Decimal) or not isinstance(expected, int | Decimal):
        return False
    left, right = Fraction(str(actual)), Fraction(expected)
    return {"gt": left > right, "gte": left >= right,
            "lt": left < right, "lte": left <= right}[predicate.op]


def is_eligible(contract: Contract, timeline: SubjectTimeline,
                directory: Mapping[str, InstitutionInfo]) -> bool:
    rules = contract.eligibility
    year = timeline.birth_date.year
    if rules.birth_year_from is not None and year < rules.birth_year_from:
        return False
    if rules.birth_year_to is not None and year > rules.birth_year_to:
        return False
    if rules.enrolled_on is None:
        return True
    for stay in timeline.registered_on(rules.enrolled_on.date):
        info = directory.get(stay.institution)
        kind = info.kind if info else timeline.kind_of(stay.institution)
        if rules.enrolled_on.kinds and kind not in rules.enrolled_on.kinds:
            continue
        municipality = rules.enrolled_on.municipality
        if municipality is not None and (info is None or info.municipality != municipality):
            continue
        return True
    return False


def evaluate_subject(contract: Contract, timeline: SubjectTimeline, on: dt.date,
                     directory: Mapping[str, InstitutionInfo] | None = None,
                     in_force: tuple[dt.date, dt.date] | None = None,
                     ) -> tuple[OutcomeDecision, ...]:
    """Every trigger of every outcome for this subject, decided as of `on`.

    `in_force` limits the triggers to those dated within this contract version's time
    in force (a later version takes over from its own effective date; what an earlier
    version decided stays with it).
    """
    directory = directory or {}
    first, last = in_force if in_force is not None else (dt.date.min, dt.date.max)
    eligible = is_eligible(contract, timeline, directory)
    decisions: list[OutcomeDecision] = []
    for outcome in _prerequisites_first(contract):
        counted = 0
        for fact in timeline.facts:
            if fact.type != outcome.trigger.event or fact.occurred_on > on \
                    or not first <= fact.occurred_on <= last:
                continue
            decision = _decide(contract, outcome, timeline, fact, on, eligible,
                               directory, decisions, counted)
            if decision.status != OutcomeStatus.REJECTED:
                counted += 1
            decisions.append(decision)
    return _apply_subject_cap(contract, decisions)


def _prerequisites_first(contract: Contract) -> list[Outcome]:
    ordered: list[Outcome] = []
    visiting: set[str] = set()

    def visit(outcome: Outcome) -> None:
        if outcome in ordered:
            return
        if outcome.id in visiting:
            raise ValueError(f"outcome {outcome.id!r} is its own prerequisite")
        visiting.add(outcome.id)
        for prerequisite in outcome.prerequisites:
            visit(contract.outcome(prerequisite))
        ordered.append(outcome)

    for outcome in contract.outcomes:
        visit(outcome)
    return ordered


def _decide(contract: Contract, outcome: Outcome, timeline: SubjectTimeline, fact: Fact,
            on: dt.date, eligible: bool, directory: Mapping[str, InstitutionInfo],
            earlier: list[OutcomeDecision], counted: int) -> OutcomeDecision:
    base = OutcomeDecision(
        contract_id=contract.contract_id, contract_version=contract.version,
        outcome_id=outcome.id, subject=timeline.subject, trigger_event_id=fact.event_id,
        trigger_reported_by=fact.reported_by, status=OutcomeStatus.REJECTED, reason=None,
        occurred_on=fact.occurred_on,
    )
    reason = _rejection(contract, outcome, timeline, fact, eligible, earlier, counted)
    if reason is not None:
        return replace(base, reason=reason)
    if outcome.sustainment is not None:
        sustained_until = fact.occurred_on + dt.timedelta(days=outcome.sustainment.days)
        if _broken(outcome, timeline, fact, sustained_until):
            return replace(base, reason=RejectionReason.NOT_SUSTAINED)
        base = replace(base, occurred_on=sustained_until)
        if on < sustained_until:
            return replace(base, status=OutcomeStatus.PENDING_SUSTAINMENT)
    # Prerequisites must hold by the day this outcome counts (after its sustainment).
    if not all(_met(p, base.occurred_on, earlier) for p in outcome.prerequisites):
        return replace(base, reason=RejectionReason.PREREQUISITE_MISSING)
    price = _price(outcome, fact)
    if price <= 0:
        return replace(base, reason=RejectionReason.NO_AMOUNT)
    payees = distribute(contract, outcome, timeline, fact, price, directory)
    if not payees:
        return replace(base, reason=RejectionReason.NO_PAYEE)
    if any(p.payee == fact.reported_by for p in payees):
        return replace(base, reason=RejectionReason.SELF_REPORTED_EVIDENCE)
    return replace(base, status=OutcomeStatus.VERIFIED, price_minor=price, payees=payees)


def _rejection(contract: Contract, outcome: Outcome, timeline: SubjectTimeline, fact: Fact,
               eligible: bool, earlier: list[OutcomeDecision], counted: int
               ) -> RejectionReason | None:
    trigger = outcome.trigger
    age = timeline.age_on(fact.occurred_on)
    checks: list[tuple[bool, RejectionReason]] = [
        (not all(predicate_holds(p, fact.body) for p in trigger.where),
         RejectionReason.CONDITION_NOT_MET),
        (bool(trigger.reported_by_kinds) and fact.reporter_kind not in trigger.reported_by_kinds,
         RejectionReason.UNTRUSTED_EVIDENCE),
        (not eligible, RejectionReason.NOT_ELIGIBLE),
        (not contract.period.contains(fact.occurred_on), RejectionReason.OUTSIDE_CONTRACT_PERIOD),
        (outcome.deadline is not None and fact.occurred_on > outcome.deadline,
         RejectionReason.AFTER_DEADLINE),
        ((trigger.age_below is not None and age >= trigger.age_below)
         or (trigger.age_at_least is not None and age < trigger.age_at_least),
         RejectionReason.AGE_LIMIT),
        (counted >= outcome.max_per_subject, RejectionReason.MAX_PER_SUBJECT_REACHED),
    ]
    return next((reason for failed, reason in checks if failed), None)


def _met(prerequisite: str, on: dt.date, earlier: list[OutcomeDecision]) -> bool:
    return any(d.outcome_id == prerequisite and d.occurred_on <= on
               and d.status in (OutcomeStatus.VERIFIED, OutcomeStatus.CAPPED) for d in earlier)


def _broken(outcome: Outcome, timeline: SubjectTimeline, fact: Fact, until: dt.date) -> bool:
    rule = outcome.sustainment
    assert rule is not None
    for later in timeline.facts:
        if later.type not in rule.broken_by or not fact.occurred_on <= later.occurred_on <= until:
            continue
        if later.event_id == fact.event_id:
            continue
        if rule.same_field and later.body.get(rule.same_field) != fact.body.get(rule.same_field):
            continue
        return True
    return False


def _price(outcome: Outcome, fact: Fact) -> int:
    if isinstance(outcome.price, FixedPrice):
        return outcome.price.amount_minor
    carried = field_value(fact.body, outcome.price.of_field)
    if not isinstance(carried, int) or carried < 0:
        return 0
    pot = exact(outcome.price.rate) * carried
    return pot.numerator // pot.denominator  # rounded down: the payer keeps the fraction


def resolve_payee(payee: Payee, timeline: SubjectTimeline, fact: Fact,
                  directory: Mapping[str, InstitutionInfo]) -> str | None:
    if payee.role == "institution":
        return payee.institution
    if payee.role == "event_field":
        value = fact.body.get(payee.field or "")
        return value if isinstance(value, str) else None
    if payee.role == "registered_kind":
        for stay in timeline.registered_on(fact.occurred_on):
            info = directory.get(stay.institution)
            kind = info.kind if info else timeline.kind_of(stay.institution)
            if kind == payee.kind:
                return stay.institution
        return None
    ended = [r for r in timeline.registrations if r.end is not None and r.end <= fact.occurred_on]
    return max(ended, key=lambda r: (r.end, r.institution)).institution if ended else None


def distribute(contract: Contract, outcome: Outcome, timeline: SubjectTimeline, fact: Fact,
               pot_minor: int, directory: Mapping[str, InstitutionInfo]
               ) -> tuple[PayeeAmount, ...]:
    rule = outcome.distribution
    if isinstance(rule, DirectDistribution):
        payee = resolve_payee(rule.payee, timeline, fact, directory)
        return (PayeeAmount(payee, pot_minor),) if payee else ()
    if isinstance(rule, SplitDistribution):
        payees = [resolve_payee(s.payee, timeline, fact, directory) for s in rule.shares]
        if any(p is None for p in payees):
            return ()
        shares: dict[str, Fraction] = {}
        for payee, share in zip(payees, rule.shares, strict=True):
            assert payee is not None
            shares[payee] = shares.get(payee, Fraction(0)) + exact(share.share) * pot_minor
        whole = largest_remainder(pot_minor, shares)
        return tuple(PayeeAmount(p, a) for p, a in sorted(whole.items()) if a > 0)
    assert isinstance(rule, SolidarityDistribution)
    allocation = allocate(rule, timeline.birth_date, timeline.registrations, pot_minor,
                          fact.occurred_on)
    paid = [PayeeAmount(inst, amount) for inst, amount in allocation.allocations]
    if contract.fallback_account and allocation.unallocated_minor > 0:
        paid.append(PayeeAmount(contract.fallback_account, allocation.unallocated_minor,
                                role="fallback"))
    return tuple(paid)


def _apply_subject_cap(contract: Contract, decisions: list[OutcomeDecision]
                       ) -> tuple[OutcomeDecision, ...]:
    cap = contract.caps.per_subject_minor
    if cap is None:
        return tuple(decisions)
    capped: list[OutcomeDecision] = []
    used = 0
    for decision in sorted(decisions, key=lambda d: (d.occurred_on, d.outcome_id, d.trigger_event_id)):
        if decision.status != OutcomeStatus.VERIFIED:
            capped.append(decision)
            continue
        room = cap - used
        decision = scale_to_room(decision, room)
        used += decision.owed_minor
        capped.append(decision)
    return tuple(capped)


def scale_to_room(decision: OutcomeDecision, room_minor: int) -> OutcomeDecision:
    """Pay what still fits under a cap; with no room left the outcome is capped (owed 0)."""
    owed = decision.owed_minor
    if owed <= room_minor:
        return decision
    if room_minor <= 0:
        return replace(decision, status=OutcomeStatus.CAPPED, payees=(),
                       detail=f"cap exhausted; {owed} not owed")
    shares = {p.payee: Fraction(p.amount_minor * room_minor, owed) for p in decision.payees}
    whole = largest_remainder(room_minor, shares)
    roles = {p.payee: p.role for p in decision.payees}
    payees = tuple(PayeeAmount(k, v, roles[k]) for k, v in sorted(whole.items()) if v > 0)
    return replace(decision, payees=payees, detail=f"partly capped; {owed - room_minor} not owed")
