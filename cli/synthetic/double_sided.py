"""A synthetic double-sided PbR cohort (examples/programmes/double-sided-pbr.yaml):
citizens on cash or integration benefit referred to the programme's clusters, their
two training halves, jobs (some subsidised, some lost), benefit periods ending and
starting again; and the accelerator companies' growth from the business register.

Seeded (`random.Random(seed)`), so the same arguments give the same events. It refers
more citizens than there are places (and one citizen on another benefit) so that the
intake has over-capacity and ineligible referrals to record. Separate from
`cli/synthetic/population.py`, whose population the pinned tests and the demo depend on.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from shared.domain.contracts.model import Contract
from shared.domain.institutions import InstitutionRegistry
from shared.domain.programmes.double_sided import JOB_TRAINING, Programme, company_subject

D = dt.date
ONE_DAY = dt.timedelta(days=1)
COHORT_START = D(2024, 2, 1)
# (occurred_on, reported_by, subject reference, body): one event in the cohort's list.
Emit = Callable[[dt.date, str, dict[str, str], dict[str, object]], None]


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    return D(day.year + month // 12, month % 12 + 1, 1)


def cohort_events(programme: Programme, citizen_contract: Contract, registry: InstitutionRegistry, *, seed: int = 1,
                  start: dt.date = COHORT_START, extra_referrals: int = 1,
                  job_rate: float = 0.6, actor: str = "jobvejen") -> list[dict[str, object]]:
    """Events (CPR numbers in clear, as institutions' own files hold them) for every
    cluster's places plus `extra_referrals` over capacity, one ineligible referral, and
    one growth fact per accelerator company."""
    rule = citizen_contract.eligibility.referral
    if rule is None:
        raise ValueError(f"contract {citizen_contract.contract_id} names no referral rule (no target group)")
    chance = random.Random(seed)
    events: list[dict[str, object]] = []

    def emit(on: dt.date, by: str, subject: dict[str, str], body: dict[str, object]) -> None:
        events.append({"event_id": f"dsp-{len(events) + 1:06d}", "occurred_on": on.isoformat(),
                       "reported_by": by, "subject": subject, "body": body})

    number = 0
    for cluster in programme.clusters:
        payer = next(i.id for i in registry.all() if i.kind == "municipality"
                     and i.municipality == cluster.municipality)
        places = rule.places_of(cluster.municipality, cluster.id) or 0
        for place in range(places + extra_referrals + 1):
            number += 1
            birth = D(1975 + chance.randrange(25), 1 + chance.randrange(12), 1 + chance.randrange(28))
            who = {"cpr": f"{birth:%d%m%y}-{(0 if birth.year < 2000 else 4)}{number % 1000:03d}"}
            # The last referral of each cluster is of a citizen on unemployment benefit:
            # outside the target group, recorded as such by the intake.
            benefit = ("unemployment_benefit" if place == places + extra_referrals
                       else chance.choice(["cash_benefit", "cash_benefit", "integration_benefit"]))
            on_benefit = start - dt.timedelta(days=chance.randint(200, 900))
            emit(on_benefit, "benefit-register", who,
                 {"type": "benefit_started", "benefit": benefit, "municipality": cluster.municipality})
            referred = start + dt.timedelta(days=place)  # in order: the last ones find no place
            emit(referred, payer, who, {"type": "referral", "programme": programme.programme_id,
                                        "municipality": cluster.municipality, "cluster": cluster.id})
            _track(emit, who, referred, programme, actor)
            if chance.random() < job_rate:
                _job(emit, who, benefit, _add_months(referred, 12) + dt.timedelta(days=chance.randint(0, 60)),
                     chance, cluster.companies)
        for company in cluster.companies:
            _growth(emit, registry, company, start, programme.accelerator_months, chance)
    return events


def _track(emit: Emit, who: dict[str, str], referred: dt.date, programme: Programme, actor: str) -> None:
    """6 months of labour-market training, then 6 months of job training (by default)."""
    first = referred + ONE_DAY
    middle = _add_months(first, programme.track.labour_market_training_months)
    end = _add_months(middle, programme.track.job_training_months) - ONE_DAY
    emit(first, actor, who, {"type": "enrolled", "institution": actor, "stage": "labour_market_training"})
    emit(middle - ONE_DAY, actor, who, {"type": "left", "institution": actor, "stage": "labour_market_training"})
    emit(middle, actor, who, {"type": "enrolled", "institution": actor, "stage": JOB_TRAINING})
    emit(end, actor, who, {"type": "left", "institution": actor, "stage": JOB_TRAINING})


def _job(emit: Emit, who: dict[str, str], benefit: str, hired: dt.date, chance: random.Random,
         companies: tuple[str, ...]) -> None:
    employer = chance.choice(companies) if companies and chance.random() < 0.5 else "ordinary-employer"
    subsidised = chance.random() < 0.15
    emit(hired, "income-register", who, {"type": "employment_started", "employer": employer,
                                         "wage_subsidy": subsidised})
    emit(hired - ONE_DAY, "benefit-register", who, {"type": "benefit_ended", "benefit": benefit})
    if chance.random() < 0.25:  # lost within the sustainment period: back on benefit
        lost = hired + dt.timedelta(days=chance.randint(30, 150))
        emit(lost, "income-register", who, {"type": "employment_ended", "employer": employer})
        emit(lost + ONE_DAY, "benefit-register", who,
             {"type": "benefit_started", "benefit": benefit, "municipality": "sonderborg"})


def _growth(emit: Emit, registry: InstitutionRegistry, company: str, start: dt.date, months: int,
            chance: random.Random) -> None:
    institution = registry.get(company)
    if institution is None or institution.cvr is None:
        raise ValueError(f"accelerator company {company!r} has no CVR number in the registry")
    end = _add_months(start, months) - ONE_DAY
    employees = chance.randint(4, 20)
    turnover = chance.randint(2_000_000, 9_000_000) * 100
    employees_end = employees + chance.choice([0, 1, 2, 3])
    turnover_end = turnover * chance.randint(95, 130) // 100
    growth = (100 * (turnover_end - turnover)) // turnover
    emit(end + dt.timedelta(days=30), "business-register",
         {"pseudonym": company_subject(institution.cvr), "birth_date": "2015-03-01"},
         {"type": "company_growth", "company": company, "period_start": start.isoformat(),
          "period_end": end.isoformat(), "employees_start": employees, "employees_end": employees_end,
          "employees_change": employees_end - employees, "turnover_start_minor": turnover,
          "turnover_end_minor": turnover_end, "turnover_change_percent": growth, "currency": "DKK"})
