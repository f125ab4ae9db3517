"""Indicator outcomes: paying for an indicator's improvement in an area, per percentage
point, against its baseline or against a comparison population (difference in
differences). Pure: no Kafka, database or clock.

An indicator outcome is not about one subject: it is decided over a population, once,
at its review date, and decided again whenever late facts change what was measured.
Two steps, so that a service can keep the counts incrementally:

- `memberships`: one subject's part in each measured cell (a population in a year): in
  the denominator or not, in the numerator or not, and whether a payee reported any of
  the facts counted for it. A pure function of the subject's timeline.
- `decide_indicator`: the decision from the cells' totals (`tally_cells`).

Arithmetic is exact: a share is `Fraction(100 * numerator, denominator)` percentage
points, the improvement a difference of such fractions, the amount
`price_per_point_minor * improvement` rounded down to a whole minor unit (the payer
keeps the fraction, as for a rate price), then capped; the payees' parts by the
largest remainder method. `indicator_instructions` turns a (re-)decision into money: a
rise is a top-up of the difference; a fall claws back the payee's earlier instructions
(a clawback reverses a whole instruction) and pays the new amount.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from shared.domain.contracts.evaluation import (
    OutcomeDecision,
    OutcomeStatus,
    PayeeAmount,
    RejectionReason,
    predicate_holds,
)
from shared.domain.contracts.model import (
    AreaDistribution,
    Contract,
    DirectDistribution,
    IndicatorOutcome,
    exact,
)
from shared.domain.contracts.payments import FINAL, Cause, desired_instructions, reconcile
from shared.domain.contracts.solidarity import largest_remainder
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.events import EventType, PaymentInstruction
from shared.domain.indicators.compute import counts, in_population, scoped
from shared.domain.indicators.model import Count, HasFact, Indicator, Population, StatusOnDay

POPULATION_PREFIX = "pop:"
AREA = "area"
COMPARISON = "comparison"
# Facts a status on a day (in education, in a job) rests on: whoever reported them is
# the evidence's source.
STATUS_EVIDENCE = (EventType.ENROLLED, EventType.LEFT, EventType.TRANSFER,
                   EventType.EMPLOYMENT_STARTED, EventType.EMPLOYMENT_ENDED)


def population_id(contract_id: str, outcome_id: str) -> str:
    """The outcome's stand-in for a subject: a population, never a person. Shaped like
    a pseudonym (`pop:` and 64 hex digits) so that it travels in the same records."""
    return POPULATION_PREFIX + hashlib.sha256(f"{contract_id}|{outcome_id}".encode()).hexdigest()


def trigger_id(outcome: IndicatorOutcome) -> str:
    return f"indicator:{outcome.indicator.id}"


def indicator_outcome_key(contract_id: str, outcome: IndicatorOutcome) -> str:
    """The outcome key (`payments.outcome_key`) its decisions carry, known before any."""
    return "|".join((contract_id, outcome.id, population_id(contract_id, outcome.id), trigger_id(outcome)))


def cell_name(population: str, year: int) -> str:
    return f"{population}:{year}"


def cells_needed(outcome: IndicatorOutcome) -> tuple[str, ...]:
    """The area in the measured year; its baseline year unless a published value is
    given; with a comparison population, the same two years for it."""
    cells = [cell_name(AREA, outcome.year)]
    if outcome.baseline.percent is None:
        cells.append(cell_name(AREA, outcome.baseline.year))
    if outcome.comparison is not None:
        cells += [cell_name(COMPARISON, outcome.year), cell_name(COMPARISON, outcome.baseline.year)]
    return tuple(cells)


@dataclass(frozen=True)
class Membership:
    """One subject's part in one cell (only cells whose denominator it is in)."""

    cell: str
    numerator: bool
    self_reported: bool


@dataclass(frozen=True)
class Cell:
    numerator: int = 0
    denominator: int = 0
    self_reported: bool = False

    @property
    def percent(self) -> Fraction:
        """The share in percentage points, exact (a cell with nobody is refused before)."""
        return Fraction(100 * self.numerator, self.denominator)


def _area_population(outcome: IndicatorOutcome) -> Population:
    indicator = outcome.indicator
    return scoped(indicator, outcome.area.institutions) if outcome.area.institutions else indicator.population


def _comparison_population(outcome: IndicatorOutcome) -> Population:
    indicator = outcome.indicator
    assert outcome.comparison is not None
    institutions = outcome.comparison.institutions
    return scoped(indicator, institutions) if institutions else indicator.population


def _evidence_reporters(count: Count, timeline: SubjectTimeline, window: tuple[dt.date, dt.date]) -> set[str]:
    """Who reported the facts that put the subject in (or out of) a count."""
    first, last = window
    if isinstance(count, HasFact):
        earliest = dt.date.min if count.up_to_reference_day else first
        return {f.reported_by for f in timeline.facts
                if f.type == count.event and earliest <= f.occurred_on <= last
                and all(predicate_holds(p, f.body) for p in count.where)}
    if isinstance(count, StatusOnDay):
        return {f.reported_by for f in timeline.facts if f.type in STATUS_EVIDENCE and f.occurred_on <= last}
    return set()


def memberships(outcome: IndicatorOutcome, timeline: SubjectTimeline) -> tuple[Membership, ...]:
    """The subject's part in each cell the outcome measures."""
    indicator: Indicator = outcome.indicator
    payees = set(outcome.payee_institutions())
    parts = []
    for cell in cells_needed(outcome):
        population, _, year_text = cell.partition(":")
        window = indicator.period.window(int(year_text))
        in_area = in_population(_area_population(outcome), timeline, window[1])
        member = in_area if population == AREA else \
            (not in_area and in_population(_comparison_population(outcome), timeline, window[1]))
        if not member or not counts(indicator.denominator, timeline, window):
            continue
        reporters = _evidence_reporters(indicator.numerator, timeline, window) | \
            _evidence_reporters(indicator.denominator, timeline, window)
        parts.append(Membership(cell, counts(indicator.numerator, timeline, window), bool(reporters & payees)))
    return tuple(parts)


def tally_cells(parts: Iterable[Membership]) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for part in parts:
        known = cells.get(part.cell, Cell())
        cells[part.cell] = Cell(known.numerator + int(part.numerator), known.denominator + 1,
                                known.self_reported or part.self_reported)
    return cells


def improvement_points(outcome: IndicatorOutcome, cells: Mapping[str, Cell]) -> Fraction:
    """Percentage points of change in the indicator's `better` direction: the area's
    value against its baseline, less the comparison population's change if there is one."""
    area_now = cells[cell_name(AREA, outcome.year)].percent
    percent = outcome.baseline.percent
    area_then = exact(percent) if percent is not None else cells[cell_name(AREA, outcome.baseline.year)].percent
    change = area_now - area_then
    if outcome.comparison is not None:
        change -= cells[cell_name(COMPARISON, outcome.year)].percent \
            - cells[cell_name(COMPARISON, outcome.baseline.year)].percent
    return change if outcome.indicator.better == "higher" else -change


def measured_points(outcome: IndicatorOutcome, cells: Mapping[str, Cell]) -> Fraction | None:
    """The improvement, or None while a cell it needs has nobody in it (for the record)."""
    if any(cells.get(name, Cell()).denominator == 0 for name in cells_needed(outcome)):
        return None
    return improvement_points(outcome, cells)


def amount_for(outcome: IndicatorOutcome, points: Fraction) -> tuple[int, int]:
    """(owed, before the cap): price per point times the points, rounded down; nothing
    below the floor (or for no improvement at all)."""
    if points <= 0 or points < exact(outcome.floor_points):
        return 0, 0
    raw = outcome.price_per_point_minor * points
    whole = raw.numerator // raw.denominator  # rounded down: the payer keeps the fraction
    return min(whole, outcome.cap_minor), whole


def distribute_indicator(outcome: IndicatorOutcome, amount_minor: int) -> tuple[PayeeAmount, ...]:
    rule = outcome.distribution
    if isinstance(rule, DirectDistribution):
        return (PayeeAmount(rule.payee.institution or "", amount_minor),)
    shares: dict[str, Fraction] = {}
    if isinstance(rule, AreaDistribution):
        institutions = outcome.payee_institutions()
        for institution in institutions:
            shares[institution] = Fraction(amount_minor, len(institutions))
    else:
        for share in rule.shares:
            institution = share.payee.institution or ""
            shares[institution] = shares.get(institution, Fraction(0)) + exact(share.share) * amount_minor
    whole = largest_remainder(amount_minor, shares)
    return tuple(PayeeAmount(p, a) for p, a in sorted(whole.items()) if a > 0)


def decide_indicator(contract: Contract, outcome: IndicatorOutcome, cells: Mapping[str, Cell]
                     ) -> OutcomeDecision:
    """The decision at (or after) the review date, from the cells' totals."""
    base = OutcomeDecision(
        contract_id=contract.contract_id, contract_version=contract.version, outcome_id=outcome.id,
        subject=population_id(contract.contract_id, outcome.id), trigger_event_id=trigger_id(outcome),
        trigger_reported_by="", status=OutcomeStatus.REJECTED, reason=None, occurred_on=outcome.review_on)
    small = [name for name in cells_needed(outcome)
             if cells.get(name, Cell()).denominator < outcome.minimum_cell]
    if small:
        # Paying on a handful of pupils would pay on noise (and the amount would
        # disclose them): not decided on, with the cells named and no counts.
        return _rejected(base, RejectionReason.POPULATION_BELOW_MINIMUM,
                         f"fewer than {outcome.minimum_cell} subjects in {', '.join(small)}")
    if any(cells[name].self_reported for name in cells_needed(outcome)):
        return _rejected(base, RejectionReason.SELF_REPORTED_EVIDENCE,
                         "a payee reported facts the indicator counts")
    points = improvement_points(outcome, cells)
    owed, uncapped = amount_for(outcome, points)
    measured = f"improvement {_points_text(points)} points"
    if uncapped == 0 and (points <= 0 or points < exact(outcome.floor_points)):
        return _rejected(base, RejectionReason.IMPROVEMENT_BELOW_FLOOR,
                         f"{measured}, floor {outcome.floor_points}")
    if owed == 0:
        return _rejected(base, RejectionReason.NO_AMOUNT, measured)
    detail = measured if owed == uncapped else f"{measured}; capped, {uncapped - owed} not owed"
    return replace(base, status=OutcomeStatus.VERIFIED, price_minor=owed,
                   payees=distribute_indicator(outcome, owed), detail=detail)


def _rejected(base: OutcomeDecision, reason: RejectionReason, detail: str) -> OutcomeDecision:
    return replace(base, reason=reason, detail=detail)


def _points_text(points: Fraction) -> str:
    """Two decimals, for people (the decision itself uses the exact fraction)."""
    hundredths = round(points * 100)
    sign = "-" if hundredths < 0 else "+"
    return f"{sign}{abs(hundredths) // 100}.{abs(hundredths) % 100:02d}"


def deciding_version(versions: Sequence[tuple[Contract, tuple[dt.date, dt.date]]], outcome_id: str
                     ) -> tuple[Contract, IndicatorOutcome] | None:
    """The version in force on the outcome's review date decides it (as a trigger's date
    picks the version for a subject's outcome)."""
    for contract, (first, last) in versions:
        for outcome in contract.indicator_outcomes:
            if outcome.id == outcome_id and first <= outcome.review_on <= last:
                return contract, outcome
    return None


def indicator_instructions(contract: Contract, decision: OutcomeDecision,
                           issued: Sequence[PaymentInstruction], cause: Cause = FINAL) -> list[PaymentInstruction]:
    """New instructions that bring each payee's net for the outcome to the decision's
    amount, by the difference (`reconcile`): a rise is a top-up, a fall a partial
    clawback, each under an id derived from its `cause`."""
    return reconcile(desired_instructions(contract, (decision,)), issued, default=cause)
