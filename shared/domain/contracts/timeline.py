"""A subject's timeline: the fold of its events into what the engine reasons over.

Institutions correct mistakes with new events, never edits: a retraction removes an
earlier fact, an amendment replaces its body. `occurred_on` orders facts, arrival order
does not, so the same set of events in any arrival order folds to the same timeline.

An event is known by (reporter, event id): an event id is its reporter's own. Only the
reporter of an event, or the institution the registry names as its authority, may
correct it; ingest refuses anything else, and the fold ignores it again (defence in
depth) and records why in `ignored`. An amendment never changes an event's type (nor,
since a subject's fold sees only its own events, its subject or its reporter). A
correction whose event has not arrived changes nothing yet; since the fold is taken
over the whole stream, it is judged when its event arrives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
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


NOT_ORIGINAL_REPORTER = "not_original_reporter"
AMENDMENT_CHANGES_TYPE = "amendment_changes_type"


@dataclass(frozen=True)
class IgnoredCorrection:
    """A retraction or amendment the fold did not apply, and why (a reason code)."""

    reported_by: str
    event_id: str
    reason: str


@dataclass(frozen=True)
class SubjectTimeline:
    subject: str
    birth_date: dt.date
    facts: tuple[Fact, ...]
    registrations: tuple[Registration, ...]
    # Institution kinds by id, as seen on this subject's own events (reporter kinds).
    kinds: tuple[tuple[str, str], ...]
    ignored: tuple[IgnoredCorrection, ...] = ()

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


EventKey = tuple[str, str]  # (reported_by, event_id)


def fold(subject: str, birth_date: dt.date, events: Iterable[Transition],
         authorities: Mapping[str, str] | None = None) -> SubjectTimeline:
    """`authorities`: institution id -> the institution that may correct its events
    (the registry's `authority`); without it, only an event's reporter may."""
    by_key: dict[EventKey, Transition] = {}
    for event in events:
        by_key.setdefault((event.reported_by, event.event_id), event)  # a duplicated key is one event
    retracted, amendments, ignored = _corrections(by_key, authorities or {})
    bodies = {key: e.body for key, e in by_key.items() if not isinstance(e.body, Retraction | Amendment)}
    for target, amendment in sorted(((t, a) for t, a in amendments if (a.reported_by, a.event_id) not in retracted),
                                    key=lambda pair: (pair[1].occurred_on, pair[1].event_id, pair[1].reported_by)):
        assert isinstance(amendment.body, Amendment)
        bodies[target] = amendment.body.body
    facts = tuple(sorted(
        (Fact(event_id=e.event_id, occurred_on=e.occurred_on, reported_by=e.reported_by,
              reporter_kind=e.reporter_kind, type=EventType(bodies[key].type),
              body=bodies[key].model_dump(mode="json"))
         for key, e in by_key.items() if key in bodies and key not in retracted),
        key=lambda f: (f.occurred_on, f.event_id, f.reported_by),
    ))
    kinds = sorted({(e.reported_by, e.reporter_kind) for e in by_key.values()})
    return SubjectTimeline(subject=subject, birth_date=birth_date, facts=facts,
                           registrations=registrations_from(facts), kinds=tuple(kinds),
                           ignored=tuple(sorted(ignored, key=lambda i: (i.reported_by, i.event_id))))


def _corrections(by_key: Mapping[EventKey, Transition], authorities: Mapping[str, str]
                 ) -> tuple[set[EventKey], list[tuple[EventKey, Transition]], list[IgnoredCorrection]]:
    """The keys retracted, the amendments with the key each amends, and the corrections
    ignored: by someone who may not correct that event, or an amendment to another type.
    A correction of an event not (yet) in the stream is neither applied nor ignored."""
    retracted: set[EventKey] = set()
    amendments: list[tuple[EventKey, Transition]] = []
    ignored: list[IgnoredCorrection] = []
    for key, event in by_key.items():
        body = event.body
        if not isinstance(body, Retraction | Amendment):
            continue
        named, event_id = body.corrects
        target = (named or event.reported_by, event_id)
        corrected = by_key.get(target)
        allowed = target[0] == event.reported_by or authorities.get(target[0]) == event.reported_by
        someone_elses = corrected is None and any(k[1] == event_id and k[0] != target[0] for k in by_key)
        if not allowed or someone_elses:
            ignored.append(IgnoredCorrection(*key, NOT_ORIGINAL_REPORTER))
        elif corrected is None:
            continue  # waits for its event
        elif isinstance(body, Retraction):
            retracted.add(target)
        elif corrected.body.type != body.body.type:
            ignored.append(IgnoredCorrection(*key, AMENDMENT_CHANGES_TYPE))
        else:
            amendments.append((target, event))
    return retracted, amendments, ignored


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
