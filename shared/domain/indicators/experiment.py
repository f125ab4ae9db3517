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
difference is not in the outer 5 % of the differences under the other assignments the
design allows (within strata for a stratified one): all of them when there are at most
EXACT_ASSIGNMENTS_MAX (an exact p-value), else a sample (a p-value with its Monte Carlo
error). A small design may not be able to reject any effect at 5 % (3 of 6 units treated:
20 assignments, and the actual one and its mirror are always as extreme, so p >= 0.1);
then it says so instead of giving an interval. Assumptions: parallel
trends (without treatment, treated and comparison units would have changed alike), an
additive effect that is the same in every treated unit, no spill-over between units.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from shared.domain.events import Identifier
from shared.domain.indicators.model import Frozen

MAX_UNITS = 1_000
# Up to this many possible assignments the test enumerates them all (an exact p-value);
# beyond, it samples PERMUTATIONS of them and states the p-value's Monte Carlo error.
EXACT_ASSIGNMENTS_MAX = 100_000
PERMUTATIONS = 2_000  # Monte Carlo permutations: the p-value's resolution is 1/2001
CONFIDENCE = 0.95
BISECTION_STEPS = 60  # between the effect and a bound known to be rejected: 2**-60 of it
TIE_TOLERANCE = 1e-9  # differences this close count as ties, and ties as extreme (conservative)


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
    # The 95 % interval; None when the design cannot reject any effect at that level
    # (`smallest_p_value` >= 5 %): then there is no interval to give, only that fact.
    low_points: float | None
    high_points: float | None
    p_value: float
    treated_units: int
    comparison_units: int
    permutations: int  # assignments in the reference distribution (all of them when exact)
    # The treated units' mean share in the follow-up year (None if not known).
    treated_follow_up_percent: float | None = None
    assignments: int = 0  # how many assignments the design allows
    exact: bool = False  # every assignment enumerated (else `permutations` sampled)
    smallest_p_value: float = 0.0  # the smallest p any effect can get with this design
    monte_carlo_error: float | None = None  # the p-value's standard error when sampled

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - CONFIDENCE

    @property
    def reachable(self) -> bool:
        return self.low_points is not None and self.high_points is not None

    def interval_text(self) -> str:
        """`95 % interval [low, high]`, or why the design gives none."""
        if self.low_points is None or self.high_points is None:
            return (f"with {self.treated_units} of {self.treated_units + self.comparison_units} units treated no "
                    f"effect is significant at {round(100 * (1 - CONFIDENCE))} %: {self.assignments:,} assignments, the "
                    f"smallest p is {self.smallest_p_value:.3f}")
        return f"95 % interval [{self.low_points:+.2f}, {self.high_points:+.2f}]"

    def p_value_text(self) -> str:
        """The p-value with how it was found: exactly, or sampled with its Monte Carlo error."""
        if self.exact:
            return f"permutation p = {self.p_value:.3f} (exact, {self.permutations:,} assignments)"
        error = f" ± {self.monte_carlo_error:.3f}" if self.monte_carlo_error is not None else ""
        return (f"permutation p = {self.p_value:.3f}{error} ({self.permutations:,} sampled of "
                f"{self.assignments:,} assignments)")


def _difference(changes: Sequence[float], treated: Sequence[bool]) -> float:
    ins = [c for c, t in zip(changes, treated, strict=True) if t]
    outs = [c for c, t in zip(changes, treated, strict=True) if not t]
    return sum(ins) / len(ins) - sum(outs) / len(outs)


def _groups(units: Sequence[UnitChange], stratified: bool) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, unit in enumerate(units):
        groups[unit.stratum if stratified else ""].append(index)
    return groups


def assignment_count(units: Sequence[UnitChange], stratified: bool) -> int:
    """How many assignments the design allows: the same number treated (per stratum when
    stratified) in every way."""
    total = 1
    for members in _groups(units, stratified).values():
        total *= math.comb(len(members), sum(units[i].treated for i in members))
    return total


def _every_assignment(units: Sequence[UnitChange], stratified: bool) -> list[tuple[int, ...]]:
    """Every assignment the design allows as its treated units' indices, in a fixed order
    (call only under EXACT_ASSIGNMENTS_MAX)."""
    groups = _groups(units, stratified)
    choices = [list(itertools.combinations(groups[s], sum(units[i].treated for i in groups[s])))
               for s in sorted(groups)]
    return [tuple(itertools.chain.from_iterable(picked)) for picked in itertools.product(*choices)]


def _redraws(units: Sequence[UnitChange], stratified: bool, count: int, seed: int) -> list[tuple[int, ...]]:
    """Assignments drawn as the experiment's own was: the same number treated (per
    stratum when stratified), so the reference distribution matches the design. Each is
    its treated units' indices."""
    chance = random.Random(seed)
    groups = _groups(units, stratified)
    draws = []
    for _ in range(count):
        picked: list[int] = []
        for stratum in sorted(groups):
            members = groups[stratum]
            picked.extend(chance.sample(members, sum(units[i].treated for i in members)))
        draws.append(tuple(picked))
    return draws


@dataclass(frozen=True)
class _Reference:
    """The assignments (all, or a sample), reduced to what the test needs. Subtracting
    `tau` from the treated units' changes shifts an assignment's difference linearly:
    d(tau) = d(0) - tau * overlap, where overlap is the assignment's treated share of the
    actually treated units minus its comparison share of them. So each assignment is two
    numbers, and testing one `tau` costs one pass over them.

    Exact: the actual assignment is one of `at_zero`, p = extreme / all. Sampled: it is
    added to the sample, p = (extreme + 1) / (sampled + 1)."""

    at_zero: tuple[float, ...]
    overlap: tuple[float, ...]
    observed_at_zero: float
    exact: bool

    @classmethod
    def of(cls, units: Sequence[UnitChange], draws: Sequence[Sequence[int]], exact: bool) -> _Reference:
        changes = [u.change_points for u in units]
        actual = [1.0 if u.treated else 0.0 for u in units]
        treated = sum(u.treated for u in units)
        comparison = len(units) - treated
        all_changes, all_actual = sum(changes), float(treated)

        def difference(values: Sequence[float], total: float, chosen: Sequence[int]) -> float:
            inside = sum(values[i] for i in chosen)
            return inside / treated - (total - inside) / comparison

        return cls(tuple(difference(changes, all_changes, chosen) for chosen in draws),
                   tuple(difference(actual, all_actual, chosen) for chosen in draws),
                   _difference(changes, [u.treated for u in units]), exact)

    def _p(self, extreme: int) -> float:
        return extreme / len(self.at_zero) if self.exact else (extreme + 1) / (len(self.at_zero) + 1)

    def p_value(self, tau: float) -> float:
        observed = abs(self.observed_at_zero - tau)
        extreme = sum(1 for d, o in zip(self.at_zero, self.overlap, strict=True)
                      if abs(d - tau * o) >= observed - TIE_TOLERANCE)
        return self._p(extreme)

    def smallest_p_value(self) -> float:
        """p as |tau| grows without bound: only the assignments whose overlap is +-1 (the
        actual one and, with half treated, its mirror) stay as extreme as the observed."""
        return self._p(sum(1 for o in self.overlap if abs(o) >= 1 - TIE_TOLERANCE))

    def rejected_beyond(self) -> float:
        """An |tau| beyond which every effect is rejected when the design can reject any:
        there an assignment with |overlap| < 1 is never as extreme as the observed, since
        |d - tau o| <= |d| + |tau| |o| < |tau| - |d_obs| <= |observed(tau)|."""
        bound = 0.0
        for d, o in zip(self.at_zero, self.overlap, strict=True):
            if abs(o) < 1 - TIE_TOLERANCE:
                bound = max(bound, (abs(d) + abs(self.observed_at_zero) + 1) / (1 - abs(o)))
        return bound + abs(self.observed_at_zero) + 1


def _bound(reference: _Reference, inside: float, outside: float) -> float:
    """The interval's end between `inside` (accepted) and `outside` (rejected): bisection,
    a bounded number of steps."""
    alpha = 1 - CONFIDENCE
    accepted, rejected = inside, outside
    for _ in range(BISECTION_STEPS):
        middle = (accepted + rejected) / 2
        if reference.p_value(middle) < alpha:
            rejected = middle
        else:
            accepted = middle
    return accepted


def estimate(indicator_id: str, units: Sequence[UnitChange], *, stratified: bool, seed: int,
             permutations: int = PERMUTATIONS) -> Estimate:
    """The difference in differences with its permutation p-value and interval: exact
    over every assignment when there are at most EXACT_ASSIGNMENTS_MAX, else over
    `permutations` sampled ones (the p-value's Monte Carlo error stated)."""
    treated = sum(u.treated for u in units)
    if treated == 0 or treated == len(units):
        raise EvaluationError(f"{indicator_id}: needs treated and comparison units with measurements "
                              f"(treated {treated} of {len(units)})")
    effect = _difference([u.change_points for u in units], [u.treated for u in units])
    possible = assignment_count(units, stratified)
    exact = possible <= EXACT_ASSIGNMENTS_MAX
    draws = _every_assignment(units, stratified) if exact else _redraws(units, stratified, permutations, seed)
    reference = _Reference.of(units, draws, exact)
    p_value = reference.p_value(0.0)
    smallest = reference.smallest_p_value()
    low = high = None
    if smallest < 1 - CONFIDENCE:
        beyond = reference.rejected_beyond()
        low = _bound(reference, effect, -beyond)
        high = _bound(reference, effect, beyond)
    levels = [u.follow_up_percent for u in units if u.treated]
    level = None if None in levels else sum(x for x in levels if x is not None) / len(levels)
    error = None if exact else math.sqrt(p_value * (1 - p_value) / len(draws))
    return Estimate(indicator_id, effect, low, high, p_value, treated, len(units) - treated, len(draws), level,
                    possible, exact, smallest, error)


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
