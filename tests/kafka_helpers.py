"""Small, explicit Kafka helpers for tests: produce records, read a topic to its end."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import make_producer


async def produce(bootstrap: str, topic: str, values: Sequence[bytes],
                  keys: Sequence[bytes | None] | None = None) -> None:
    producer = make_producer(bootstrap, client_id="test-producer")
    await producer.start()
    try:
        sends = [await producer.send(topic, value, key=(keys[i] if keys else None))
                 for i, value in enumerate(values)]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[tuple[bytes | None, bytes]]:
    """Every record on the topic right now (key, value), reading up to the end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(
            consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[bytes | None, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend((r.key, r.value or b"") for r in items)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()
