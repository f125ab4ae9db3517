"""A synthetic nation in Denmark's proportions: municipalities, each a tenant of one
clearing house, and children who move between them (docs/nation.md, docs/tenancy.md,
`stafet demo --nation`, `make bench BENCH_ARGS="--nation"`).

The proportions come from data files, not from this code: `denmark_municipalities.csv`
(the 98 municipalities, largest first, with their populations) and `denmark_totals.csv`
(the national births, daycares, schools and youth educations, and the yearly rate of moves
between municipalities), each row with its source or marked as an assumption. From them:

- each municipality's births, daycares, schools and youth educations are the national
  totals shared out in proportion to its population (largest remainders, so the shares add
  up to the totals exactly; every municipality has at least one institution of each kind);
- a nation of N municipalities is the N largest, each with its share of the institutions;
  its children are shared out in proportion to those municipalities' births;
- a child moves to another municipality of the nation (chosen in proportion to population)
  with the yearly rate, compounded over the years before school and before youth education.

Deterministic from its seed. Each municipality pays a next-stage bonus (DKK 5,000 to the
institution a child leaves, on each enrolment at the next stage) for the children
registered at one of its institutions on the contract's day: the contract's rule for which
municipality pays. A child who moved after its daycare years is paid for by the
municipality it moved to, and that payment goes to the daycare back home: a cross-border
line.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cli.reporting.skandia import ExclusionModel
from shared.domain.contracts.model import Contract
from shared.domain.institutions import Institution, synthetic_payee_fields
from shared.domain.tenancy import Tenant, TenantKind

D = dt.date
# Who pays: the municipality a child is registered in on this day (in school or youth
# education for the children born from 2004 on).
PAYER_DAY = D(2020, 9, 1)
BORN_FROM, YEARS = 2004, 3
BONUS_MINOR = 500_000
DATA = Path(__file__).parent
MUNICIPALITIES_FILE = DATA / "denmark_municipalities.csv"
TOTALS_FILE = DATA / "denmark_totals.csv"
# (institution kind, its total in denmark_totals.csv, the stage a child is enrolled at)
KINDS = (("daycare", "daycares", "daycare"), ("primary_school", "schools", "primary"),
         ("youth_education", "youth_educations", "youth"))


@dataclass(frozen=True)
class Municipality:
    code: str
    name: str
    region: str
    population: int
    published: bool  # False: the population is an assumption (see the data file)


@dataclass(frozen=True)
class Denmark:
    """The data files: the municipalities, largest first, and the national totals."""

    municipalities: tuple[Municipality, ...]
    totals: dict[str, float]

    def total(self, name: str) -> int:
        return int(self.totals[name])

    @property
    def move_rate(self) -> float:
        return float(self.totals["move_rate"])

    def births(self) -> list[int]:
        """Each municipality's births in a year: the national births by population."""
        return apportion(self.total("births"), [m.population for m in self.municipalities])

    def institutions(self, kind_total: str) -> list[int]:
        """Each municipality's institutions of a kind: the national total by population,
        at least one each."""
        return apportion(self.total(kind_total), [m.population for m in self.municipalities], minimum=1)


def _rows(path: Path) -> Iterable[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as lines:
        yield from csv.DictReader(line for line in lines if not line.startswith("#"))


@functools.cache
def denmark() -> Denmark:
    municipalities = tuple(Municipality(r["code"], r["name"], r["region"], int(r["population"]),
                                        r["source"] == "published") for r in _rows(MUNICIPALITIES_FILE))
    return Denmark(municipalities, {r["name"]: float(r["value"]) for r in _rows(TOTALS_FILE)})


def apportion(total: int, weights: Sequence[int], minimum: int = 0) -> list[int]:
    """`total` shared out in proportion to `weights` (each share at least `minimum`), by
    largest remainders: the shares add up to `total` exactly; ties go to the earlier."""
    if total < minimum * len(weights):
        raise ValueError(f"{total} cannot give {len(weights)} shares at least {minimum} each")
    left, weight = total - minimum * len(weights), sum(weights)
    if not weight:
        raise ValueError("no weights to share by")
    exact = [left * w / weight for w in weights]
    shares = [int(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in by_remainder[:left - sum(shares)]:
        shares[i] += 1
    return [minimum + s for s in shares]


def nation_births(municipalities: int, years: int = 1, fraction: float = 1.0) -> int:
    """The children a nation of the `municipalities` largest has in `years` years of
    births, scaled by `fraction` (at least one)."""
    return max(1, round(sum(denmark().births()[:municipalities]) * years * fraction))


@dataclass(frozen=True)
class Nation:
    municipalities: tuple[str, ...]
    institutions: tuple[Institution, ...]
    events: tuple[dict[str, object], ...]
    contracts: tuple[Contract, ...]
    tenants: tuple[Tenant, ...]
    names: tuple[str, ...] = ()  # each municipality's name (Denmark's), in the same order

    def municipality_of(self, institution_id: str) -> str:
        return self._municipalities.get(institution_id, "")

    @functools.cached_property
    def _municipalities(self) -> dict[str, str]:
        return {i.id: i.municipality for i in self.institutions}


def municipality_id(n: int) -> str:
    """The n-th largest municipality's tenant id (0: the largest)."""
    return f"kommune-{n:03d}"


def institution_id(town: str, kind: str, n: int) -> str:
    return f"{town}-{kind.replace('_', '-')}-{n}"


def _institutions(towns: Sequence[str], names: Sequence[str], counts: dict[str, list[int]]) -> list[Institution]:
    result = []
    for m, (town, name) in enumerate(zip(towns, names, strict=True)):
        result.append(Institution(id=town, name=f"{name} Kommune (synthetic)", kind="municipality",
                                  municipality=town, **synthetic_payee_fields(town)))
        for kind, total, _ in KINDS:
            for n in range(counts[total][m]):
                identifier = institution_id(town, kind, n)
                result.append(Institution(id=identifier, name=f"{kind.replace('_', ' ').title()} {name} {n}",
                                          kind=kind, municipality=town, **synthetic_payee_fields(identifier)))
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


def tenant_of(town: str, name: str = "") -> Tenant:
    return Tenant(id=town, name=f"{name or 'Kommune ' + town[-3:]} (synthetic)", kind=TenantKind.MUNICIPALITY,
                  municipality=town, operators=(f"{town}-ops",), finance=(f"{town}-finance",),
                  database_roles=(f"stafet_tenant_{town.replace('-', '_')}",))


def _cpr(birth: dt.date, n: int) -> str:
    return f"{birth:%d%m%y}-{4 + n // 1000}{n % 1000:03d}"


def generate_nation(municipalities: int, children: int, seed: int, move_rate: float | None = None, *,
                    years: int = YEARS, born_from: int = BORN_FROM) -> Nation:
    """Denmark's `municipalities` largest municipalities (each a tenant, with its share of
    the national institutions) and `children` children born in `years` years from
    `born_from`, shared out by the municipalities' births; each moves between them at
    `move_rate` a year (by default the data file's)."""
    country = denmark()
    if not 1 <= municipalities <= len(country.municipalities):
        raise ValueError(f"a nation has 1 to {len(country.municipalities)} municipalities, not {municipalities}")
    if years < 1:
        raise ValueError("a nation needs at least one year of births")
    rate = country.move_rate if move_rate is None else move_rate
    chance = random.Random(seed)
    chosen = country.municipalities[:municipalities]
    towns = tuple(municipality_id(m) for m in range(municipalities))
    names = tuple(m.name for m in chosen)
    counts = {total: country.institutions(total)[:municipalities] for _, total, _ in KINDS}
    per_town = apportion(children, country.births()[:municipalities])
    populations = [m.population for m in chosen]
    events: list[dict[str, object]] = []
    born_on: dict[dt.date, int] = {}

    def emit(on: dt.date, by: str, cpr: str, body: dict[str, object]) -> None:
        events.append({"event_id": f"ev-{len(events) + 1:08d}", "occurred_on": on.isoformat(), "reported_by": by,
                       "subject": {"cpr": cpr}, "body": body})

    def stay(cpr: str, town: int, kind: str, stage: str, start: dt.date, end: dt.date | None) -> None:
        total = next(t for k, t, _ in KINDS if k == kind)
        institution = institution_id(towns[town], kind, chance.randrange(counts[total][town]))
        emit(start, institution, cpr, {"type": "enrolled", "institution": institution, "stage": stage})
        if end is not None:
            emit(end, institution, cpr, {"type": "left", "institution": institution, "stage": stage})

    def moved(town: int, years_there: int) -> int:
        if len(towns) < 2 or chance.random() >= 1 - (1 - rate) ** years_there:
            return town
        others = [t for t in range(len(towns)) if t != town]
        return chance.choices(others, [populations[t] for t in others])[0]

    span = (D(born_from + years - 1, 12, 31) - D(born_from, 1, 1)).days
    for home, count in enumerate(per_town):
        for _ in range(count):
            birth = D(born_from, 1, 1) + dt.timedelta(days=chance.randrange(span + 1))
            cpr = _cpr(birth, born_on.get(birth, 0))
            born_on[birth] = born_on.get(birth, 0) + 1
            y, town = birth.year, home
            stay(cpr, town, "daycare", "daycare", D(y + 1, 8, 1), D(y + 6, 7, 31))
            town = moved(town, 5)  # before school
            stay(cpr, town, "primary_school", "primary", D(y + 6, 8, 1), D(y + 16, 6, 26))
            town = moved(town, 10)  # during school: the next stage is where the child lives then
            stay(cpr, town, "youth_education", "youth", D(y + 16, 8, 10), None)
    return Nation(towns, tuple(_institutions(towns, names, counts)), tuple(events),
                  tuple(_contract(t) for t in towns), tuple(tenant_of(t, n) for t, n in zip(towns, names, strict=True)),
                  names)


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
