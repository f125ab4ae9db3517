"""Kafka helpers shared by the CLI, the benchmark and tests: topics, producers, lag.

Options are passed explicitly rather than trusted to library defaults: idempotent
producers with acks=all (no duplicate on a producer retry). The services' consumers are
FastStream subscribers configured in `shared/platform/broker.py`.

Every client authenticates as a principal (`shared/platform/credentials.py`): each helper names
the one its callers act as by default, and the broker's ACLs decide what it may do.
Creating topics is the super user's (`admin`) job, like creating ACLs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from shared.platform.credentials import kafka_options
from shared.platform.settings import Settings
from shared.platform.topics import ALL_TOPICS, TopicSpec

ADMIN_TIMEOUT_MS = 10_000
CONNECT_ATTEMPTS_MAX = 60


def topic_config(spec: TopicSpec) -> dict[str, str]:
    """A topic's configuration. The topics that are the source of truth (events, contracts,
    transitions, the journal) keep every record forever: a rebuild replays them from
    offset 0, and a broker default retention of 7 days would silently lose history.
    Every topic's records are stamped by the broker on append (LogAppendTime): a signature
    is judged at the record's time (keys that end: shared/domain/key_lists.py), which a
    producer holding a retired or revoked key must not be able to choose."""
    config = {"cleanup.policy": "compact"} if spec.compacted else {}
    config["message.timestamp.type"] = "LogAppendTime"
    if spec.keep_forever:
        config |= {"retention.ms": "-1", "retention.bytes": "-1"}
    return config


async def ensure_topics(bootstrap: str, topics: tuple[TopicSpec, ...] = ALL_TOPICS, *,
                        settings: Settings | None = None) -> list[str]:
    """Create the topics that do not exist yet (as the super user); the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS,
                                **kafka_options("admin", settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        created: list[str] = []
        for spec in missing:
            try:
                await admin.create_topics(
                    [NewTopic(spec.name, num_partitions=spec.partitions,
                              replication_factor=1, topic_configs=topic_config(spec))],
                    timeout_ms=ADMIN_TIMEOUT_MS,
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        await admin.close()


async def wait_for_broker(bootstrap: str, timeout_s: float = 60.0, *, principal: str = "operator",
                          settings: Settings | None = None) -> None:
    """Return once the broker answers a metadata request, or raise TimeoutError."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    options = kafka_options(principal, settings)
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2_000, **options)
        try:
            await admin.start()
            await admin.list_topics()
            return
        # A broker that has just started may refuse authentication until it has read its
        # metadata (where the SCRAM users live): that is waited out like a closed port.
        except (TimeoutError, KafkaConnectionError, KafkaError, OSError) as error:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"Kafka at {bootstrap} did not answer in {timeout_s}s") from error
            await asyncio.sleep(0.25)
        finally:
            await admin.close()


class MissingTopicsError(RuntimeError):
    """Topics a service reads do not exist (auto-creation is off); the message names them."""


async def wait_for_topics(bootstrap: str, topics: Sequence[str], *, principal: str, settings: Settings | None = None,
                          timeout_s: float = 300.0, waiting: Callable[[list[str]], None] | None = None) -> None:
    """Return once every topic of `topics` exists (as `principal` may describe it), calling
    `waiting` with the missing ones while it waits; raise `MissingTopicsError` naming them
    after `timeout_s`. A tenant's topics (docs/tenancy.md, "Topics per tenant") are made by
    whoever adds the tenant, maybe just after the services restart with the new file."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    told = False
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                                    **kafka_options(principal, settings))
        try:
            await admin.start()
            missing = sorted(set(topics) - set(await admin.list_topics()))
        finally:
            await admin.close()
        if not missing:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise MissingTopicsError(f"{len(missing)} topic(s) do not exist after {timeout_s:g}s: "
                                     f"{', '.join(missing[:10])} (each tenant's topics: `stafet dev up` with "
                                     "TENANTS_FILE, the chart's KafkaTopics; docs/tenancy.md)")
        if waiting is not None and not told:
            waiting(missing)
            told = True
        await asyncio.sleep(2.0)


# Bytes per partition per produce request. aiokafka sends one batch per partition per
# round trip (ordered, idempotent), so with its 16 KiB default a single-partition topic
# such as the ledger journal moved about 20 records per round trip: a few hundred
# records/s, whatever the CPU. Below the broker's default 1 MiB message limit.
PRODUCER_BATCH_BYTES = 256 * 1024


class KeyPartitioner:
    """aiokafka's default partitioner (murmur2 of the key, as the Java clients do, so a
    key lands where any Kafka client would put it), with each key's hash remembered.

    aiokafka's murmur2 is pure Python, about 10 us for a subject pseudonym: the verifier
    and ingest send every record keyed by subject, and a subject's records come in runs.
    A topic with one partition (the ledger journal) needs no hash at all."""

    def __init__(self, keys_max: int = 100_000) -> None:
        self._hashes: dict[bytes, int] = {}
        self._keys_max = keys_max

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if len(all_partitions) == 1:
            return all_partitions[0]
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._keys_max:
                self._hashes.clear()  # bounded; the next keys are hashed again
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def producer_options() -> dict[str, object]:
    """What every producer of ours sends with, the raw ones and FastStream's alike: acks
    from every in-sync replica and idempotence (no duplicate on a retried request), a
    short linger and large batches (see PRODUCER_BATCH_BYTES), each key's partition
    remembered (KeyPartitioner: one instance per producer, it holds a cache)."""
    return {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": PRODUCER_BATCH_BYTES,
        "partitioner": KeyPartitioner(),
    }


def make_producer(bootstrap: str, *, client_id: str, principal: str,
                  settings: Settings | None = None) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        **kafka_options(principal, settings),
        **producer_options(),  # type: ignore[arg-type]
        compression_type=None,
    )


class LagProbe:
    """Consumer-group lag, asked repeatedly over the same two connections (cheap enough
    to poll while measuring throughput without disturbing it)."""

    def __init__(self, bootstrap: str, principal: str = "operator") -> None:
        options = kafka_options(principal)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS,
                                          **options)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)

    async def __aenter__(self) -> LagProbe:
        await self._admin.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def lag(self, group: str, topic: str) -> int:
        from aiokafka import TopicPartition

        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await self._consumer.end_offsets(assigned)
        committed = await self._admin.list_consumer_group_offsets(group, partitions=assigned)
        lag = 0
        for partition in assigned:
            meta = committed.get(partition)
            lag += ends[partition] - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag


async def consumer_lag(bootstrap: str, group: str, topic: str, principal: str = "operator") -> int:
    """Records on `topic` not yet committed by consumer group `group` (one-off)."""
    async with LagProbe(bootstrap, principal) as probe:
        return await probe.lag(group, topic)


COORDINATOR_WAIT_S = 15.0


async def _describe_group(admin: AIOKafkaAdminClient, group: str) -> list[Any]:
    """A group's description, waiting out a coordinator that is still loading (a fresh
    broker, or a group never used)."""
    from aiokafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError

    deadline = asyncio.get_running_loop().time() + COORDINATOR_WAIT_S
    while True:
        try:
            return list(await admin.describe_consumer_groups([group]))
        except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.25)


ACTIVE_GROUP_STATES = frozenset({"Stable", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"})


async def rebuild_refusals(bootstrap: str, topic: str, groups: tuple[str, ...], *, principal: str) -> list[str]:
    """Why a rebuild from `topic` must not run now (empty: it may).

    A rebuild empties a service's tables and replays `topic` from its first offset, so it
    is only right when the topic still holds its whole history (its log starts at offset
    0 on every partition; source-of-truth topics are kept forever, but a broker's
    retention, a deleteRecords call or a restore can have cut it) and when the service is
    not running (no active member in its consumer groups), or the two would interleave.
    """
    from aiokafka import TopicPartition

    options = kafka_options(principal)
    problems: list[str] = []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS, **options)
    try:
        await consumer.start()
        await admin.start()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            problems.append(f"topic {topic} does not exist")
        firsts = await consumer.beginning_offsets([TopicPartition(topic, p) for p in sorted(partitions)])
        cut = {tp.partition: offset for tp, offset in firsts.items() if offset > 0}
        if cut:
            where = ", ".join(f"partition {p} starts at offset {o}" for p, o in sorted(cut.items()))
            problems.append(f"{topic} no longer starts at offset 0 ({where}): a rebuild would lose history")
        for group_name in groups:
            # One group per request: aiokafka 0.14 reads a DescribeGroups v3 answer with the
            # v2 layout, which holds for the last group only (the extra field of the others
            # shifts what follows).
            for response in await _describe_group(admin, group_name):
                for group in response.groups:
                    _, name, state, _, _, members, *_ = group
                    if state in ACTIVE_GROUP_STATES and members:
                        problems.append(f"consumer group {name} has {len(members)} active member(s): "
                                        "stop the service first")
    finally:
        await admin.close()
        await consumer.stop()
    return problems
