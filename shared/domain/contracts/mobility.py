"""The social mobility rules: a subject's starting point (its parents' highest
completed education, a `parental_education` fact from the education register) as an
eligibility condition and as a weight on an outcome's price. Pure."""

from __future__ import annotations

from fractions import Fraction

from shared.domain.contracts.model import Eligibility, Outcome
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.events import EventType


def parents_education(timeline: SubjectTimeline) -> str | None:
    """The latest reported level (facts are in date order; a correction is a new fact)."""
    levels = [str(f.body.get("highest_level")) for f in timeline.facts
              if f.type == EventType.PARENTAL_EDUCATION]
    return levels[-1] if levels else None


def starting_point_eligible(rules: Eligibility, timeline: SubjectTimeline) -> bool:
    if not rules.parents_education_in:
        return True
    return parents_education(timeline) in rules.parents_education_in


def weighted_price(outcome: Outcome, timeline: SubjectTimeline, price_minor: int) -> int:
    """The price times the starting point's weight, rounded down (the payer keeps the
    fraction, as for a rate price)."""
    level = parents_education(timeline)
    weight = outcome.price_weight_by_parents_education.get(level) if level else None  # type: ignore[call-overload]
    if weight is None:
        return price_minor
    weighted = Fraction(weight) * price_minor
    return weighted.numerator // weighted.denominator
