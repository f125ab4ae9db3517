"""The business case as the Skandia model makes it: the price of exclusion.

Before anything is paid, a municipality asks what exclusion costs the public purse,
who bears that cost, and whether a programme that moves people out of it pays off, and
over how long. The model (after Ingvar Nilsson and Anders Wadeskog's cost-of-exclusion
calculations for Skandia, as the issue's source describes them) takes:

- **groups**: named groups of excluded people, each with its average public cost per
  person per year and the split of that cost between municipality, region and state;
- **outcomes**: which verified outcome moves how much of a person out of which group,
  for how many years, and the share that would have happened anyway (deadweight): an
  assumption, unless a social experiment measured the effect, in which case the
  measured effect replaces it (`measured_deadweight`), with its interval;
- **the programme's cost**: the outcome payments the contract variant makes (from the
  replay, by year) plus a yearly running cost, both borne by the payer (`payer_level`);
- **horizons** (4 and 10 years) and a **discount rate**.

For each horizon: the discounted cost, the discounted savings split by level, the net
present value, and the payback year. Flows of year t (t = 1 is `first_year`) are
discounted by (1 + rate)^t. Arithmetic is exact (fractions); then savings are rounded
down and costs rounded up to whole minor units (a case never looks better than its
exact value), the levels' savings split by the largest-remainder method so they add up
to the total, and NPV = savings - cost exactly as shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cli.reporting.data import ReportData
from shared.domain.contracts.model import AMOUNT_MINOR_MAX
from shared.domain.contracts.solidarity import largest_remainder
from shared.domain.events import Currency, Identifier
from shared.domain.indicators.experiment import Estimate
from shared.domain.yaml_model import load_yaml_model

Level = Literal["municipality", "region", "state"]
LEVELS: tuple[Level, ...] = ("municipality", "region", "state")
HORIZON_YEARS_MAX = 80
EFFECT_DECIMALS = 4  # an estimate's percentage points are taken to 4 decimals (exact from then on)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Share = Annotated[Decimal, Field(ge=0, le=1)]


class Group(Frozen):
    title: str
    yearly_cost_minor: Annotated[int, Field(ge=0, le=AMOUNT_MINOR_MAX)]
    split: dict[Level, Share]
    source: str
    # True when the figure is not a source's: the report marks it as such.
    illustrative: bool

    @model_validator(mode="after")
    def _split_whole(self) -> Group:
        if sum(Fraction(v) for v in self.split.values()) != 1:
            raise ValueError("split between municipality, region and state must add up to exactly 1")
        return self


class OutcomeEffect(Frozen):
    group: Identifier
    # How much of one person's exclusion one outcome ends (a gate outcome: less than 1).
    persons: Annotated[Decimal, Field(gt=0, le=1)] = Decimal(1)
    effect_years: Annotated[int, Field(ge=1, le=HORIZON_YEARS_MAX)]
    deadweight: Share
    source: str
    # The indicator a social experiment measures this outcome by (e.g. exam-danish-maths
    # for exam-passed): its estimate, when there is one, replaces `deadweight`.
    indicator: Identifier | None = None


class ExclusionModel(Frozen):
    title: str = "The price of exclusion"
    currency: Currency = "DKK"
    discount_rate: Annotated[Decimal, Field(ge=0, le=1)]
    horizons: Annotated[tuple[Annotated[int, Field(ge=1, le=HORIZON_YEARS_MAX)], ...],
                        Field(min_length=1, max_length=8)] = (4, 10)
    payer_level: Level = "municipality"
    running_cost_yearly_minor: Annotated[int, Field(ge=0, le=AMOUNT_MINOR_MAX)] = 0
    running_cost_years: Annotated[int, Field(ge=0, le=HORIZON_YEARS_MAX)] = 0
    groups: dict[Identifier, Group] = Field(min_length=1, max_length=50)
    outcomes: dict[Identifier, OutcomeEffect] = Field(max_length=200)

    @model_validator(mode="after")
    def _known_groups(self) -> ExclusionModel:
        for outcome_id, effect in self.outcomes.items():
            if effect.group not in self.groups:
                raise ValueError(f"outcome {outcome_id!r} names unknown group {effect.group!r}")
        return self


class ExclusionModelError(ValueError):
    """The model file cannot be used; one line naming the file and the field."""


def load_exclusion_model(path: Path) -> ExclusionModel:
    return load_yaml_model(path, ExclusionModel, "discount_rate, groups and outcomes", ExclusionModelError)


@dataclass(frozen=True)
class Deadweight:
    """The share of outcomes that would have happened anyway, with where it comes from
    and, when measured, the interval that the effect's interval gives."""

    value: Fraction
    measured: bool
    low: Fraction | None = None
    high: Fraction | None = None


def _points(value: float) -> Fraction:
    return Fraction(str(round(value, EFFECT_DECIMALS)))


def _clamped(value: Fraction) -> Fraction:
    return min(Fraction(1), max(Fraction(0), value))


def measured_deadweight(estimate: Estimate, outcome_rate: Fraction) -> Deadweight:
    """Deadweight from an experiment: of the outcomes observed at rate `outcome_rate`
    (a share, 0-1, among those who could reach it), the programme caused
    `effect_points` percentage points; the rest would have happened anyway:
    deadweight = 1 - effect / rate, clamped to 0-1. The effect's interval gives the
    deadweight's (the high effect, the low deadweight)."""
    if outcome_rate <= 0:
        raise ValueError("the outcome rate must be above 0 to measure deadweight against it")

    def of(points: float) -> Fraction:
        return _clamped(1 - _points(points) / 100 / outcome_rate)

    # A design that cannot reject any effect gives no interval, and so no range here.
    low = None if estimate.high_points is None else of(estimate.high_points)
    high = None if estimate.low_points is None else of(estimate.low_points)
    return Deadweight(of(estimate.effect_points), True, low=low, high=high)


@dataclass(frozen=True)
class HorizonCase:
    horizon_years: int
    cost_minor: int                           # discounted, borne by the payer level
    savings_minor: int                        # discounted
    savings_by_level: Mapping[str, int]       # adds up to savings_minor
    payback_year: int | None                  # 1-based year of the case; None: not within the horizon
    # NPV with the measured deadweight's interval ends (low deadweight, high deadweight).
    npv_range_minor: tuple[int, int] | None = None

    @property
    def npv_minor(self) -> int:
        return self.savings_minor - self.cost_minor

    @property
    def pays_off(self) -> bool:
        return self.npv_minor >= 0

    def net_by_level(self, payer_level: str) -> dict[str, int]:
        """Who invests and who harvests: each level's savings, less the cost for the payer."""
        return {level: self.savings_by_level.get(level, 0) - (self.cost_minor if level == payer_level else 0)
                for level in LEVELS}


@dataclass(frozen=True)
class ExclusionCase:
    title: str
    currency: str
    first_year: int
    discount_rate: Fraction
    payer_level: str
    deadweights: Mapping[str, Deadweight]
    persons_out: Mapping[str, Fraction]       # group -> persons moved out (after deadweight)
    horizons: tuple[HorizonCase, ...]


def yearly_flows(model: ExclusionModel, outcomes: Mapping[tuple[str, int], int],
                  payments: Mapping[int, int], first_year: int, last: int,
                  deadweights: Mapping[str, Fraction]) -> tuple[list[Fraction], list[dict[str, Fraction]]]:
    """Undiscounted cost and savings per level for years 1..last of the case. An outcome
    of calendar year y saves from year y + 1 on, for its `effect_years`."""
    cost = [Fraction(0)] * (last + 1)
    savings: list[dict[str, Fraction]] = [dict.fromkeys(LEVELS, Fraction(0)) for _ in range(last + 1)]
    for year, amount in payments.items():
        t = year - first_year + 1
        if 1 <= t <= last:
            cost[t] += amount
    for t in range(1, min(model.running_cost_years, last) + 1):
        cost[t] += model.running_cost_yearly_minor
    for (outcome_id, year), count in outcomes.items():
        effect = model.outcomes.get(outcome_id)
        if effect is None:
            continue
        group = model.groups[effect.group]
        persons = count * Fraction(effect.persons) * (1 - deadweights[outcome_id])
        start = year - first_year + 2
        for t in range(max(start, 1), min(start + effect.effect_years, last + 1)):
            for level in LEVELS:
                savings[t][level] += persons * group.yearly_cost_minor * Fraction(group.split.get(level, 0))
    return cost, savings


def _horizon(horizon: int, cost: list[Fraction], savings: list[dict[str, Fraction]],
             rate: Fraction) -> tuple[HorizonCase, Fraction]:
    discounted_cost, by_level = Fraction(0), dict.fromkeys(LEVELS, Fraction(0))
    cumulative: list[Fraction] = []
    for t in range(1, horizon + 1):
        factor = (1 + rate) ** t
        discounted_cost += cost[t] / factor
        for level in LEVELS:
            by_level[level] += savings[t][level] / factor
        cumulative.append(sum(by_level.values(), Fraction(0)) - discounted_cost)
    total = sum(by_level.values(), Fraction(0))
    savings_minor = math.floor(total)
    payback = next((t for t in range(1, horizon + 1) if all(c >= 0 for c in cumulative[t - 1:])), None)
    case = HorizonCase(horizon, math.ceil(discounted_cost), savings_minor,
                       largest_remainder(savings_minor, {str(k): v for k, v in by_level.items()}), payback)
    return case, total - discounted_cost


def exclusion_case(model: ExclusionModel, outcomes: Mapping[tuple[str, int], int],
                   payments: Mapping[int, int], first_year: int,
                   measured: Mapping[str, Deadweight] | None = None) -> ExclusionCase:
    """The case for verified `outcomes` ((outcome id, calendar year) -> count) bought
    with `payments` (calendar year -> net minor units, in the model's currency), year 1
    being `first_year`. `measured` deadweights replace the model's assumptions."""
    measured = measured or {}
    present = {outcome_id for outcome_id, _ in outcomes}
    deadweights = {o: measured.get(o) or Deadweight(Fraction(e.deadweight), False)
                   for o, e in model.outcomes.items() if o in present}
    rate = Fraction(model.discount_rate)
    last = max(model.horizons)
    point = {o: d.value for o, d in deadweights.items()}
    cost, savings = yearly_flows(model, outcomes, payments, first_year, last, point)
    ranges = None
    if any(d.measured and d.low is not None and d.high is not None for d in deadweights.values()):
        ranges = [yearly_flows(model, outcomes, payments, first_year, last,
                                {o: (getattr(d, end) if d.measured and getattr(d, end) is not None else d.value)
                                 for o, d in deadweights.items()})
                  for end in ("low", "high")]
    horizons = []
    for horizon in model.horizons:
        case, _ = _horizon(horizon, cost, savings, rate)
        if ranges is not None:
            ends = [_horizon(horizon, c, s, rate)[0].npv_minor for c, s in ranges]
            case = HorizonCase(case.horizon_years, case.cost_minor, case.savings_minor,
                               case.savings_by_level, case.payback_year, (ends[0], ends[1]))
        horizons.append(case)
    persons: dict[str, Fraction] = {}
    for (outcome_id, _), count in outcomes.items():
        effect = model.outcomes.get(outcome_id)
        if effect is not None:
            persons[effect.group] = persons.get(effect.group, Fraction(0)) + \
                count * Fraction(effect.persons) * (1 - point[outcome_id])
    return ExclusionCase(model.title, model.currency, first_year, rate, model.payer_level,
                         deadweights, persons, tuple(horizons))


def measured_deadweights(model: ExclusionModel, estimates: Iterable[Estimate],
                         data: ReportData) -> dict[str, Deadweight]:
    """Each outcome whose `indicator` an experiment estimated, its deadweight measured
    against the outcome's rate in `data` (outcomes never judged are left assumed)."""
    by_indicator = {e.indicator_id: e for e in estimates}
    rows = [(o.outcome_id, o.status, o.reason) for o in data.outcomes]
    measured = {}
    for outcome_id, effect in model.outcomes.items():
        estimate = by_indicator.get(effect.indicator or "")
        rate = outcome_rate(rows, outcome_id) if estimate is not None else None
        if estimate is not None and rate:
            measured[outcome_id] = measured_deadweight(estimate, rate)
    return measured


def outcome_rate(rows: Iterable[tuple[str, str, str | None]], outcome_id: str) -> Fraction | None:
    """Among the triggers of `outcome_id` that were judged on their condition (verified,
    or rejected because the condition was not met: e.g. every 9th-grade exam, passed or
    not), the share verified. Rows are (outcome id, status, reason)."""
    met = judged = 0
    for row_outcome, status, reason in rows:
        if row_outcome != outcome_id:
            continue
        if status == "verified":
            met += 1
            judged += 1
        elif status == "rejected" and reason == "condition_not_met":
            judged += 1
    return Fraction(met, judged) if judged else None


def case_for(data: ReportData, model: ExclusionModel,
             measured: Mapping[str, Deadweight] | None = None) -> ExclusionCase | None:
    """The case for one variant's replay (or the live ledger's data): its verified
    outcomes and net payments by calendar year, year 1 being the year its earliest
    contract period starts. None when a contract pays in another currency than the
    model counts in (never converted)."""
    if not data.contracts or any(c.currency != model.currency for c in data.contracts):
        return None
    outcomes: dict[tuple[str, int], int] = {}
    for row in data.outcomes:
        if row.status == "verified":
            key = (row.outcome_id, row.occurred_on.year)
            outcomes[key] = outcomes.get(key, 0) + 1
    payments: dict[int, int] = {}
    for money in data.money:
        signed = money.amount_minor if money.kind == "payment" else -money.amount_minor
        payments[money.occurred_on.year] = payments.get(money.occurred_on.year, 0) + signed
    first_year = min(c.period.start.year for c in data.contracts)
    return exclusion_case(model, outcomes, payments, first_year, measured)
