"""Kafka helpers shared by the CLI, the benchmark and tests: topics, producers, lag.

Options are passed explicitly rather than trusted to library defaults: idempotent
producers with acks=all (no duplicate on a producer retry). The services' consumers are
FastStream subscribers configured in `shared/broker.py`.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from shared.topics import ALL_TOPICS, TopicSpec

ADMIN_TIMEOUT_MS = 10_000
CONNECT_ATTEMPTS_MAX = 60


async def ensure_topics(bootstrap: str, topics: tuple[TopicSpec, ...] = ALL_TOPICS) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        created: list[str] = []
        for spec in missing:
            config = {"cleanup.policy": "compact"} if spec.compacted else {}
            try:
                await admin.create_topics(
                    [NewTopic(spec.name, num_partitions=spec.partitions,
                              replication_factor=1, topic_configs=config)],
                    timeout_ms=ADMIN_TIMEOUT_MS,
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        await admin.close()


async def wait_for_broker(bootstrap: str, timeout_s: float = 60.0) -> None:
    """Return once the broker answers a metadata request, or raise TimeoutError."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (TimeoutError, KafkaConnectionError, OSError) as error:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"Kafka at {bootstrap} did not answer in {timeout_s}s") from error
            await asyncio.sleep(0.25)
        finally:
            await admin.close()


def make_producer(bootstrap: str, *, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
    )


class LagProbe:
    """Consumer-group lag, asked repeatedly over the same two connections (cheap enough
    to poll while measuring throughput without disturbing it)."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

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


async def consumer_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records on `topic` not yet committed by consumer group `group` (one-off)."""
    async with LagProbe(bootstrap) as probe:
        return await probe.lag(group, topic)
