"""The outbox relay: publish what the verifier committed, then delete it from the outbox.

At-least-once by construction (a crash between publish and delete republishes), which is
safe because every record carries a deterministic id that consumers deduplicate on:
payment ids in the ledger, outcome keys for outcome consumers.

Exclusive across replicas: a round reads, publishes and deletes inside one transaction
that holds the relay's advisory lock, so two replicas never publish the same rows (each
waits for the other's round, then finds only what is still there). A crash or a broker
error rolls the round back: the rows stay and the next round (any replica's) sends them.
Rows go out in outbox order, and a subject's rows are always in the order its batches
committed (its batches hold the subject's lock until they commit).

A round is handed to `publish` whole, so that it goes through the raw producer
(services/verifier/app.py) instead of one framework call per record. The relay signs
nothing: each record carries the signature the verifier stored with it when it decided
(`store.sign_outbox`, in the deciding transaction); a row written with the database login
alone carries none, and the ledger refuses it (`unauthenticated_instruction`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from services.verifier import store
from shared.platform import faults

RELAY_BATCH_MAX = 2000

# (topic, key, value, signature headers) of each record, in order -> one acknowledgement
# per record, each resolving when the broker acknowledged that record.
Outgoing = tuple[str, bytes, bytes, list[tuple[str, bytes]]]
Publish = Callable[[Sequence[Outgoing]], Awaitable[Sequence[Awaitable[Any]]]]


async def relay_outbox(pool: asyncpg.Pool, publish: Publish) -> int:
    """Publish every unpublished outbox record in order; return how many were published."""
    total = 0
    async with pool.acquire() as connection:
        while True:
            async with connection.transaction():
                await store.lock_relay(connection)
                pending = await store.unpublished(connection, RELAY_BATCH_MAX)
                if not pending:
                    return total
                # Send the whole round, then wait for every acknowledgement at once: the
                # producer batches the records instead of one round trip each.
                acknowledgements = await publish([(topic, key.encode(), payload.encode(), headers)
                                                  for _, topic, key, payload, headers in pending])
                await asyncio.gather(*acknowledgements)
                faults.reached("verifier.relay.after_publish")
                await store.mark_published(connection, [sequence for sequence, *_ in pending])
            total += len(pending)
