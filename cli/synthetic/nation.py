"""A small synthetic nation: a few municipalities, each a tenant of one clearing house,
children who move between them (docs/tenancy.md, `stafet demo --nation`).

Deterministic from its seed. Each municipality has daycares, primary schools and a youth
education, and pays a next-stage bonus (DKK 5,000 to the institution a child leaves, on
each enrolment at the next stage) for the children registered at one of its institutions
on the contract's day: the contract's rule for which municipality pays. A child who moved
after its daycare years is paid for by the municipality it moved to, and that payment goes
to the daycare back home: a cross-border line.

The sizes are synthetic. Denmark's totals that a national run would be scaled to (98
municipalities, about 57,000 births a year, about 1,100 public schools and some 3,900
daycare units) are in docs/tenancy.md with their sources; this generator only keeps the
proportions small enough for a demo.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from cli.reporting.skandia import ExclusionModel
from shared.domain.contracts.model import Contract
from shared.domain.institutions import Institution, synthetic_payee_fields
from shared.domain.tenancy import Tenant, TenantKind

D = dt.date
# Who pays: the municipality a child is registered in on this day (in school or youth
# education for the children born below).
PAYER_DAY = D(2020, 9, 1)
BORN_FROM, BORN_TO = 2004, 2006
BONUS_MINOR = 500_000
# Children moving to another municipality, per year (an assumption of this synthetic
# nation, not a published rate).
MOVE_RATE = 0.04
KINDS = (("daycare", 2, "daycare"), ("primary_school", 2, "primary"), ("youth_education", 1, "youth"))


@dataclass(frozen=True)
class Nation:
    municipalities: tuple[str, ...]
    institutions: tuple[Institution, ...]
    events: tuple[dict[str, object], ...]
    contracts: tuple[Contract, ...]
    tenants: tuple[Tenant, ...]

    def municipality_of(self, institution_id: str) -> str:
        return next((i.municipality for i in self.institutions if i.id == institution_id), "")


def municipality_id(n: int) -> str:
    return f"kommune-{n:03d}"


def _institutions(municipalities: int) -> list[Institution]:
    result = []
    for m in range(municipalities):
        town = municipality_id(m)
        result.append(Institution(id=town, name=f"Kommune {m:03d} (synthetic)", kind="municipality",
                                  municipality=town, **synthetic_payee_fields(town)))
        for kind, count, _ in KINDS:
            for n in range(count):
                institution_id = f"{town}-{kind.replace('_', '-')}-{n}"
                result.append(Institution(id=institution_id, name=f"{kind.replace('_', ' ').title()} {m:03d}-{n}",
                                          kind=kind, municipality=town, **synthetic_payee_fields(institution_id)))
    return result


def _contract(town: str) -> Contract:
    return Contract.model_validate({
        "contract_id": f"{town}-next-stage", "version": 1, "kind": "other", "payer": town, "currency": "DKK",
        "title": f"{town}: next-stage bonus for the children registered here on {PAYER_DAY}",
        "period": {"start": "2000-01-01", "end": "2099-12-31"},
        "eligibility": {"enrolled_on": {"date": PAYER_DAY.isoformat(), "municipality": town}},
        "outcomes": [{"id": "moved-on", "trigger": {"event": "enrolled"}, "max_per_subject": 10,
                      "price": {"kind": "fixed", "amount_minor": BONUS_MINOR},
                      "distribution": {"kind": "direct", "payee": {"role": "previous_institution"}}}]})


def tenant_of(town: str) -> Tenant:
    return Tenant(id=town, name=f"Kommune {town[-3:]} (synthetic)", kind=TenantKind.MUNICIPALITY, municipality=town,
                  operators=(f"{town}-ops",), finance=(f"{town}-finance",),
                  database_roles=(f"stafet_tenant_{town.replace('-', '_')}",))


def _cpr(birth: dt.date, n: int) -> str:
    return f"{birth:%d%m%y}-{4 + n // 1000}{n % 1000:03d}"


def generate_nation(municipalities: int, children: int, seed: int, move_rate: float = MOVE_RATE) -> Nation:
    """`municipalities` tenants and `children` children born 2004-2006, each municipality
    twice the size of the next smaller one at most (sizes drawn from the seed)."""
    if municipalities < 2:
        raise ValueError("a nation needs at least two municipalities")
    chance = random.Random(seed)
    towns = tuple(municipality_id(m) for m in range(municipalities))
    weights = [1.0 + chance.random() for _ in towns]
    events: list[dict[str, object]] = []
    born_on: dict[dt.date, int] = {}

    def emit(on: dt.date, by: str, cpr: str, body: dict[str, object]) -> None:
        events.append({"event_id": f"ev-{len(events) + 1:08d}", "occurred_on": on.isoformat(), "reported_by": by,
                       "subject": {"cpr": cpr}, "body": body})

    def stay(cpr: str, town: str, kind: str, stage: str, start: dt.date, end: dt.date | None) -> None:
        count = next(c for k, c, _ in KINDS if k == kind)
        institution = f"{town}-{kind.replace('_', '-')}-{chance.randrange(count)}"
        emit(start, institution, cpr, {"type": "enrolled", "institution": institution, "stage": stage})
        if end is not None:
            emit(end, institution, cpr, {"type": "left", "institution": institution, "stage": stage})

    def moved(town: str, years: int) -> str:
        if chance.random() >= 1 - (1 - move_rate) ** years:
            return town
        return chance.choice([t for t in towns if t != town])

    span = (D(BORN_TO, 12, 31) - D(BORN_FROM, 1, 1)).days
    for _ in range(children):
        birth = D(BORN_FROM, 1, 1) + dt.timedelta(days=chance.randrange(span + 1))
        cpr = _cpr(birth, born_on.get(birth, 0))
        born_on[birth] = born_on.get(birth, 0) + 1
        y = birth.year
        town = chance.choices(towns, weights)[0]
        stay(cpr, town, "daycare", "daycare", D(y + 1, 8, 1), D(y + 6, 7, 31))
        town = moved(town, 5)  # before school
        stay(cpr, town, "primary_school", "primary", D(y + 6, 8, 1), D(y + 16, 6, 26))
        town = moved(town, 10)  # during school: the next stage is where the child lives then
        stay(cpr, town, "youth_education", "youth", D(y + 16, 8, 10), None)
    return Nation(towns, tuple(_institutions(municipalities)), tuple(events),
                  tuple(_contract(t) for t in towns), tuple(tenant_of(t) for t in towns))


# The business case across borders for the nation (docs/tenancy.md, "National figures"):
# the example's price of exclusion with the nation's one outcome added. Its contracts
# start in 2000 and pay from 2010 (school) to 2022 (youth education), so the horizons
# run from 2000 over 15 and 30 years. Every figure added here is an assumption of this
# synthetic nation (reaching the next stage moves a twentieth of a person out of "young
# person with only primary school"; 80 % would have happened anyway), not a source's.
NEXT_STAGE_EFFECT = {"group": "young-without-education", "persons": "0.05", "effect_years": 45,
                     "deadweight": "0.8", "source": "assumption of the synthetic nation (cli/synthetic/nation.py)"}
NATION_HORIZONS = (15, 30)


def nation_exclusion_model(model: ExclusionModel, **changes: object) -> ExclusionModel:
    """`model` (e.g. examples/price-of-exclusion.yaml) with the nation's outcome and horizons."""
    return ExclusionModel.model_validate({
        **model.model_dump(mode="json"), "horizons": list(NATION_HORIZONS),
        "outcomes": {**model.model_dump(mode="json")["outcomes"], "moved-on": NEXT_STAGE_EFFECT}, **changes})
