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

from shared.events import Transition


def content_hash(transition: Transition) -> str:
    return hashlib.sha256(transition.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class Sorted:
    fresh: tuple[Transition, ...]
    duplicates: int
    conflicting: tuple[Transition, ...]


def classify(seen: Mapping[str, str], transitions: Sequence[Transition]) -> Sorted:
    """Pure: sort a batch against the content hashes already seen per event id (a
    repeat inside the batch counts as seen too)."""
    known_hashes = dict(seen)
    fresh: list[Transition] = []
    conflicting: list[Transition] = []
    duplicates = 0
    for transition in transitions:
        digest = content_hash(transition)
        known = known_hashes.get(transition.event_id)
        if known is None:
            known_hashes[transition.event_id] = digest
            fresh.append(transition)
        elif known == digest:
            duplicates += 1
        else:
            conflicting.append(transition)
    return Sorted(tuple(fresh), duplicates, tuple(conflicting))


async def sort_out(connection: asyncpg.Connection, transitions: Sequence[Transition]) -> Sorted:
    seen = {r["event_id"]: r["content_hash"] for r in await connection.fetch(
        "SELECT event_id, content_hash FROM ingest_seen_events WHERE event_id = ANY($1::text[])",
        [t.event_id for t in transitions])}
    return classify(seen, transitions)


async def remember(connection: asyncpg.Connection, transitions: Sequence[Transition]) -> None:
    await connection.execute(
        "INSERT INTO ingest_seen_events (event_id, content_hash)"
        " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (event_id) DO NOTHING",
        [t.event_id for t in transitions], [content_hash(t) for t in transitions])
