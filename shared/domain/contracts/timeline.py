"""A subject's timeline: the fold of its events into what the engine reasons over.

Institutions correct mistakes with new events, never edits: a retraction removes an
earlier fact, an amendment replaces its body. `occurred_on` orders facts, arrival order
does not, so the same set of events in any arrival order folds to the same timeline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from shared.domain.contracts.solidarity import ONE_DAY, Registration
from shared.domain.events import (
    Amendment,
    Enrolled,
    EventType,
    Left,
    Retraction,
    Transfer,
    Transition,
)


@dataclass(frozen=True)
class Fact:
    """An effective fact: a transition after retractions and amendments are applied."""

    event_id: str
    occurred_on: dt.date
    reported_by: str
    reporter_kind: str
    type: EventType
    body: dict[str, object]


@dataclass(frozen=True)
class SubjectTimeline:
    subject: str
    birth_date: dt.date
    facts: tuple[Fact, ...]
    registrations: tuple[Registration, ...]
    # Institution kinds by id, as seen on this subject's own events (reporter kinds).
    kinds: tuple[tuple[str, str], ...]

    def kind_of(self, institution: str) -> str | None:
        return dict(self.kinds).get(institution)

    def age_on(self, day: dt.date) -> int:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

    def registered_on(self, day: dt.date) -> tuple[Registration, ...]:
        return tuple(r for r in self.registrations
                     if r.start <= day and (r.end is None or day <= r.end))


def fold(subject: str, birth_date: dt.date, events: Iterable[Transition]) -> SubjectTimeline:
    by_id: dict[str, Transition] = {}
    for event in events:
        by_id.setdefault(event.event_id, event)  # a duplicated event id is one event
    retracted = {e.body.retracts_event_id for e in by_id.values()
                 if isinstance(e.body, Retraction)}
    amendments = sorted(
        (e for e in by_id.values()
         if isinstance(e.body, Amendment) and e.event_id not in retracted),
        key=lambda e: (e.occurred_on, e.event_id),
    )
    bodies = {e.event_id: e.body for e in by_id.values()
              if not isinstance(e.body, Retraction | Amendment)}
    for amendment in amendments:
        assert isinstance(amendment.body, Amendment)
        if amendment.body.amends_event_id in bodies:
            bodies[amendment.body.amends_event_id] = amendment.body.body
    facts = tuple(sorted(
        (Fact(event_id=e.event_id, occurred_on=e.occurred_on, reported_by=e.reported_by,
              reporter_kind=e.reporter_kind, type=EventType(bodies[e.event_id].type),
              body=bodies[e.event_id].model_dump(mode="json"))
         for e in by_id.values() if e.event_id in bodies and e.event_id not in retracted),
        key=lambda f: (f.occurred_on, f.event_id),
    ))
    kinds = sorted({(e.reported_by, e.reporter_kind) for e in by_id.values()})
    return SubjectTimeline(subject=subject, birth_date=birth_date, facts=facts,
                           registrations=registrations_from(facts), kinds=tuple(kinds))


def registrations_from(facts: Iterable[Fact]) -> tuple[Registration, ...]:
    """Enrolments open a stay, leavings close it (inclusive); a transfer does both."""
    open_stays: dict[str, dt.date] = {}
    closed: list[Registration] = []

    def close(institution: str, last_day: dt.date) -> None:
        start = open_stays.pop(institution, None)
        if start is not None and last_day >= start:
            closed.append(Registration(institution, start, last_day))

    for fact in facts:
        if fact.type == EventType.ENROLLED:
            institution = Enrolled.model_validate(fact.body).institution
            open_stays.setdefault(institution, fact.occurred_on)
        elif fact.type == EventType.LEFT:
            close(Left.model_validate(fact.body).institution, fact.occurred_on)
        elif fact.type == EventType.TRANSFER:
            transfer = Transfer.model_validate(fact.body)
            close(transfer.from_institution, fact.occurred_on - ONE_DAY)
            open_stays.setdefault(transfer.to_institution, fact.occurred_on)
    still_there = [Registration(inst, start, None) for inst, start in open_stays.items()]
    return tuple(sorted(closed + still_there,
                        key=lambda r: (r.start, r.institution, r.end or dt.date.max)))
