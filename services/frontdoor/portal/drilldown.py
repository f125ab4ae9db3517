"""One statement line, opened: the outcome, the contract, and the institution's own part.

Pure. What an institution sees of a child is what concerns it: its own stays (the dates,
the event ids it reported), its own days counted, its own amount, and the rest of the
outcome's money as one "other institutions" sum. Never another institution's name, stay
or event, never the child's pseudonym or birth date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from services.frontdoor.portal.statement import StatementLine
from shared.domain.contracts.model import Contract, SolidarityDistribution
from shared.domain.contracts.solidarity import ONE_DAY, Registration, merge_registrations, year_span
from shared.domain.contracts.timeline import fold
from shared.domain.events import Transition


@dataclass(frozen=True)
class OwnStay:
    start: dt.date
    end: dt.date | None          # None: still there
    event_ids: tuple[str, ...]   # the enrolment and leaving the institution reported


@dataclass(frozen=True)
class OwnEvent:
    event_id: str
    occurred_on: dt.date
    type: str


@dataclass(frozen=True)
class LineDetail:
    line: StatementLine
    contract_title: str
    outcome_description: str
    status: str | None              # the verifier's decision now (verified, rejected, ...)
    reason: str | None
    counts_on: dt.date | None       # the day the outcome counts (trigger, or end of sustainment)
    outcome_total_minor: int | None  # everything the outcome pays
    own_minor: int | None            # of it, this institution's
    stays: tuple[OwnStay, ...]
    events: tuple[OwnEvent, ...]
    days_counted: int | None

    @property
    def others_minor(self) -> int | None:
        if self.outcome_total_minor is None or self.own_minor is None:
            return None
        return self.outcome_total_minor - self.own_minor


def line_detail(line: StatementLine, institution: str, decision: Mapping[str, object] | None,
                contract: Contract | None, stream: Iterable[Transition]) -> LineDetail:
    events = list(stream)
    own = [e for e in events if e.reported_by == institution]
    stays: tuple[OwnStay, ...] = ()
    days: int | None = None
    counts_on = _date(decision.get("occurred_on")) if decision else None
    if events:
        timeline = fold(events[0].subject, events[0].birth_date, events)
        own_ids = {e.event_id for e in own}
        mine = [r for r in timeline.registrations if r.institution == institution]
        stays = tuple(OwnStay(r.start, r.end, tuple(
            f.event_id for f in timeline.facts
            if f.event_id in own_ids and f.body.get("institution") == institution
            and (f.occurred_on == r.start or (r.end is not None and f.occurred_on == r.end))))
            for r in mine)
        if counts_on is not None:
            days = days_counted(contract, line.outcome_id, timeline.birth_date, mine, counts_on)
    payees = dict(_payees(decision)) if decision else {}
    return LineDetail(
        line=line,
        contract_title=contract.title if contract else line.contract_id,
        outcome_description=_outcome_description(contract, line.outcome_id),
        status=str(decision["status"]) if decision else None,
        reason=str(decision["reason"]) if decision and decision.get("reason") else None,
        counts_on=counts_on,
        outcome_total_minor=int(str(decision["owed_minor"])) if decision else None,
        own_minor=payees.get(institution, 0) if decision else None,
        stays=stays,
        events=tuple(OwnEvent(e.event_id, e.occurred_on, e.body.type) for e in
                     sorted(own, key=lambda e: (e.occurred_on, e.event_id))),
        days_counted=days,
    )


def days_counted(contract: Contract | None, outcome_id: str, birth_date: dt.date,
                 stays: Iterable[Registration], counts_on: dt.date) -> int:
    """The institution's days that count for the outcome: its stays up to the day the
    outcome counts, and, under a solidarity rule, only in the years of age it weighs."""
    merged = [span for spans in merge_registrations(stays, counts_on).values() for span in spans]
    windows = [(dt.date.min, counts_on)]
    rule = _rule(contract, outcome_id)
    if rule is not None:
        windows = [(first, min(last, counts_on))
                   for first, last in (year_span(rule.year_basis, birth_date, age) for age in rule.age_weights())
                   if first <= counts_on]
    total = 0
    for start, end in merged:
        for first, last in windows:
            low, high = max(start, first), min(end, last)
            if low <= high:
                total += (high - low + ONE_DAY).days
    return total


def _rule(contract: Contract | None, outcome_id: str) -> SolidarityDistribution | None:
    if contract is None:
        return None
    for outcome in contract.outcomes:
        if outcome.id == outcome_id and isinstance(outcome.distribution, SolidarityDistribution):
            return outcome.distribution
    return None


def _outcome_description(contract: Contract | None, outcome_id: str) -> str:
    if contract is not None:
        for outcome in contract.outcomes:
            if outcome.id == outcome_id and outcome.description:
                return outcome.description
    return outcome_id


def _payees(decision: Mapping[str, object]) -> list[tuple[str, int]]:
    found = decision.get("payees") or []
    assert isinstance(found, list)
    return [(str(payee), int(amount)) for payee, amount in found]


def _date(value: object) -> dt.date | None:
    return dt.date.fromisoformat(value) if isinstance(value, str) else None
