"""Subjects' streams for a batch: from the events the batch appended, from a bounded
cache of streams keyed by version, and from the store for the rest.

A stream is append-only and its version is the number of its events (`(subject,
version)` is unique in `verifier_events`), so the events 1..v of a subject never change:
a cached stream is used only at exactly the version the batch read under the subject's
lock. Whatever another replica appended in between raised that version, so its events
are read from the store, never missed. Re-parsing a subject's stored JSON on every
evaluation is what this saves; a subject seen for the first time (version 0 before the
batch) needs no read at all.

The cache belongs to one store: a process that empties the store (a rebuild) starts
with a cache of its own.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import asyncpg

from services.verifier import store
from shared.domain.events import Transition

Stream = tuple[Transition, ...]

# Enough for the subjects of a few dozen batches (a few events each); the rest is read.
STREAM_CACHE_EVENTS_MAX = 50_000


class StreamCache:
    """The most recently used subjects' streams, each with its version, at most
    `events_max` events in all (least recently used first out)."""

    def __init__(self, events_max: int = STREAM_CACHE_EVENTS_MAX) -> None:
        self.events_max = events_max
        self.events = 0
        self.hits = 0  # streams (or a stream's first part) not read from the store
        self._streams: OrderedDict[str, tuple[int, Stream]] = OrderedDict()

    def get(self, subject: str, version: int) -> Stream | None:
        """The subject's stream if it is cached at exactly `version`."""
        entry = self._streams.get(subject)
        if entry is None or entry[0] != version:
            return None
        self._streams.move_to_end(subject)
        self.hits += 1
        return entry[1]

    def put(self, subject: str, version: int, stream: Stream) -> None:
        if len(stream) != version:
            raise ValueError(f"a stream of {len(stream)} events cannot be version {version}")
        self._forget(subject)
        if version > self.events_max:
            return
        self._streams[subject] = (version, stream)
        self.events += version
        while self.events > self.events_max:
            self._forget(next(iter(self._streams)))

    def remember(self, versions: Mapping[str, int], streams: Mapping[str, Sequence[Transition]]) -> None:
        """Keep the streams a batch used, once its transaction has committed: a batch
        rolled back may have held events that never became those versions."""
        for subject, version in versions.items():
            stream = streams.get(subject)
            # A version is its stream's length; a store where it is not (edited by
            # hand) is read every time rather than trusted.
            if stream is not None and len(stream) == version:
                self.put(subject, version, tuple(stream))

    def _forget(self, subject: str) -> None:
        entry = self._streams.pop(subject, None)
        if entry is not None:
            self.events -= entry[0]


async def read_streams(connection: asyncpg.Connection, versions: Mapping[str, int], appended: store.Appended,
                       cache: StreamCache | None) -> dict[str, Sequence[Transition]]:
    """The streams of these subjects at `versions` (read under their locks): cached, or
    the cached (or empty) stream before this batch plus what it appended, or stored. The
    caller gives them to `StreamCache.remember` once its transaction has committed."""
    cache = cache if cache is not None else StreamCache(events_max=0)  # none: only new subjects go unread
    streams: dict[str, Sequence[Transition]] = {}
    unread: list[str] = []
    for subject, version in versions.items():
        stream = cache.get(subject, version)
        if stream is None and subject in appended.before:
            # Version 0 before this batch: the subject's first events are all it has.
            version_before = appended.before[subject]
            before = () if version_before == 0 else cache.get(subject, version_before)
            stream = None if before is None else before + appended.fresh[subject]
        if stream is None:
            unread.append(subject)
        else:
            streams[subject] = stream
    for subject, read in (await store.load_streams(connection, unread)).items():
        streams[subject] = tuple(read)
    return streams


__all__ = ["STREAM_CACHE_EVENTS_MAX", "StreamCache", "read_streams"]
