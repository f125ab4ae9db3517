"""Double-sided Payment by Results (Den Sociale Kapitalfond's model) as data: its
places, its intake of referrals, and its verdict per municipality and cluster.

Two tracks are paid on results together: citizens far from the labour market (on cash
or integration benefit, referred by their municipality; 6 months of labour-market
training, then 6 months of job training; the outcome is an ordinary, unsubsidised job)
and social-economy companies in a 12-month accelerator (the outcome is growth in jobs
or turnover, a fact from the business register). Each track is an ordinary contract
(`citizen_contract`, `company_contract`) that the verifier decides and the ledger pays;
this module adds what spans subjects:

- **Intake.** Each municipality has a number of places per cluster (in the citizens'
  contract, where the verifier enforces them: `shared/domain/contracts/payments.py`,
  `place_requests`). A citizen's first eligible referral claims a place; claims are
  granted in the order of the referrals (day, then claim key); a referral that finds its
  cluster full is recorded as `over_capacity` (and the citizen's outcomes are rejected
  with that reason), never silently dropped, and so are referrals to a cluster without
  places, of a citizen not on an eligible benefit, or of a citizen already referred.
- **Verdict.** Per municipality and cluster: what the two contracts paid for the
  admitted citizens and the cluster's companies, against the benefit the municipality
  did not pay, measured from the citizens' own facts (whole months off benefit since
  the referral, times the monthly benefit), and whether the savings the citizens now
  off benefit make over the next 12 months would pay for another round like this one.

The savings are gross: without a comparison group some of the months off benefit would
have come anyway. The business case (cli/reporting/skandia.py) applies the measured
effect; this verdict states what the facts show. Money is integer minor units.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.domain.contracts.evaluation import OutcomeDecision, OutcomeStatus
from shared.domain.contracts.model import AMOUNT_MINOR_MAX, Contract
from shared.domain.contracts.payments import grant_budget, place_key, place_requests
from shared.domain.contracts.target_group import (
    benefit_on,
    benefit_periods,
    eligible_referrals,
    months_off_benefit,
    referrals,
)
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.events import BenefitType, Currency, EventType, Identifier
from shared.domain.yaml_model import load_yaml_model

CLUSTERS_MAX = 200
FOLLOW_ON_MONTHS = 12  # "from then on": the savings of the next 12 months against another round


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cluster(Frozen):
    """A municipality's cluster; its places are the citizens' contract's
    (`eligibility.referral.places`), where the verifier enforces them."""

    id: Identifier
    municipality: Identifier
    # The social-economy companies in this cluster's accelerator (institution ids).
    companies: tuple[Identifier, ...] = ()


class Track(Frozen):
    labour_market_training_months: Annotated[int, Field(ge=0, le=60)] = 6
    job_training_months: Annotated[int, Field(ge=0, le=60)] = 6


class Programme(Frozen):
    programme_id: Identifier
    title: str = ""
    currency: Currency
    citizen_contract: Identifier
    company_contract: Identifier
    track: Track = Track()
    accelerator_months: Annotated[int, Field(ge=1, le=60)] = 12
    clusters: Annotated[tuple[Cluster, ...], Field(min_length=1, max_length=CLUSTERS_MAX)]
    # What a month of each benefit costs the municipality, in minor units.
    monthly_benefit_minor: dict[BenefitType, Annotated[int, Field(ge=0, le=AMOUNT_MINOR_MAX)]]
    source: str = ""

    @model_validator(mode="after")
    def _clusters_unique(self) -> Programme:
        keys = [(c.municipality, c.id) for c in self.clusters]
        if len(set(keys)) != len(keys):
            raise ValueError("a municipality names each cluster once")
        return self

    def cluster(self, municipality: str, cluster: str) -> Cluster | None:
        return next((c for c in self.clusters if (c.municipality, c.id) == (municipality, cluster)), None)


class ProgrammeError(ValueError):
    """A programme file that cannot be used, or contracts that do not fit it; the
    message names the file or contract and the field."""


PROGRAMME_FILE_BYTES_MAX = 1_000_000


def load_programme(path: Path) -> Programme:
    return load_yaml_model(path, Programme, "programme_id, contracts and clusters", ProgrammeError,
                           bytes_max=PROGRAMME_FILE_BYTES_MAX)


def check_contracts(programme: Programme, contracts: Iterable[Contract]) -> tuple[Contract, Contract]:
    """The latest versions of the programme's two contracts; the citizen contract must
    take its target group from this programme's referrals."""
    latest: dict[str, Contract] = {}
    for contract in contracts:
        if contract.version >= latest.get(contract.contract_id, contract).version:
            latest[contract.contract_id] = contract
    missing = [c for c in (programme.citizen_contract, programme.company_contract) if c not in latest]
    if missing:
        raise ProgrammeError(f"programme {programme.programme_id}: no contract {', '.join(missing)} given")
    citizen = latest[programme.citizen_contract]
    rule = citizen.eligibility.referral
    if rule is None or rule.programme != programme.programme_id:
        raise ProgrammeError(f"contract {citizen.contract_id}: eligibility.referral must name programme "
                             f"{programme.programme_id}")
    clusters = {(c.municipality, c.id) for c in programme.clusters}
    places = {(p.municipality, p.cluster) for p in rule.places}
    if clusters != places:
        raise ProgrammeError(f"contract {citizen.contract_id}: eligibility.referral.places must list the "
                             f"programme's clusters, each once (differ: "
                             f"{', '.join(sorted('/'.join(k) for k in clusters ^ places))})")
    for contract in (citizen, latest[programme.company_contract]):
        if contract.currency != programme.currency:
            raise ProgrammeError(f"contract {contract.contract_id} pays in {contract.currency}, "
                                 f"the programme counts in {programme.currency}")
    return citizen, latest[programme.company_contract]


def company_subject(cvr: str) -> str:
    """How the business register names a company as a subject: `cvr:` and the SHA-256 of
    its CVR number (public, so a hash is a name, not a secret), in the pseudonym shape."""
    return "cvr:" + hashlib.sha256(cvr.encode()).hexdigest()


class IntakeReason(StrEnum):
    OVER_CAPACITY = "over_capacity"
    UNKNOWN_CLUSTER = "unknown_cluster"
    NOT_ON_ELIGIBLE_BENEFIT = "not_on_eligible_benefit"
    # A citizen's first eligible referral claims their place; a later one claims nothing.
    ALREADY_REFERRED = "already_referred"


@dataclass(frozen=True)
class IntakeDecision:
    subject: str
    referral_event_id: str
    referred_on: dt.date
    municipality: str
    cluster: str
    benefit: str | None  # received on the day of the referral
    admitted: bool
    reason: IntakeReason | None


def intake(programme: Programme, citizen_contract: Contract,
           timelines: Iterable[SubjectTimeline]) -> tuple[IntakeDecision, ...]:
    """Every referral to the programme, admitted or refused with its reason. Admission
    is the verifier's own rule (`place_requests` granted by `grant_budget`, in the order
    of the referrals), so the intake shown here is the one the contract pays by."""
    rule = citizen_contract.eligibility.referral
    assert rule is not None  # check_contracts refuses a citizen contract without one
    timelines = tuple(timelines)
    claims = [r for t in timelines for r in place_requests(citizen_contract, t)]
    grants = grant_budget(claims)
    decisions = []
    for timeline in timelines:
        periods = benefit_periods(timeline)
        first = next(iter(eligible_referrals(rule, timeline)), None)
        for fact in referrals(timeline, programme.programme_id):
            municipality, cluster = str(fact.body.get("municipality")), str(fact.body.get("cluster"))
            benefit = benefit_on(periods, fact.occurred_on)
            reason = None
            if rule.places_of(municipality, cluster) is None:
                reason = IntakeReason.UNKNOWN_CLUSTER
            elif benefit not in rule.benefits:
                reason = IntakeReason.NOT_ON_ELIGIBLE_BENEFIT
            elif first is None or first.event_id != fact.event_id:
                reason = IntakeReason.ALREADY_REFERRED
            elif grants.get(place_key(citizen_contract.contract_id, timeline.subject)) != 1:
                reason = IntakeReason.OVER_CAPACITY
            decisions.append(IntakeDecision(timeline.subject, fact.event_id, fact.occurred_on, municipality,
                                            cluster, benefit, reason is None, reason))
    return tuple(sorted(decisions, key=lambda d: (d.referred_on, d.referral_event_id)))


@dataclass(frozen=True)
class ClusterVerdict:
    municipality: str
    cluster: str
    places: int
    admitted: int
    refused: Mapping[str, int]            # reason code -> referrals
    # Admitted citizens who finished the track (left its job-training stage).
    completed_track: int
    citizens_in_ordinary_job: int          # admitted citizens with a verified citizen outcome
    companies_grown: int                   # the cluster's companies with a verified growth outcome
    citizen_payments_minor: int
    company_payments_minor: int
    # What the citizen contract paid for referrals that were not admitted: 0 when the
    # places are enforced (the verifier rejects them over_capacity); shown, never netted
    # away, should decisions from before the places were applied be given.
    paid_outside_places_minor: int
    months_off_benefit: int
    savings_minor: int
    off_benefit_now: int
    next_year_savings_minor: int

    @property
    def payments_minor(self) -> int:
        return self.citizen_payments_minor + self.company_payments_minor

    @property
    def net_minor(self) -> int:
        return self.savings_minor - self.payments_minor

    @property
    def paid_off(self) -> bool:
        return self.savings_minor >= self.payments_minor

    @property
    def self_financing(self) -> bool:
        """Would the next 12 months' savings of the citizens now off benefit pay for
        another round that costs what this one did?"""
        return self.next_year_savings_minor >= self.payments_minor


JOB_TRAINING = "job_training"  # the track's second stage, as the employment actor reports it


def _completed_track(timeline: SubjectTimeline) -> bool:
    return any(f.type == EventType.LEFT and f.body.get("stage") == JOB_TRAINING for f in timeline.facts)


def _verified_owed(decisions: Iterable[OutcomeDecision], contract_id: str) -> dict[str, int]:
    owed: dict[str, int] = {}
    for decision in decisions:
        if decision.contract_id == contract_id and decision.status == OutcomeStatus.VERIFIED:
            owed[decision.subject] = owed.get(decision.subject, 0) + decision.owed_minor
    return owed


def _grown_companies(timelines: Mapping[str, SubjectTimeline], decisions: Iterable[OutcomeDecision],
                     company_contract: str) -> dict[str, int]:
    """Company institution id -> what the company contract owes for its growth."""
    triggers = {(d.subject, d.trigger_event_id): d.owed_minor for d in decisions
                if d.contract_id == company_contract and d.status == OutcomeStatus.VERIFIED}
    owed: dict[str, int] = {}
    for (subject, event_id), amount in triggers.items():
        timeline = timelines.get(subject)
        fact = next((f for f in timeline.facts if f.event_id == event_id), None) if timeline else None
        if fact is not None and fact.type == EventType.COMPANY_GROWTH:
            company = str(fact.body.get("company"))
            owed[company] = owed.get(company, 0) + amount
    return owed


def verdict(programme: Programme, contracts: Iterable[Contract], timelines: Mapping[str, SubjectTimeline],
            decisions: Iterable[OutcomeDecision], on: dt.date) -> tuple[tuple[IntakeDecision, ...],
                                                                         tuple[ClusterVerdict, ...]]:
    """The intake and the verdict per municipality and cluster, as of `on`, from the
    subjects' facts and the two contracts' decisions over them, as settled (after
    budgets and places: `decide_all`'s decisions, not `evaluate`'s)."""
    citizen, company = check_contracts(programme, contracts)
    decisions = tuple(decisions)
    decided = intake(programme, citizen, (timelines[s] for s in sorted(timelines)))
    citizen_owed = _verified_owed(decisions, citizen.contract_id)
    company_owed = _grown_companies(timelines, decisions, company.contract_id)
    results = []
    for cluster in programme.clusters:
        mine = [d for d in decided if (d.municipality, d.cluster) == (cluster.municipality, cluster.id)]
        admitted = [d for d in mine if d.admitted]
        admitted_subjects = {d.subject for d in admitted}
        refused: dict[str, int] = {}
        for d in mine:
            if d.reason is not None:
                refused[d.reason.value] = refused.get(d.reason.value, 0) + 1
        outside = {d.subject for d in mine if not d.admitted} - admitted_subjects
        months = savings = now_off = next_year = 0
        for d in admitted:
            periods = benefit_periods(timelines[d.subject])
            monthly = programme.monthly_benefit_minor.get(d.benefit, 0)  # type: ignore[call-overload]
            off = months_off_benefit(periods, d.referred_on, on)
            months += off
            savings += off * monthly
            if on > d.referred_on and benefit_on(periods, on) is None:
                # Off benefit today: a month's benefit saved for each of the next 12.
                now_off += 1
                next_year += FOLLOW_ON_MONTHS * monthly
        results.append(ClusterVerdict(
            municipality=cluster.municipality, cluster=cluster.id,
            places=citizen.eligibility.referral.places_of(cluster.municipality, cluster.id) or 0,  # type: ignore[union-attr]
            admitted=len(admitted), refused=dict(sorted(refused.items())),
            completed_track=sum(1 for s in admitted_subjects if _completed_track(timelines[s])),
            citizens_in_ordinary_job=sum(1 for s in admitted_subjects if citizen_owed.get(s, 0) > 0),
            companies_grown=sum(1 for c in cluster.companies if company_owed.get(c, 0) > 0),
            citizen_payments_minor=sum(citizen_owed.get(s, 0) for s in admitted_subjects),
            company_payments_minor=sum(company_owed.get(c, 0) for c in cluster.companies),
            paid_outside_places_minor=sum(citizen_owed.get(s, 0) for s in outside),
            months_off_benefit=months, savings_minor=savings, off_benefit_now=now_off,
            next_year_savings_minor=next_year))
    return decided, tuple(results)
