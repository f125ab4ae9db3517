"""The outbox relay: publish what the verifier committed, then delete it from the outbox.

At-least-once by construction (a crash between publish and delete republishes), which is
safe because every record carries a deterministic id that consumers deduplicate on:
payment ids in the ledger, outcome keys for outcome consumers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from services.verifier import store
from shared import faults

RELAY_BATCH_MAX = 2000

Publish = Callable[[bytes, str, bytes], Awaitable[Any]]


async def relay_outbox(pool: asyncpg.Pool, publish: Publish) -> int:
    """Publish every unpublished outbox record in order; return how many were published."""
    total = 0
    while True:
        async with pool.acquire() as connection:
            pending = await store.unpublished(connection, RELAY_BATCH_MAX)
        if not pending:
            return total
        acknowledgements = [await publish(payload.encode(), topic, key.encode())
                            for _, topic, key, payload in pending]
        await asyncio.gather(*acknowledgements)
        faults.reached("verifier.relay.after_publish")
        async with pool.acquire() as connection:
            await store.mark_published(connection, [sequence for sequence, *_ in pending])
        total += len(pending)
