"""Rebuild: drop the ledger projection and replay the journal (the payments topic).

The journal's order is the chain's order and the projector's decisions are pure, so the
rebuilt ledger has identical entries, balances and chain head. Stop the ledger service
first: a rebuild and a live projector writing at once would interleave. It believes what
the live projector believes (`ledger_trust`), the upgrade boundary for signed originals
included (LEDGER_ORIGINS_REQUIRED_FROM, docs/security.md): a journal older than signed
originals rebuilds identically only with that boundary set.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.ledger.authenticity import JournalRecord, Refused, admit_journal
from services.ledger.provenance import SourceRecord
from services.ledger.store import apply_journal
from shared.domain.ledger.journal import JournalPlan
from shared.domain.tenancy import Tenancy
from shared.platform.credentials import kafka_options
from shared.platform.db import create_pool, migrate
from shared.platform.settings import Settings
from shared.platform.tenants import load_tenancy
from shared.platform.trust import TrustedKeys, ledger_trust

REBUILD_BATCH_MAX = 5000
FETCH_TIMEOUT_MS = 1000
YIELD_EVERY = 250  # records checked between two turns of the batch being written


@dataclass(frozen=True)
class RebuildReport:
    records: int
    entries: int
    rejected: int
    head_hash: str
    seconds: float


async def drop_projection(connection: asyncpg.Connection) -> None:
    async with connection.transaction():
        await connection.execute("SET LOCAL stafet.ledger_rebuild = 'on'")
        await connection.execute("TRUNCATE ledger_lines, ledger_entry_sources, ledger_entries")
        await connection.execute(
            "UPDATE ledger_chain_head SET sequence = 0, entry_hash = repeat('0', 64)")


async def rebuild_ledger(database_url: str, bootstrap: str, journal_topic: str,
                         progress: object | None = None, trust: TrustedKeys | None = None,
                         tenancy: Tenancy | None = None) -> RebuildReport:
    """`trust`: whose journal records to believe, as the live projector does (default:
    this process's settings); `tenancy` likewise (default: TENANTS_FILE)."""
    trust = trust or ledger_trust(Settings())
    tenancy = tenancy if tenancy is not None else load_tenancy(Settings())
    started = time.monotonic()
    await migrate(database_url)
    pool = await create_pool(database_url, max_size=2)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 * 1024 * 1024, **kafka_options("ledger"))
    await consumer.start()
    records = entries = rejected = 0
    applying: asyncio.Task[JournalPlan] | None = None
    try:
        async with pool.acquire() as connection:
            await drop_projection(connection)
        partition = TopicPartition(journal_topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        # Two batches in flight: PostgreSQL writes one while this process fetches and
        # checks the signatures of the next. Batches still commit one after the other,
        # in journal order (each is awaited before the next one starts).
        while await consumer.position(partition) < end:
            fetched = await consumer.getmany(partition, timeout_ms=FETCH_TIMEOUT_MS,
                                             max_records=REBUILD_BATCH_MAX)
            batch: list[JournalRecord] = []
            sources: dict[int, SourceRecord] = {}
            for n, record in enumerate(fetched.get(partition, [])):
                if record.offset >= end:
                    break
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the batch being written take its next round trip
                parsed = admit_journal(record, trust, tenancy)
                if isinstance(parsed, Refused):
                    continue  # the live projector refused it too (and dead-lettered it)
                batch.append(parsed)
                source = SourceRecord.of(record)
                if source is not None:
                    sources[id(parsed)] = source
            if applying is not None:
                plan = await applying
                entries, rejected = entries + plan.written, rejected + len(plan.rejected)
            applying = asyncio.create_task(apply_journal(pool, batch, sources, tenancy))
            records += len(batch)
            if progress is not None:
                progress(len(batch))  # type: ignore[operator]
        if applying is not None:
            plan = await applying
            entries, rejected = entries + plan.written, rejected + len(plan.rejected)
        async with pool.acquire() as connection:
            head = await connection.fetchval("SELECT entry_hash FROM ledger_chain_head")
    finally:
        if applying is not None and not applying.done():
            applying.cancel()  # failed while a batch was being written: its transaction rolls back
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await applying
        await consumer.stop()
        await pool.close()
    return RebuildReport(records, entries, rejected, str(head), time.monotonic() - started)
