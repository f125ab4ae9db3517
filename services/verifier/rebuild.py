"""Rebuild: empty the verifier's store and replay the transitions topic into it.

Contract versions are kept (they came from the contracts topic and files, not from
transitions). The replay runs through the same `process_batch` as the live service; its
outbox is emptied without publishing, because everything it would say was
already said: a rebuild reconstructs state, it does not move money again. `compare`
then checks the rebuilt state against what the live verifier published: the same
outstanding payment ids and the same latest outcome decisions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from services.verifier import store
from services.verifier.authenticity import Refused, admit_transition
from services.verifier.batch import Arrival, process_batch
from services.verifier.streams import StreamCache
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.indicator_outcomes import POPULATION_PREFIX
from shared.domain.events import (
    JOURNAL_RECORD,
    OutcomeRecorded,
    PaymentInstruction,
    PaymentKind,
)
from shared.domain.principals import Principal, Role
from shared.domain.tenancy import Tenancy
from shared.platform.credentials import kafka_options
from shared.platform.db import create_pool, migrate
from shared.platform.settings import Settings
from shared.platform.tenants import load_tenancy
from shared.platform.topics import TRANSITIONS
from shared.platform.trust import TrustedKeys, trusted_keys

REBUILD_BATCH_MAX = 2000
VERIFIER = Principal(Role.SERVICE, "verifier")
FETCH_TIMEOUT_MS = 1000
DRAIN_ROUNDS_MAX = 100_000
_DERIVED_TABLES = ("verifier_events", "verifier_subjects", "verifier_payments", "verifier_outcomes",
                   "verifier_cap_state", "verifier_budget_requests", "verifier_budget_days", "verifier_timers",
                   "verifier_outbox", "verifier_indicator_members", "verifier_indicator_decisions")


@dataclass(frozen=True)
class RebuildReport:
    records: int
    new_events: int
    instructions: int
    seconds: float


async def read_topic(bootstrap: str, topic: str, principal: str = "verifier") -> list[bytes]:
    """Every record's value on every partition of `topic`, up to the end offsets at the start."""
    return [record.value or b"" for record in await read_records(bootstrap, topic, principal)]


async def read_records(bootstrap: str, topic: str, principal: str = "verifier", *,
                       missing_ok: bool = False) -> list[ConsumerRecord[Any, Any]]:
    """Every record (with key and headers) on every partition of `topic`, up to the end
    offsets at the start, read as `principal`; none of a topic that does not exist when
    `missing_ok` (a tenant's topic not made yet)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
                                **kafka_options(principal))
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions and missing_ok:
            return []
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        records: list[ConsumerRecord[Any, Any]] = []
        for partition in assigned:
            while await consumer.position(partition) < ends[partition]:
                fetched = await consumer.getmany(partition, timeout_ms=FETCH_TIMEOUT_MS)
                records.extend(r for r in fetched.get(partition, []) if r.offset < ends[partition])
        return records
    finally:
        await consumer.stop()


async def read_in_broker_order(bootstrap: str, topics: Sequence[str], principal: str = "verifier",
                               ) -> list[ConsumerRecord[Any, Any]]:
    """Every record of `topics` (each read to its end offsets), in the order the broker
    stamped them (LogAppendTime on every topic; within one partition that is its order),
    then by the topic's place in `topics`, partition and offset: the same order on every
    read, however the topics interleaved when read live. Contract versions on the shared
    topic and on each tenant's are merged so (docs/tenancy.md, "Topics per tenant")."""
    found = [(record.timestamp, n, record.partition, record.offset, record) for n, topic in enumerate(topics)
             for record in await read_records(bootstrap, topic, principal, missing_ok=True)]
    return [entry[4] for entry in sorted(found, key=lambda entry: entry[:4])]


async def rebuild_verifier(database_url: str, bootstrap: str, transitions_topic: str,
                           directory: Mapping[str, InstitutionInfo], progress: object | None = None,
                           trust: TrustedKeys | None = None,
                           partition_ids: Sequence[int] = tuple(range(TRANSITIONS.partitions)),
                           principal: str = "verifier") -> RebuildReport:
    """`trust`: whose transitions to believe, as the live verifier does (default: this
    process's settings); a record the live verifier refused is refused again.
    `partition_ids`: the transitions topic's partitions, as the live verifier counts them.
    The replay reads one partition after another: the frontier is the same function of
    the per-partition logs as live, so the same instructions come out. `principal`: who
    reads the topic (`stafet audit` reads as the read-only auditor)."""
    trust = trust or trusted_keys(Settings())
    tenancy = load_tenancy(Settings())  # who may move the clock (docs/tenancy.md), as live
    started = time.monotonic()
    await migrate(database_url)
    pool = await create_pool(database_url, max_size=2)
    try:
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(f"TRUNCATE {', '.join(_DERIVED_TABLES)}")
            await connection.execute("DELETE FROM verifier_clocks")
            await connection.execute("UPDATE verifier_frontier SET final_through = $1, watermark = $1", store.EPOCH)
            book = ContractBook.of(await store.load_contracts(connection))
        records = await read_records(bootstrap, transitions_topic, principal)
        new_events = instructions = 0
        streams = StreamCache()  # after the TRUNCATE: it knows only what this replay writes
        for first in range(0, len(records), REBUILD_BATCH_MAX):
            arrivals = _parse(records[first:first + REBUILD_BATCH_MAX], trust, tenancy)
            result = await process_batch(pool, book, [], directory, streams=streams, arrivals=arrivals,
                                         partition_ids=partition_ids)
            new_events += result.new_events
            instructions += result.instructions
            if progress is not None:
                progress(len(arrivals))  # type: ignore[operator]
        for _ in range(DRAIN_ROUNDS_MAX):
            result = await process_batch(pool, book, [], directory, streams=streams, arrivals=[],
                                         partition_ids=partition_ids)
            instructions += result.instructions
            if result.timers_still_due == 0:
                break
        async with pool.acquire() as connection:
            await connection.execute("DELETE FROM verifier_outbox")
    finally:
        await pool.close()
    return RebuildReport(len(records), new_events, instructions, time.monotonic() - started)


def _parse(records: list[ConsumerRecord[Any, Any]], trust: TrustedKeys,
           tenancy: Tenancy | None = None) -> list[Arrival]:
    """Facts and watermarks with their partitions, in each partition's order (as read)."""
    arrivals: list[Arrival] = []
    for record in records:
        parsed = admit_transition(record, trust, tenancy)
        if isinstance(parsed, Refused):
            continue  # the live verifier refused it too (and dead-lettered it)
        arrivals.append((record.partition, parsed))
    return arrivals


def outstanding(instructions: list[PaymentInstruction]) -> set[str]:
    """Payment ids instructed and not clawed back; for an indicator outcome (its subject a
    population) the net per payee instead, as `net:<outcome>|<payee>=<amount>`.

    An indicator outcome re-decided after its review moves by top-ups, and a replay in
    other batches may reach the same final amount in fewer steps: other ids, the same
    net. Ids are compared wherever they are a pure function of the facts, nets where
    they are not."""
    reversed_ids = {i.reverses_payment_id for i in instructions if i.kind == PaymentKind.CLAWBACK}
    measured = {i.payment_id: i for i in instructions if i.subject.startswith(POPULATION_PREFIX)}
    nets: dict[str, int] = {}
    for i in measured.values():
        key = f"net:{i.contract_id}|{i.outcome_id}|{i.payee}|{i.payee_role}"
        nets[key] = nets.get(key, 0) + (i.amount_minor if i.kind == PaymentKind.PAYMENT else -i.amount_minor)
    return ({i.payment_id for i in instructions if i.kind == PaymentKind.PAYMENT and i.payment_id not in measured}
            - reversed_ids) | {f"{key}={amount}" for key, amount in nets.items() if amount}


@dataclass(frozen=True)
class Comparison:
    outstanding_published: int
    outstanding_rebuilt: int
    payments_only_published: tuple[str, ...]
    payments_only_rebuilt: tuple[str, ...]
    outcomes_differing: tuple[str, ...]

    @property
    def same(self) -> bool:
        return not (self.payments_only_published or self.payments_only_rebuilt or self.outcomes_differing)


async def compare(database_url: str, bootstrap: str, payments_topic: str, outcomes_topic: str,
                  trust: TrustedKeys | None = None) -> Comparison:
    """What the live verifier published (records its key signed: a forgery on either topic
    is not the verifier's word) against the rebuilt store."""
    trust = trust or trusted_keys(Settings())
    published = [r for r in (_journal(record.value or b"") for record in await read_records(bootstrap, payments_topic)
                             if _by_verifier(record, trust))
                 if isinstance(r, PaymentInstruction)]
    latest: dict[str, tuple[str, str | None, int]] = {}
    for outcome in await read_records(bootstrap, outcomes_topic):
        if not _by_verifier(outcome, trust):
            continue
        recorded = OutcomeRecorded.model_validate_json(outcome.value or b"")
        latest[recorded.outcome_key] = (recorded.status.value, recorded.reason, recorded.owed_minor)
    connection = await asyncpg.connect(database_url)
    try:
        rebuilt = [PaymentInstruction.model_validate_json(r["instruction"])
                   for r in await connection.fetch("SELECT instruction FROM verifier_payments")]
        decided = {r["outcome_key"]: (r["status"], r["reason"], int(r["owed_minor"]))
                   for r in await connection.fetch("SELECT outcome_key, status, reason, owed_minor FROM verifier_outcomes")}
    finally:
        await connection.close()
    live, again = outstanding(published), outstanding(rebuilt)
    # An outcome the live verifier recorded and later withdrew never exists in a rebuild.
    withdrawn = {k for k, v in latest.items() if v[:2] == ("rejected", "evidence_withdrawn")}
    differing = sorted(k for k in (set(latest) | set(decided)) - (withdrawn - set(decided))
                       if latest.get(k) != decided.get(k))
    return Comparison(len(live), len(again), tuple(sorted(live - again)), tuple(sorted(again - live)),
                      tuple(differing))


def _by_verifier(record: ConsumerRecord[Any, Any], trust: TrustedKeys) -> bool:
    return trust.authenticate_record(record) == VERIFIER


def _journal(value: bytes) -> object:
    try:
        return JOURNAL_RECORD.validate_json(value)
    except ValidationError:
        return None
