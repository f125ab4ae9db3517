"""Deduplication by (reporter, event id), across restarts, in PostgreSQL.

An event id belongs to the institution that reported it: another institution's event
under the same id is another event (no institution can take the id another is about to
use). The same key with the same content is one event: dropped and counted. The same
key with different content (another subject, another body) is an institution's mistake:
dead-lettered as `conflicting_duplicate`, because silently keeping either version would
hide it.

Order matters for not losing events: forward first, then remember. A crash between the
two forwards the batch again, which the verifier's unique event ids absorb; the reverse
order could remember an event that was never forwarded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from shared.domain.events import Amendment, Retraction, Transition

EventKey = tuple[str, str]  # (reported_by, event_id)
# Rows remembered before ids were per reporter carry no reporter: they match any.
LEGACY_REPORTER = ""


@dataclass(frozen=True)
class Forwardable:
    """An admitted transition with its JSON as it will be published, serialised once:
    the content hash is the hash of exactly the bytes forwarded."""

    transition: Transition
    value: bytes
    digest: str

    @classmethod
    def of(cls, transition: Transition) -> Forwardable:
        value = transition.model_dump_json().encode()
        return cls(transition, value, hashlib.sha256(value).hexdigest())

    @property
    def event_id(self) -> str:
        return self.transition.event_id

    @property
    def key(self) -> EventKey:
        return (self.transition.reported_by, self.transition.event_id)


def content_hash(transition: Transition) -> str:
    return Forwardable.of(transition).digest


@dataclass(frozen=True)
class Sorted:
    fresh: tuple[Forwardable, ...]
    duplicates: int
    conflicting: tuple[Forwardable, ...]


def classify(seen: Mapping[EventKey, str], admitted: Sequence[Forwardable]) -> Sorted:
    """Pure: sort a batch against the content hashes already seen per (reporter, event
    id) (a repeat inside the batch counts as seen too). A row from before ids were per
    reporter (no reporter) makes an event with its very content a duplicate, nothing
    more: it cannot say whose id it was."""
    known_hashes = dict(seen)
    fresh: list[Forwardable] = []
    conflicting: list[Forwardable] = []
    duplicates = 0
    for item in admitted:
        known = known_hashes.get(item.key)
        if known is None and known_hashes.get((LEGACY_REPORTER, item.event_id)) == item.digest:
            duplicates += 1
        elif known is None:
            known_hashes[item.key] = item.digest
            fresh.append(item)
        elif known == item.digest:
            duplicates += 1
        else:
            conflicting.append(item)
    return Sorted(tuple(fresh), duplicates, tuple(conflicting))


@dataclass(frozen=True)
class SeenEvent:
    """What ingest remembers of a forwarded event (subject and type: None for rows from
    before it remembered them)."""

    content_hash: str
    subject: str | None
    event_type: str | None


@dataclass(frozen=True)
class Misfit:
    """A correction refused against the event it corrects."""

    item: Forwardable
    reason: str  # shared/domain/admission.py: Reason
    message: str


def corrected_key(transition: Transition) -> EventKey | None:
    """The (reporter, event id) a retraction or amendment corrects; None for a fact."""
    body = transition.body
    if not isinstance(body, Retraction | Amendment):
        return None
    named, event_id = body.corrects
    return (named or transition.reported_by, event_id)


def judge_corrections(seen: Mapping[EventKey, SeenEvent], fresh: Sequence[Forwardable]
                      ) -> tuple[tuple[Forwardable, ...], tuple[Misfit, ...]]:
    """Pure: split the batch's new events into those to forward and the corrections that
    do not fit the event they correct. Admission checked who may correct whom; here the
    corrected event itself is known (remembered, or earlier in the batch):
    - not found under the reporter it names, but this subject has an event with that id
      from another institution: `not_original_reporter` (the attack: correcting another
      institution's fact by its id);
    - of another subject: `correction_changes_subject`;
    - an amendment to another type: `amendment_changes_type`.
    A correction whose event is not known yet is forwarded: it waits in the verifier and
    is judged (by the fold) when its event arrives."""
    known: dict[EventKey, SeenEvent] = dict(seen)
    by_id: dict[str, list[tuple[EventKey, SeenEvent]]] = {}
    for key, event in seen.items():
        by_id.setdefault(key[1], []).append((key, event))
    forward: list[Forwardable] = []
    misfits: list[Misfit] = []
    for item in fresh:
        target = corrected_key(item.transition)
        misfit = None if target is None else _misfit(item, target, known.get(target), by_id.get(target[1], []))
        if misfit is not None:
            misfits.append(misfit)
            continue
        forward.append(item)
        event = SeenEvent(item.digest, item.transition.subject, item.transition.body.type.value)
        known[item.key] = event
        by_id.setdefault(item.event_id, []).append((item.key, event))
    return tuple(forward), tuple(misfits)


def _misfit(item: Forwardable, target: EventKey, event: SeenEvent | None,
            same_id: Sequence[tuple[EventKey, SeenEvent]]) -> Misfit | None:
    subject = item.transition.subject
    if event is None:
        if any(key[0] not in (target[0], LEGACY_REPORTER) and other.subject == subject for key, other in same_id):
            return Misfit(item, "not_original_reporter",
                          f"event {target[1]} of this subject was reported by another institution; "
                          f"only its reporter or its authority may correct it")
        return None
    if event.subject is not None and event.subject != subject:
        return Misfit(item, "correction_changes_subject",
                      f"event {target[1]} of {target[0]} is about another subject")
    body = item.transition.body
    if isinstance(body, Amendment) and event.event_type is not None and event.event_type != body.body.type.value:
        return Misfit(item, "amendment_changes_type",
                      f"event {target[1]} is {event.event_type}; an amendment may not make it {body.body.type.value}")
    return None


async def seen_events(connection: asyncpg.Connection, event_ids: Sequence[str]) -> dict[EventKey, SeenEvent]:
    """Every remembered event under these ids, whoever reported it."""
    return {(r["reported_by"], r["event_id"]): SeenEvent(r["content_hash"], r["subject"], r["event_type"])
            for r in await connection.fetch(
                "SELECT reported_by, event_id, content_hash, subject, event_type FROM ingest_seen_events"
                " WHERE event_id = ANY($1::text[])", sorted(set(event_ids)))}


async def sort_out(connection: asyncpg.Connection, admitted: Sequence[Forwardable]
                   ) -> tuple[Sorted, tuple[Misfit, ...]]:
    """The batch sorted into fresh, duplicate and conflicting, and the fresh corrections
    that do not fit the event they correct (taken out of `fresh`)."""
    targets = [key[1] for item in admitted if (key := corrected_key(item.transition)) is not None]
    seen = await seen_events(connection, [*(t.event_id for t in admitted), *targets])
    verdict = classify({key: event.content_hash for key, event in seen.items()}, admitted)
    forward, misfits = judge_corrections(seen, verdict.fresh)
    return Sorted(forward, verdict.duplicates, verdict.conflicting), misfits


async def remember(connection: asyncpg.Connection, forwarded: Sequence[Forwardable]) -> None:
    await connection.execute(
        "INSERT INTO ingest_seen_events (reported_by, event_id, content_hash, subject, event_type)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
        " ON CONFLICT (reported_by, event_id) DO NOTHING",
        [t.transition.reported_by for t in forwarded], [t.event_id for t in forwarded],
        [t.digest for t in forwarded], [t.transition.subject for t in forwarded],
        [t.transition.body.type.value for t in forwarded])
