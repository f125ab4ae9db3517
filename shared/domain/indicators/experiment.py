"""Social experiments as data: units, indicators registered in advance, an auditable
assignment, and a difference-in-differences estimate with a permutation interval.

Pure: no clock, no files, no servers. Randomness comes only from `random.Random(seed)`
with the seed recorded in the experiment and in every assignment record, so anyone
can re-run the assignment and the evaluation and get the same answer.

The estimator (docs/indicators.md#experiments): for each unit, the change in the
indicator's share from the baseline year to the follow-up year; the estimate is the
treated units' mean change minus the comparison units' mean change, in percentage
points. The interval inverts a permutation test: an effect `tau` is inside the 95 %
interval when, after subtracting `tau` from the treated units' changes, the observed
difference is not in the outer 5 % of the differences under re-drawn assignments (drawn
as the assignment itself was: within strata for a stratified one). Assumptions: parallel
trends (without treatment, treated and comparison units would have changed alike), an
additive effect that is the same in every treated unit, no spill-over between units.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from shared.domain.events import Identifier
from shared.domain.indicators.model import Frozen

MAX_UNITS = 1_000
PERMUTATIONS = 2_000  # Monte Carlo permutations: the p-value's resolution is 1/2001
CONFIDENCE = 0.95
BISECTION_STEPS = 40


class Unit(Frozen):
    """An institution or an area: measured over the catchment of `institutions`."""

    id: Identifier
    institutions: tuple[Identifier, ...] = Field(min_length=1, max_length=100)
    stratum: Annotated[str, StringConstraints(max_length=64)] = ""


class Assignment(Frozen):
    method: Literal["randomised", "stratified", "declared"]
    seed: int | None = None
    # randomised / stratified: how many units (per stratum) are treated, rounded down.
    treated_share: Annotated[float, Field(gt=0, lt=1)] = 0.5
    # declared: the treated units; every other unit is the comparison group.
    treated: tuple[Identifier, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> Assignment:
        if self.method in ("randomised", "stratified") and self.seed is None:
            raise ValueError(f"a {self.method} assignment needs a recorded seed")
        if self.method == "declared" and not self.treated:
            raise ValueError("a declared assignment lists its treated units")
        return self


class Experiment(Frozen):
    id: Identifier
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    # Registered before the experiment starts: only these indicators are evaluated.
    indicators: tuple[Identifier, ...] = Field(min_length=1, max_length=20)
    units: tuple[Unit, ...] = Field(min_length=2, max_length=MAX_UNITS)
    assignment: Assignment
    baseline_year: int
    follow_up_year: int

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        ids = [u.id for u in self.units]
        if len(set(ids)) != len(ids):
            raise ValueError("unit ids must be unique")
        unknown = sorted(set(self.assignment.treated) - set(ids))
        if unknown:
            raise ValueError(f"assignment.treated names units that are not in units: {', '.join(unknown)}")
        if self.follow_up_year <= self.baseline_year:
            raise ValueError("follow_up_year must come after baseline_year")
        return self

    def digest(self) -> str:
        """SHA-256 of the definition: an assignment record names what it assigned."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


class UnitAssigned(Frozen):
    """The published record of one unit's arm (JSON Lines, one per unit)."""

    type: Literal["ExperimentUnitAssigned"] = "ExperimentUnitAssigned"
    schema_version: Literal[1] = 1
    experiment_id: Identifier
    experiment_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    method: Literal["randomised", "stratified", "declared"]
    seed: int | None
    unit: Identifier
    stratum: str
    arm: Literal["treated", "comparison"]


def _draw(unit_ids: Sequence[str], strata: Mapping[str, str], share: float, chance: random.Random,
          stratified: bool) -> frozenset[str]:
    groups: dict[str, list[str]] = defaultdict(list)
    for unit in sorted(unit_ids):
        groups[strata[unit] if stratified else ""].append(unit)
    treated: set[str] = set()
    for stratum in sorted(groups):
        members = groups[stratum]
        chance.shuffle(members)
        treated.update(members[:max(1, int(len(members) * share))] if len(members) > 1 else ())
    return frozenset(treated)


def assign(experiment: Experiment) -> tuple[UnitAssigned, ...]:
    rule = experiment.assignment
    strata = {u.id: u.stratum for u in experiment.units}
    if rule.method == "declared":
        treated = frozenset(rule.treated)
    else:
        assert rule.seed is not None  # the model refuses a randomised assignment without one
        treated = _draw(list(strata), strata, rule.treated_share, random.Random(rule.seed),
                        rule.method == "stratified")
    digest = experiment.digest()
    return tuple(UnitAssigned(experiment_id=experiment.id, experiment_sha256=digest, method=rule.method,
                              seed=rule.seed, unit=u.id, stratum=u.stratum,
                              arm="treated" if u.id in treated else "comparison")
                 for u in experiment.units)


class EvaluationError(ValueError):
    """An evaluation that cannot be made: the reason names what is missing."""


@dataclass(frozen=True)
class UnitChange:
    unit: str
    treated: bool
    stratum: str
    change_points: float  # follow-up share minus baseline share, percentage points
    # The unit's share in the follow-up year, percent: how many of the treated units'
    # successes there were at all, against which the effect is the part caused.
    follow_up_percent: float | None = None


@dataclass(frozen=True)
class Estimate:
    indicator_id: str
    effect_points: float
    low_points: float
    high_points: float
    p_value: float
    treated_units: int
    comparison_units: int
    permutations: int
    # The treated units' mean share in the follow-up year (None if not known).
    treated_follow_up_percent: float | None = None

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - CONFIDENCE


def _difference(changes: Sequence[float], treated: Sequence[bool]) -> float:
    ins = [c for c, t in zip(changes, treated, strict=True) if t]
    outs = [c for c, t in zip(changes, treated, strict=True) if not t]
    return sum(ins) / len(ins) - sum(outs) / len(outs)


def _redraws(units: Sequence[UnitChange], stratified: bool, count: int, seed: int) -> list[list[bool]]:
    """Assignments drawn as the experiment's own was: the same number treated (per
    stratum when stratified), so the reference distribution matches the design."""
    chance = random.Random(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for index, unit in enumerate(units):
        groups[unit.stratum if stratified else ""].append(index)
    draws = []
    for _ in range(count):
        flags = [False] * len(units)
        for stratum in sorted(groups):
            members = groups[stratum]
            picked = chance.sample(members, sum(units[i].treated for i in members))
            for i in picked:
                flags[i] = True
        draws.append(flags)
    return draws


@dataclass(frozen=True)
class _Reference:
    """The re-drawn assignments, reduced to what the test needs. Subtracting `tau` from
    the treated units' changes shifts a re-drawn difference linearly:
    d(tau) = d(0) - tau * overlap, where overlap is the re-draw's treated share of the
    actually treated units minus its comparison share of them. So each re-draw is two
    numbers, and testing one `tau` costs one pass over them."""

    at_zero: tuple[float, ...]
    overlap: tuple[float, ...]
    observed_at_zero: float

    @classmethod
    def of(cls, units: Sequence[UnitChange], draws: Sequence[Sequence[bool]]) -> _Reference:
        changes = [u.change_points for u in units]
        actual = [1.0 if u.treated else 0.0 for u in units]
        return cls(tuple(_difference(changes, flags) for flags in draws),
                   tuple(_difference(actual, flags) for flags in draws),
                   _difference(changes, [u.treated for u in units]))

    def p_value(self, tau: float) -> float:
        observed = abs(self.observed_at_zero - tau)
        tolerance = 1e-9  # ties count as extreme (a conservative test)
        extreme = sum(1 for d, o in zip(self.at_zero, self.overlap, strict=True)
                      if abs(d - tau * o) >= observed - tolerance)
        return (extreme + 1) / (len(self.at_zero) + 1)


def _bound(reference: _Reference, inside: float, step: float) -> float:
    """The interval's end in the direction of `step`: widen until the effect is rejected,
    then bisect between the last accepted and the first rejected effect."""
    alpha = 1 - CONFIDENCE
    accepted, rejected = inside, inside + step
    for _ in range(60):
        if reference.p_value(rejected) < alpha:
            break
        accepted, rejected = rejected, rejected + step
        step *= 2
    for _ in range(BISECTION_STEPS):
        middle = (accepted + rejected) / 2
        if reference.p_value(middle) < alpha:
            rejected = middle
        else:
            accepted = middle
    return accepted


def estimate(indicator_id: str, units: Sequence[UnitChange], *, stratified: bool, seed: int,
             permutations: int = PERMUTATIONS) -> Estimate:
    treated = sum(u.treated for u in units)
    if treated == 0 or treated == len(units):
        raise EvaluationError(f"{indicator_id}: needs treated and comparison units with measurements "
                              f"(treated {treated} of {len(units)})")
    effect = _difference([u.change_points for u in units], [u.treated for u in units])
    reference = _Reference.of(units, _redraws(units, stratified, permutations, seed))
    spread = max(1.0, max(abs(u.change_points) for u in units))
    low = _bound(reference, effect, -spread / 4)
    high = _bound(reference, effect, spread / 4)
    levels = [u.follow_up_percent for u in units if u.treated]
    level = None if None in levels else sum(x for x in levels if x is not None) / len(levels)
    return Estimate(indicator_id, effect, low, high, reference.p_value(0.0), treated,
                    len(units) - treated, permutations, level)


def unit_changes(experiment: Experiment, assigned: Sequence[UnitAssigned],
                 tallies: Mapping[tuple[str, int], tuple[int, int]]) -> tuple[list[UnitChange], list[str]]:
    """Each unit's change in share between the two years, from its (numerator,
    denominator) per (unit, year); units with nobody measured in either year are left out
    and named."""
    arms = {a.unit: a.arm for a in assigned}
    changes, left_out = [], []
    for unit in experiment.units:
        before = tallies.get((unit.id, experiment.baseline_year), (0, 0))
        after = tallies.get((unit.id, experiment.follow_up_year), (0, 0))
        if before[1] == 0 or after[1] == 0:
            left_out.append(unit.id)
            continue
        change = 100 * (after[0] / after[1] - before[0] / before[1])
        changes.append(UnitChange(unit.id, arms[unit.id] == "treated", unit.stratum, change,
                                  100 * after[0] / after[1]))
    return changes, left_out


def check_assignment(experiment: Experiment, assigned: Sequence[UnitAssigned]) -> None:
    """The assignment records must be for this definition and be the ones `assign`
    derives from it: a re-drawn or edited assignment is refused."""
    expected = assign(experiment)
    if tuple(sorted(assigned, key=lambda a: a.unit)) != tuple(sorted(expected, key=lambda a: a.unit)):
        digests = {a.experiment_sha256 for a in assigned}
        if digests != {experiment.digest()}:
            raise EvaluationError("the assignment records are for another version of the experiment "
                                  "(experiment_sha256 differs)")
        raise EvaluationError("the assignment records differ from the assignment the experiment's "
                              "method and seed give")
