"""Contracts as data. An operator writes one as YAML; it is validated into these models.

Rates and weights are decimals written as strings in YAML ("0.05") and used as exact
fractions; amounts are integers in minor units. Nothing here is a float.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from shared.domain.contracts.predicate import Frozen, Predicate
from shared.domain.events import BenefitType, Currency, EducationLevel, EventType, Identifier
from shared.domain.indicators.model import DEFAULT_MINIMUM_CELL, Indicator, Scope
from shared.domain.investment.returns import ReturnRule

MONTH_DAY = Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
AGE_RANGE = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,3}(-[0-9]{1,3})?$")]
AGE_MAX = 130  # years: ages above this are outside a human life, refused at check time
AMOUNT_MINOR_MAX = 10**15  # a quadrillion øre: far above any public budget


def exact(value: Decimal) -> Fraction:
    return Fraction(value)


class Trigger(Frozen):
    event: EventType
    where: tuple[Predicate, ...] = ()
    # The subject's age in whole years on the trigger date must be below / at least this.
    age_below: Annotated[int, Field(ge=0, le=130)] | None = None
    age_at_least: Annotated[int, Field(ge=0, le=130)] | None = None
    # Institution kinds allowed to provide the evidence (trust); empty means any kind.
    reported_by_kinds: tuple[Identifier, ...] = ()


class Sustainment(Frozen):
    """The outcome only counts once it held for `days` with no breaking event in between."""

    days: Annotated[int, Field(ge=1, le=3660)]
    broken_by: tuple[EventType, ...]
    # If set, a breaking event only breaks when this body field equals the trigger's
    # (an employment_ended at another employer does not end this job).
    same_field: Annotated[str, StringConstraints(pattern=r"^[a-z_]+$")] | None = None


class FixedPrice(Frozen):
    kind: Literal["fixed"] = "fixed"
    amount_minor: Annotated[int, Field(gt=0, le=AMOUNT_MINOR_MAX)]


class RatePrice(Frozen):
    """A rate of an amount the trigger event carries; the pot is rounded down."""

    kind: Literal["rate"] = "rate"
    rate: Annotated[Decimal, Field(gt=0, le=1)]
    of_field: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_.]*$")]


Price = Annotated[FixedPrice | RatePrice, Field(discriminator="kind")]


class Payee(Frozen):
    """Who is paid: a named institution, or a role resolved from the subject's history.

    - institution: that institution id (an SIB investor, a fund).
    - previous_institution: the institution whose registration most recently ended
      on or before the trigger date (the one the subject left for the next stage).
    - registered_kind: the institution of `kind` the subject is registered at on the
      trigger date (e.g. the employment actor).
    - event_field: the institution named by a field of the trigger body (`employer`).
    """

    role: Literal["institution", "previous_institution", "registered_kind", "event_field"]
    institution: Identifier | None = None
    kind: Identifier | None = None
    field: Annotated[str, StringConstraints(pattern=r"^[a-z_]+$")] | None = None

    @model_validator(mode="after")
    def _needs_its_argument(self) -> Payee:
        needed = {"institution": "institution", "registered_kind": "kind",
                  "event_field": "field"}.get(self.role)
        if needed is not None and getattr(self, needed) is None:
            raise ValueError(f"payee role {self.role!r} needs {needed!r}")
        return self


class Share(Frozen):
    payee: Payee
    share: Annotated[Decimal, Field(gt=0, le=1)]


class DirectDistribution(Frozen):
    kind: Literal["direct"] = "direct"
    payee: Payee


class SplitDistribution(Frozen):
    kind: Literal["split"] = "split"
    shares: Annotated[tuple[Share, ...], Field(min_length=2, max_length=16)]

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> SplitDistribution:
        if sum(exact(s.share) for s in self.shares) != 1:
            raise ValueError("split shares must add up to exactly 1")
        return self


class YearBasis(Frozen):
    """Calendar years (FIFA since 2022), or school years starting on `starts` (MM-DD)."""

    kind: Literal["calendar", "school"] = "calendar"
    starts: MONTH_DAY = "08-01"

    @model_validator(mode="after")
    def _a_day_every_year(self) -> YearBasis:
        # The year must start on a day every year has: 02-30 never exists, 02-29 only
        # in leap years (the engine would fail on the first year without it).
        month, day = (int(part) for part in self.starts.split("-"))
        try:
            dt.date(2023, month, day)
        except ValueError:
            raise ValueError(f"school year start {self.starts!r} is not a day every year has") from None
        return self


class SolidarityDistribution(Frozen):
    kind: Literal["solidarity"] = "solidarity"
    year_basis: YearBasis = YearBasis()
    # Age (or inclusive age range "12-15") to the weight of each such year.
    weights: dict[AGE_RANGE, Annotated[Decimal, Field(gt=0, le=1)]]
    exclude_institutions: tuple[Identifier, ...] = ()

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> SolidarityDistribution:
        ages = self.age_weights_uncached()
        if sum(ages.values()) != 1:
            total = sum(ages.values())
            raise ValueError(f"weights over all ages must add up to exactly 1 (they add up to {float(total):g})")
        return self

    @cached_property
    def _age_weights(self) -> dict[int, Fraction]:
        return self.age_weights_uncached()

    def age_weights(self) -> dict[int, Fraction]:
        """Weight per age as exact fractions (computed once per frozen rule)."""
        return self._age_weights

    def age_weights_uncached(self) -> dict[int, Fraction]:
        result: dict[int, Fraction] = {}
        for age_range, weight in self.weights.items():
            first, _, last = age_range.partition("-")
            low, high = int(first), int(last or first)
            if high < low:
                raise ValueError(f"@weights: age range {age_range!r} runs backwards")
            if high > AGE_MAX:
                raise ValueError(f"@weights: age range {age_range!r} is outside a life (ages 0-{AGE_MAX})")
            for age in range(low, high + 1):
                if age in result:
                    raise ValueError(f"@weights: age {age} is weighted twice")
                result[age] = exact(weight)
        return result


Distribution = Annotated[
    DirectDistribution | SplitDistribution | SolidarityDistribution,
    Field(discriminator="kind"),
]


class Outcome(Frozen):
    id: Identifier
    description: str = ""
    trigger: Trigger
    sustainment: Sustainment | None = None
    prerequisites: tuple[Identifier, ...] = ()
    deadline: dt.date | None = None
    max_per_subject: Annotated[int, Field(ge=1, le=1000)] = 1
    price: Price
    # A weight on the price by the starting point (parents' highest completed
    # education), e.g. {primary: "1.5"}: a larger bonus for a child whose parents have
    # no education beyond primary school. A level not listed, or no fact: weight 1.
    price_weight_by_parents_education: dict[EducationLevel, Annotated[Decimal, Field(ge=0, le=10)]] = Field(
        default_factory=dict)
    distribution: Distribution


class IndicatorBaseline(Frozen):
    """What an indicator outcome's improvement is measured against.

    `percent`: a published value for the area (e.g. "82.5", the agreement's baseline);
    without it, the area's own value in `year`, measured from the same events as the
    follow-up year (and, with a comparison population, that population's too).
    """

    year: Annotated[int, Field(ge=1900, le=2200)]
    percent: Annotated[Decimal, Field(ge=0, le=100)] | None = None


class AreaDistribution(Frozen):
    """Equal shares for the institutions of the indicator outcome's area (largest
    remainder, ties by institution id)."""

    kind: Literal["area"] = "area"


IndicatorDistribution = Annotated[
    DirectDistribution | SplitDistribution | AreaDistribution,
    Field(discriminator="kind"),
]


class IndicatorOutcome(Frozen):
    """Pays for an indicator's improvement in an area, per percentage point
    (docs/contracts.md, "Indicator outcomes"; decided by
    shared/domain/contracts/indicator_outcomes.py).

    The improvement is the area's value in `year` against its baseline, or (with a
    `comparison` population) the area's change from the baseline year minus the
    comparison's change: difference in differences. Signed so that a change in the
    indicator's `better` direction is positive. Decided once the event-time clock
    reaches `review_on`, and re-decided when late facts change the measured value.
    """

    id: Identifier
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    indicator: Indicator
    # The treated population: the catchment of these institutions (shared/domain/indicators).
    area: Scope
    # Difference in differences against this population (no institutions: everyone
    # outside the area). A subject in the area's catchment is never in the comparison.
    comparison: Scope | None = None
    baseline: IndicatorBaseline
    year: Annotated[int, Field(ge=1900, le=2200)]
    review_on: dt.date
    price_per_point_minor: Annotated[int, Field(gt=0, le=AMOUNT_MINOR_MAX)]
    # The smallest improvement (percentage points) that pays; from it on, every point
    # counts from zero. A worsening never pays and never charges.
    floor_points: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(0)
    cap_minor: Annotated[int, Field(gt=0, le=AMOUNT_MINOR_MAX)]
    # A population (any measured cell's denominator) smaller than this is not paid on.
    minimum_cell: Annotated[int, Field(ge=1, le=10_000)] = DEFAULT_MINIMUM_CELL
    distribution: IndicatorDistribution

    @model_validator(mode="after")
    def _measurable(self) -> IndicatorOutcome:
        if self.baseline.year >= self.year:
            raise ValueError(f"@baseline.year: {self.baseline.year} is not before the measured year {self.year}")
        if self.comparison is not None and self.baseline.percent is not None:
            raise ValueError("@baseline.percent: a comparison population is measured from the events in the "
                             "baseline year; a published percentage cannot be compared with it")
        period_end = self.indicator.period.reference_day(self.year)
        if self.review_on <= period_end:
            raise ValueError(f"@review_on: {self.review_on} is not after the measured period, which ends "
                             f"{period_end}")
        rule = self.distribution
        payees = (rule.payee,) if isinstance(rule, DirectDistribution) else \
            tuple(s.payee for s in rule.shares) if isinstance(rule, SplitDistribution) else ()
        if any(p.role != "institution" for p in payees):
            raise ValueError("@distribution: an indicator outcome pays named institutions (role: institution) "
                             "or the area's institutions (kind: area); other roles need a subject's history")
        if isinstance(rule, AreaDistribution) and not self.area.institutions:
            raise ValueError("@distribution: kind area needs an area with institutions")
        return self

    def payee_institutions(self) -> tuple[str, ...]:
        rule = self.distribution
        if isinstance(rule, AreaDistribution):
            return tuple(sorted(set(self.area.institutions)))
        if isinstance(rule, DirectDistribution):
            return (rule.payee.institution or "",)
        return tuple(sorted({s.payee.institution or "" for s in rule.shares}))


class PeriodCap(Frozen):
    period: Literal["calendar_year"] = "calendar_year"
    amount_minor: Annotated[int, Field(gt=0, le=AMOUNT_MINOR_MAX)]


class Caps(Frozen):
    """Limits on what a contract pays (docs/contracts.md, "Caps and budgets").

    `budget: shared` (the default) makes every version of the contract draw on one
    budget: a new version does not reset what the subject or the contract has used.
    `per_version` gives this version a budget of its own, and must be said explicitly.
    A total or per-period cap decides who gets the last room by rank (occurred_on,
    outcome key) among final claims: every outcome (capped or not) is final once the
    watermark is `review_days` past the day it counts (default 15).
    """

    per_subject_minor: Annotated[int, Field(gt=0, le=AMOUNT_MINOR_MAX)] | None = None
    total_minor: Annotated[int, Field(gt=0, le=AMOUNT_MINOR_MAX)] | None = None
    per_period: PeriodCap | None = None
    budget: Literal["shared", "per_version"] = "shared"
    # The review window (docs/contracts.md, "Finality"): an outcome is provisional until
    # the watermark passes the day it counts plus these days, then decided once.
    review_days: Annotated[int, Field(ge=0, le=3660)] = 15

    @property
    def contract_wide(self) -> bool:
        """A total or per-period cap: room shared by all subjects (a budget)."""
        return self.total_minor is not None or self.per_period is not None


class Period(Frozen):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError("period end is before its start")
        return self

    def contains(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


class EnrolledOn(Frozen):
    date: dt.date
    kinds: tuple[Identifier, ...] = ()
    municipality: Identifier | None = None


class ResidentOn(Frozen):
    """The subject lived in `municipality` on the day: its latest `residence` fact on or
    before the day names it (the CPR register's moves; docs/tenancy.md). The day is
    either one `date` for the whole contract (the subject is eligible or not for every
    outcome), or `at: trigger`: each outcome's own trigger date, so a child who moved is
    paid for by the municipality it lived in when the outcome happened. A move dated on
    the day itself counts (inclusive); no move known on or before it: not eligible.

    `date` is the form every contract had before `at` existed, and keeps its meaning."""

    date: dt.date | None = None
    at: Literal["trigger"] | None = None
    municipality: Identifier

    @model_validator(mode="after")
    def _one_day(self) -> ResidentOn:
        if self.date is not None and self.at is not None:
            raise ValueError("@at: give either `date: YYYY-MM-DD` (one day for every outcome) or "
                             "`at: trigger` (each outcome's own trigger date), not both")
        if self.date is None and self.at is None:
            raise ValueError("name the day: `date: YYYY-MM-DD` (one day for every outcome) or "
                             "`at: trigger` (each outcome's own trigger date)")
        return self


class Places(Frozen):
    municipality: Identifier
    cluster: Identifier
    places: Annotated[int, Field(ge=1, le=100_000)]


class ReferralRule(Frozen):
    """The target group of an employment programme: citizens the municipality referred
    to `programme` (a `referral` fact) while they received one of `benefits` (the
    benefit register's facts) on the day of the referral (shared/domain/contracts/target_group.py).
    Whether the referral found a free place is the programme's intake, decided over all
    referrals (shared/domain/programmes/double_sided.py)."""

    programme: Identifier
    benefits: Annotated[tuple[BenefitType, ...], Field(min_length=1)]
    # The places per municipality and cluster. With places, only a referral to a listed
    # cluster makes a citizen eligible, a citizen's first such referral claims a place,
    # and the claims are granted in the order of the referrals (day, then claim key):
    # the outcomes of a citizen who found no place are rejected `over_capacity`.
    places: Annotated[tuple[Places, ...], Field(max_length=1000)] = ()

    @model_validator(mode="after")
    def _clusters_once(self) -> ReferralRule:
        keys = [(p.municipality, p.cluster) for p in self.places]
        if len(set(keys)) != len(keys):
            raise ValueError("@places: each municipality's cluster is listed once")
        return self

    def places_of(self, municipality: str, cluster: str) -> int | None:
        return next((p.places for p in self.places if (p.municipality, p.cluster) == (municipality, cluster)), None)


class Eligibility(Frozen):
    birth_year_from: Annotated[int, Field(ge=1900, le=2200)] | None = None
    birth_year_to: Annotated[int, Field(ge=1900, le=2200)] | None = None
    enrolled_on: EnrolledOn | None = None
    resident_on: ResidentOn | None = None
    # The starting point (a `parental_education` fact): only subjects whose parents'
    # highest completed education is one of these. Empty: no condition; set and no
    # fact known: not eligible (shared/domain/contracts/mobility.py).
    parents_education_in: tuple[EducationLevel, ...] = ()
    referral: ReferralRule | None = None


class Contract(Frozen):
    contract_id: Identifier
    version: Annotated[int, Field(ge=1)]
    kind: Literal["mobility_bonus", "payment_by_results", "social_impact_bond",
                  "solidarity", "other"] = "other"
    title: str = ""
    payer: Identifier
    currency: Currency
    period: Period
    # From which trigger date this version takes over from earlier versions of the same
    # contract (default: its period's start).
    effective_from: dt.date | None = None
    # Where unallocated solidarity money goes (FIFA: the association's youth fund);
    # None means the payer keeps it.
    fallback_account: Identifier | None = None
    eligibility: Eligibility = Eligibility()
    outcomes: Annotated[tuple[Outcome, ...], Field(max_length=64)] = ()
    # Outcomes over a population rather than a subject (docs/contracts.md).
    indicator_outcomes: Annotated[tuple[IndicatorOutcome, ...], Field(max_length=16)] = ()
    caps: Caps = Caps()
    # A social impact bond's return rule (docs/investment.md): who financed the work, with
    # how much, and at most what return. Fixed for the contract: every version carries
    # the same rule (shared/domain/contracts/book.py refuses one that changes it).
    investment: ReturnRule | None = None

    @model_validator(mode="after")
    def _outcomes_consistent(self) -> Contract:
        if not self.outcomes and not self.indicator_outcomes:
            raise ValueError("@outcomes: a contract needs at least one outcome or indicator outcome")
        ids = [o.id for o in self.outcomes]
        if len({*ids, *(o.id for o in self.indicator_outcomes)}) != len(ids) + len(self.indicator_outcomes):
            raise ValueError("outcome ids must be unique within a contract")
        for outcome in self.outcomes:
            for prerequisite in outcome.prerequisites:
                if prerequisite not in ids:
                    raise ValueError(f"outcome {outcome.id!r} names unknown prerequisite {prerequisite!r}")
        cycle = prerequisite_cycle(self.outcomes)
        if cycle:
            index = ids.index(cycle[0])
            raise ValueError(f"@outcomes.{index}.prerequisites: prerequisites form a cycle: "
                             f"{' -> '.join(cycle)}")
        return self

    @model_validator(mode="after")
    def _dates_inside_period(self) -> Contract:
        # A version taking over after its own period, or an outcome due before the
        # period starts, can never pay: refused rather than silently inert.
        period = self.period
        if self.effective_from is not None and not period.contains(self.effective_from):
            raise ValueError(f"@effective_from: {self.effective_from} is outside the period "
                             f"{period.start} .. {period.end}")
        for index, outcome in enumerate(self.outcomes):
            if outcome.deadline is not None and not period.contains(outcome.deadline):
                raise ValueError(f"@outcomes.{index}.deadline: {outcome.deadline} is outside "
                                 f"the period {period.start} .. {period.end}")
        for index, measured in enumerate(self.indicator_outcomes):
            if not period.contains(measured.review_on):
                raise ValueError(f"@indicator_outcomes.{index}.review_on: {measured.review_on} is outside "
                                 f"the period {period.start} .. {period.end}")
        rules = self.eligibility
        if rules.referral is not None and rules.referral.places and self.caps.contract_wide:
            # A citizen over capacity must not rank in the money budget first: places and
            # a contract-wide budget in one contract would need an order between them.
            raise ValueError("@eligibility.referral.places: places cannot be combined with a total "
                             "or per-period cap")
        if rules.birth_year_from is not None and rules.birth_year_to is not None \
                and rules.birth_year_to < rules.birth_year_from:
            raise ValueError("@eligibility.birth_year_to: is before birth_year_from")
        return self

    @model_validator(mode="after")
    def _investor_paid_within_the_rule(self) -> Contract:
        # The payer must never pay the investor beyond principal plus the allowed return:
        # the contract's total cap is that bound, on one budget across versions, and every
        # outcome pays the investor directly (so the cap is the investor's).
        rule = self.investment
        if rule is None:
            return self
        if self.indicator_outcomes:
            # The investor's bound is the contract's total cap, which indicator outcomes
            # (each limited by its own cap_minor) do not draw on.
            raise ValueError("@indicator_outcomes: a contract with a return rule cannot have indicator outcomes")
        if self.caps.total_minor is None or self.caps.total_minor > rule.cap_minor:
            raise ValueError(f"@caps.total_minor: a contract with a return rule caps its payments at most at "
                             f"principal plus the allowed return ({rule.cap_minor})")
        if self.caps.budget != "shared":
            raise ValueError("@caps.budget: a contract with a return rule has one budget across versions (shared)")
        for index, outcome in enumerate(self.outcomes):
            payee = outcome.distribution.payee if isinstance(outcome.distribution, DirectDistribution) else None
            if payee is None or payee.role != "institution" or payee.institution != rule.investor:
                raise ValueError(f"@outcomes.{index}.distribution: under a return rule every outcome pays "
                                 f"the investor {rule.investor!r} directly")
        return self

    def outcome(self, outcome_id: str) -> Outcome:
        for outcome in self.outcomes:
            if outcome.id == outcome_id:
                return outcome
        raise KeyError(outcome_id)


def prerequisite_cycle(outcomes: tuple[Outcome, ...]) -> list[str]:
    """A cycle of prerequisites (ids, first repeated at the end), or [] if there is none."""
    needs = {o.id: o.prerequisites for o in outcomes}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        # Recursion depth is bounded by the 64 outcomes a contract may have.
        state[node] = 1
        path.append(node)
        for prerequisite in needs.get(node, ()):
            if state.get(prerequisite) == 1:
                return [*path[path.index(prerequisite):], prerequisite]
            if prerequisite not in state:
                found = visit(prerequisite)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for outcome in outcomes:
        if outcome.id not in state:
            found = visit(outcome.id)
            if found:
                return found
    return []


def effective_from(contract: Contract) -> dt.date:
    return contract.effective_from or contract.period.start


def contract_record_key(contract: Contract, signer: str) -> bytes:
    """The contracts topic's key of a version signed by `signer` (a principal,
    `operator:<name>`): `payer/contract_id@version/signer`.

    The topic is compacted: the broker keeps the latest record per key. Were the key
    `contract_id@version` alone, another tenant's record for the same version (refused by
    every verifier: `contract_payer_changed`, `foreign_tenant_contract`) would, once
    compacted, delete the genuine version, and a verifier or `stafet audit` reading the
    topic afresh would lose it. Naming the payer and the signer in the key keeps a foreign
    record under a key of its own; readers do not use the key (the record and its
    signature say what it is). Records published before under `contract_id@version` keep
    their keys: `stafet contract apply` of the same files publishes them again under these.
    """
    return f"{contract.payer}/{contract.contract_id}@{contract.version}/{signer}".encode()
