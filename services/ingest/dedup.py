"""Deduplication by event id, across restarts, in PostgreSQL.

The same event id with the same content is one event: dropped and counted. The same
event id with different content is an institution's mistake: dead-lettered as
`conflicting_duplicate`, because silently keeping either version would hide it.

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


def content_hash(transition: Transition) -> str:
    return Forwardable.of(transition).digest


@dataclass(frozen=True)
class Sorted:
    fresh: tuple[Forwardable, ...]
    duplicates: int
    conflicting: tuple[Forwardable, ...]


def classify(seen: Mapping[str, str], admitted: Sequence[Forwardable]) -> Sorted:
    """Pure: sort a batch against the content hashes already seen per event id (a
    repeat inside the batch counts as seen too)."""
    known_hashes = dict(seen)
    fresh: list[Forwardable] = []
    conflicting: list[Forwardable] = []
    duplicates = 0
    for item in admitted:
        known = known_hashes.get(item.event_id)
        if known is None:
            known_hashes[item.event_id] = item.digest
            fresh.append(item)
        elif known == item.digest:
            duplicates += 1
        else:
            conflicting.append(item)
    return Sorted(tuple(fresh), duplicates, tuple(conflicting))


async def sort_out(connection: asyncpg.Connection, admitted: Sequence[Forwardable]) -> Sorted:
    seen = {r["event_id"]: r["content_hash"] for r in await connection.fetch(
        "SELECT event_id, content_hash FROM ingest_seen_events WHERE event_id = ANY($1::text[])",
        [t.event_id for t in admitted])}
    return classify(seen, admitted)


async def remember(connection: asyncpg.Connection, forwarded: Sequence[Forwardable]) -> None:
    await connection.execute(
        "INSERT INTO ingest_seen_events (event_id, content_hash)"
        " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (event_id) DO NOTHING",
        [t.event_id for t in forwarded], [t.digest for t in forwarded])
