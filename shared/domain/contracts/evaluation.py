"""Evaluation: from (contract, subject timeline, evaluation date) to outcome decisions.

A pure function: the same contract, facts and date give the same decisions, whatever
order the facts arrived in and however often it runs. Expected failures are decisions
with a named reason code, never exceptions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from shared.domain.contracts.mobility import starting_point_eligible, weighted_price
from shared.domain.contracts.model import (
    Contract,
    DirectDistribution,
    FixedPrice,
    Outcome,
    Payee,
    SolidarityDistribution,
    SplitDistribution,
    exact,
)
from shared.domain.contracts.model import effective_from as effective_from_of
from shared.domain.contracts.predicate import Predicate
from shared.domain.contracts.solidarity import SolidarityError, allocate, largest_remainder
from shared.domain.contracts.target_group import referral_eligible
from shared.domain.contracts.timeline import Fact, SubjectTimeline
from shared.domain.events import EventType
from shared.domain.events import OutcomeStatus as OutcomeStatus  # the engine decides it; re-exported


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
    # The trigger carries an amount in another currency than the contract's: no
    # silent conversion (a SEK transfer under a EUR contract is not paid in EUR).
    CURRENCY_MISMATCH = "currency_mismatch"
    # The exact arithmetic cannot allocate the pot (e.g. more institutions share a day
    # than it splits exactly); the detail names the problem.
    ALLOCATION_IMPOSSIBLE = "allocation_impossible"
    # The dates involved fall outside the calendar (beyond year 9999).
    DATE_OUT_OF_RANGE = "date_out_of_range"
    # A registration starts before the subject's birth: the chain cannot be weighted.
    REGISTRATION_BEFORE_BIRTH = "registration_before_birth"
    # The citizen's referral found its cluster's places taken (docs/contracts.md).
    OVER_CAPACITY = "over_capacity"
    # Indicator outcomes (shared/domain/contracts/indicator_outcomes.py): a measured population
    # under the small-cell minimum is not paid on; an improvement under the floor (or a
    # worsening) pays nothing.
    POPULATION_BELOW_MINIMUM = "population_below_minimum"
    IMPROVEMENT_BELOW_FLOOR = "improvement_below_floor"
    # The trigger falls inside the contract's period but before its first version takes
    # effect (`effective_from`): no version was in force on that day.
    BEFORE_CONTRACT_START = "before_contract_start"
    # Capped: the trigger became known after the watermark passed the outcome's decision
    # date, and the budget's room had gone to the claims that were final before it.
    LATE_CLAIM = "late_claim"


@dataclass(frozen=True)
class PayeeAmount:
    payee: str
    amount_minor: int
    role: str = "institution"  # or "fallback"


@dataclass(frozen=True)
class InstitutionInfo:
    kind: str
    municipality: str = ""
    # The institution that may correct this one's events (the registry's `authority`).
    authority: str | None = None


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
    if not starting_point_eligible(rules, timeline):
        return False
    if rules.referral is not None and not referral_eligible(rules.referral, timeline):
        return False
    resident = rules.resident_on
    if resident is not None and resident.date is not None and \
            residence_on(timeline, resident.date) != resident.municipality:
        return False  # `at: trigger` is decided per outcome: `resident_at_trigger`
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


def residence_on(timeline: SubjectTimeline, day: dt.date) -> str | None:
    """Where the subject lived on `day`: the municipality of its latest `residence` fact on
    or before it (the CPR register's moves), or None when none is known."""
    moves = [f for f in timeline.facts if f.type == EventType.RESIDENCE and f.occurred_on <= day]
    return str(max(moves, key=lambda f: (f.occurred_on, f.event_id)).body["municipality"]) if moves else None


def resident_at_trigger(contract: Contract, timeline: SubjectTimeline, fact: Fact) -> bool:
    """`eligibility.resident_on: {at: trigger, municipality}`: the subject lived in the
    municipality on this outcome's trigger date (the trigger fact's `occurred_on`, also for
    an outcome with a sustainment period). A move dated on the trigger day counts (the
    subject lives in the new municipality from the move's date on); no residence known on
    or before the day: not eligible. True when the contract has no such rule."""
    rule = contract.eligibility.resident_on
    if rule is None or rule.at != "trigger":
        return True
    return residence_on(timeline, fact.occurred_on) == rule.municipality


def residences(timeline: SubjectTimeline) -> set[str]:
    """Every municipality the subject's residence facts name."""
    return {str(f.body["municipality"]) for f in timeline.facts if f.type == EventType.RESIDENCE}


Versions = Sequence[tuple[Contract, tuple[dt.date, dt.date]]]


def evaluate_subject(contract: Contract, timeline: SubjectTimeline, on: dt.date,
                     directory: Mapping[str, InstitutionInfo] | None = None,
                     in_force: tuple[dt.date, dt.date] | None = None,
                     ) -> tuple[OutcomeDecision, ...]:
    """Every trigger of every outcome for this subject under one version, as of `on`.

    `in_force` limits the triggers to those dated within this version's window.
    """
    window = in_force if in_force is not None else (dt.date.min, dt.date.max)
    return evaluate_versions(((contract, window),), timeline, on, directory)


def evaluate_versions(versions: Versions, timeline: SubjectTimeline, on: dt.date,
                      directory: Mapping[str, InstitutionInfo] | None = None,
                      ) -> tuple[OutcomeDecision, ...]:
    """Every trigger of every outcome for this subject under all versions of one
    contract (each with the window of trigger dates it decides), as of `on`.

    The version whose window holds a trigger's date decides it (docs/contracts.md,
    "Versions"). What counts against `max_per_subject`, prerequisites and the
    per-subject cap is counted across versions: a new version is not a new allowance.
    Never raises on data: what cannot be computed is a rejection with a reason code.
    """
    directory = directory or {}
    eligible = {contract.version: is_eligible(contract, timeline, directory)
                for contract, _ in versions}
    decisions: list[OutcomeDecision] = []
    outcomes = {contract.version: {o.id: o for o in contract.outcomes} for contract, _ in versions}
    for outcome_id in _prerequisites_first(versions):
        counted = 0
        for fact in timeline.facts:
            if fact.occurred_on > on:
                continue
            contract = _deciding_version(versions, fact.occurred_on)
            early = _not_yet_in_force(versions, fact.occurred_on) if contract is None else None
            chosen = contract or early
            outcome = outcomes[chosen.version].get(outcome_id) if chosen else None
            if chosen is None or outcome is None or fact.type != outcome.trigger.event:
                continue
            if early is not None:
                decision = _before_start(early, outcome, timeline, fact)
                if not (eligible[early.version] and resident_at_trigger(early, timeline, fact)):
                    # As in `_rejection`: another municipality's child is not_eligible first.
                    decision = replace(decision, reason=RejectionReason.NOT_ELIGIBLE, detail="")
                decisions.append(decision)
                continue
            assert contract is not None
            decision = _decide(contract, outcome, timeline, fact, on, eligible[contract.version],
                               directory, decisions, counted)
            if decision.status != OutcomeStatus.REJECTED:
                counted += 1
            decisions.append(decision)
    return _apply_subject_cap(versions, decisions)


def _deciding_version(versions: Versions, day: dt.date) -> Contract | None:
    for contract, (first, last) in versions:
        if first <= day <= last:
            return contract
    return None


def _not_yet_in_force(versions: Versions, day: dt.date) -> Contract | None:
    """The first version, when `day` is inside its period but before it takes effect."""
    if not versions:
        return None
    first, (starts, _) = min(versions, key=lambda item: item[1][0])
    return first if first.period.start <= day < starts else None


def _before_start(contract: Contract, outcome: Outcome, timeline: SubjectTimeline, fact: Fact) -> OutcomeDecision:
    return OutcomeDecision(
        contract_id=contract.contract_id, contract_version=contract.version, outcome_id=outcome.id,
        subject=timeline.subject, trigger_event_id=fact.event_id, trigger_reported_by=fact.reported_by,
        status=OutcomeStatus.REJECTED, reason=RejectionReason.BEFORE_CONTRACT_START, occurred_on=fact.occurred_on,
        detail=f"the first version in force takes effect on {effective_from_of(contract)}")


def _prerequisites_first(versions: Versions) -> list[str]:
    """Outcome ids of all versions, each after its prerequisites.

    A single version cannot have a cycle (the model refuses it); two versions together
    could (v1: a needs b, v2: b needs a). A back edge is then skipped, so the ordering
    never fails: the outcome whose prerequisite was not yet decided is rejected with
    `prerequisite_missing`, a reason, not an exception.
    """
    needs: dict[str, list[str]] = {}
    for contract, _ in versions:
        for outcome in contract.outcomes:
            needs.setdefault(outcome.id, []).extend(outcome.prerequisites)
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(outcome_id: str) -> None:
        if outcome_id in ordered or outcome_id in visiting:
            return
        visiting.add(outcome_id)
        for prerequisite in needs.get(outcome_id, ()):
            visit(prerequisite)
        ordered.append(outcome_id)

    for outcome_id in needs:
        visit(outcome_id)
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
    eligible = eligible and resident_at_trigger(contract, timeline, fact)
    reason = _rejection(contract, outcome, timeline, fact, eligible, earlier, counted)
    if reason is not None:
        return replace(base, reason=reason)
    try:
        return _verified_or_not(contract, outcome, timeline, fact, on, directory, earlier, base)
    except SolidarityError as error:
        # The arithmetic cannot share this pot (e.g. more institutions on one day than
        # it splits exactly): a decision the operator sees, re-decided when facts change.
        return replace(base, reason=RejectionReason.ALLOCATION_IMPOSSIBLE, detail=str(error))
    except OverflowError as error:
        # Dates beyond year 9999 (a birth date in 9990 plus the years a rule weighs).
        return replace(base, reason=RejectionReason.DATE_OUT_OF_RANGE, detail=str(error))


def _verified_or_not(contract: Contract, outcome: Outcome, timeline: SubjectTimeline, fact: Fact,
                     on: dt.date, directory: Mapping[str, InstitutionInfo],
                     earlier: list[OutcomeDecision], base: OutcomeDecision) -> OutcomeDecision:
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
    price = weighted_price(outcome, timeline, _price(outcome, fact))
    if price <= 0:
        return replace(base, reason=RejectionReason.NO_AMOUNT)
    if isinstance(outcome.distribution, SolidarityDistribution) \
            and any(r.start < timeline.birth_date for r in timeline.registrations):
        # Days before birth cannot be weighted by age; paying them would be a guess.
        return replace(base, reason=RejectionReason.REGISTRATION_BEFORE_BIRTH)
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
        # First: a subject outside the contract's target group (another municipality's
        # child, on the trigger date or the contract's day) is `not_eligible` whatever
        # else is wrong with the trigger. A tenant's read role sees no such decision
        # (services/verifier/sql/013_tenant_rows.sql); one rejected for its condition
        # instead would show the tenant the other municipality's child and its chain.
        (not eligible, RejectionReason.NOT_ELIGIBLE),
        (not all(predicate_holds(p, fact.body) for p in trigger.where),
         RejectionReason.CONDITION_NOT_MET),
        (fact.body.get("currency", contract.currency) != contract.currency,
         RejectionReason.CURRENCY_MISMATCH),
        (bool(trigger.reported_by_kinds) and fact.reporter_kind not in trigger.reported_by_kinds,
         RejectionReason.UNTRUSTED_EVIDENCE),
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


def budget_scope(contract: Contract) -> str:
    """Which budget a version draws on: the contract's, shared by every version, or
    (only if the version says `budget: per_version`) its own."""
    if contract.caps.budget == "per_version":
        return f"{contract.contract_id}@v{contract.version}"
    return contract.contract_id


def _apply_subject_cap(versions: Versions, decisions: list[OutcomeDecision]
                       ) -> tuple[OutcomeDecision, ...]:
    """The per-subject cap, one allowance across all versions that share a budget.

    In order of the day an outcome counts (then outcome id, trigger), each verified
    outcome gets what is left under the cap of the version that decides it.
    """
    by_version = {contract.version: contract for contract, _ in versions}
    used: dict[str, int] = {}
    capped: list[OutcomeDecision] = []
    for decision in sorted(decisions, key=lambda d: (d.occurred_on, d.outcome_id, d.trigger_event_id)):
        contract = by_version[decision.contract_version]
        cap = contract.caps.per_subject_minor
        if decision.status != OutcomeStatus.VERIFIED or cap is None:
            capped.append(decision)
            if decision.status == OutcomeStatus.VERIFIED:
                scope = budget_scope(contract)
                used[scope] = used.get(scope, 0) + decision.owed_minor
            continue
        scope = budget_scope(contract)
        decision = scale_to_room(decision, cap - used.get(scope, 0))
        used[scope] = used.get(scope, 0) + decision.owed_minor
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
