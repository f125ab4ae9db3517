"""An employment programme's target group, from facts: which benefit a citizen
received when (the benefit register's `benefit_started` / `benefit_ended`), whether the
municipality referred them to a programme while they received an eligible benefit, and
how many whole months they have been off benefit since. Pure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from shared.domain.contracts.model import ReferralRule
from shared.domain.contracts.timeline import Fact, SubjectTimeline
from shared.domain.events import EventType

MONTHS_MAX = 12 * 100  # a century of months: more is a date error, not a benefit history


@dataclass(frozen=True)
class BenefitPeriod:
    benefit: str
    municipality: str
    start: dt.date
    end: dt.date | None  # inclusive; None: still received

    def covers(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


def benefit_periods(timeline: SubjectTimeline) -> tuple[BenefitPeriod, ...]:
    """A start opens a period of that benefit, an end closes it (inclusive), in date
    order; a second start of a benefit already received changes nothing, an end with no
    open period is ignored (the register's correction would be a retraction)."""
    open_periods: dict[str, tuple[str, dt.date]] = {}
    closed: list[BenefitPeriod] = []
    for fact in timeline.facts:
        benefit = str(fact.body.get("benefit", ""))
        if fact.type == EventType.BENEFIT_STARTED:
            open_periods.setdefault(benefit, (str(fact.body.get("municipality", "")), fact.occurred_on))
        elif fact.type == EventType.BENEFIT_ENDED and benefit in open_periods:
            municipality, start = open_periods.pop(benefit)
            if fact.occurred_on >= start:
                closed.append(BenefitPeriod(benefit, municipality, start, fact.occurred_on))
    closed.extend(BenefitPeriod(b, m, start, None) for b, (m, start) in open_periods.items())
    return tuple(sorted(closed, key=lambda p: (p.start, p.benefit)))


def benefit_on(periods: tuple[BenefitPeriod, ...], day: dt.date) -> str | None:
    """The benefit received on `day` (the earliest started, if several overlap)."""
    return next((p.benefit for p in periods if p.covers(day)), None)


def referrals(timeline: SubjectTimeline, programme: str) -> tuple[Fact, ...]:
    return tuple(f for f in timeline.facts
                 if f.type == EventType.REFERRAL and f.body.get("programme") == programme)


def eligible_referrals(rule: ReferralRule, timeline: SubjectTimeline) -> tuple[Fact, ...]:
    """The referrals to the programme made on a day the citizen received an eligible
    benefit (and, when the rule has places, to a cluster that has places), in date order."""
    periods = benefit_periods(timeline)
    return tuple(f for f in referrals(timeline, rule.programme)
                 if benefit_on(periods, f.occurred_on) in rule.benefits
                 and (not rule.places or rule.places_of(str(f.body.get("municipality")),
                                                        str(f.body.get("cluster"))) is not None))


def referral_eligible(rule: ReferralRule, timeline: SubjectTimeline) -> bool:
    return bool(eligible_referrals(rule, timeline))


def months_off_benefit(periods: tuple[BenefitPeriod, ...], after: dt.date, until: dt.date) -> int:
    """Whole calendar months that start after `after` and end on or before `until` in
    which the citizen received no benefit on any day. A month partly on benefit is not
    counted: the saving is measured conservatively, in whole months of benefit not paid."""
    count = 0
    year, month = after.year, after.month
    for _ in range(MONTHS_MAX):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        if year > dt.MAXYEAR - 1:  # the calendar ends; no whole month after it
            break
        first = dt.date(year, month, 1)
        last = (dt.date(year + 1, 1, 1) if month == 12 else dt.date(year, month + 1, 1)) - dt.timedelta(days=1)
        if last > until:
            break
        if not any(p.start <= last and (p.end is None or p.end >= first) for p in periods):
            count += 1
    return count
