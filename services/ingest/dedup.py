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

from shared.domain.events import Transition

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


async def sort_out(connection: asyncpg.Connection, admitted: Sequence[Forwardable]) -> Sorted:
    seen = {(r["reported_by"], r["event_id"]): r["content_hash"] for r in await connection.fetch(
        "SELECT reported_by, event_id, content_hash FROM ingest_seen_events WHERE event_id = ANY($1::text[])",
        sorted({t.event_id for t in admitted}))}
    return classify(seen, admitted)


async def remember(connection: asyncpg.Connection, forwarded: Sequence[Forwardable]) -> None:
    await connection.execute(
        "INSERT INTO ingest_seen_events (reported_by, event_id, content_hash, subject, event_type)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])"
        " ON CONFLICT (reported_by, event_id) DO NOTHING",
        [t.transition.reported_by for t in forwarded], [t.event_id for t in forwarded],
        [t.digest for t in forwarded], [t.transition.subject for t in forwarded],
        [t.transition.body.type.value for t in forwarded])
