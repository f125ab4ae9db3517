"""Small, explicit Kafka helpers for tests: produce records, read a topic to its end, and
know that a pipeline has settled from committed offsets instead of sleeping.

`produce` writes as the principal that may write the topic in a real installation
(institution events as an institution system, transitions as ingest, the journal as the
verifier, settlements as finance, contracts as an operator), so tests exercise the same
ACLs as production. `read_all` inspects as the broker's super user: the tests' view of
what is on a topic, which no component has.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from services.verifier.store import work_left_at
from shared.domain.events import ClockTick
from shared.domain.signing import RecordSigner
from shared.platform.credentials import kafka_options
from shared.platform.kafka import LagProbe, make_producer
from shared.platform.processes import ServiceProcess
from shared.platform.topics import INSTITUTION_EVENTS, PAYMENTS, SETTLEMENTS, TRANSITIONS, in_namespace
from shared.platform.trust import DEVELOPMENT_OPERATOR, development_writer

# Each stage: its consumer group (after the namespace) and its input topic.
STAGE_INPUTS = {"ingest": ("ingest", INSTITUTION_EVENTS), "verifier": ("verifier", TRANSITIONS),
                "ledger-settlements": ("ledger-settlements", SETTLEMENTS), "ledger": ("ledger", PAYMENTS)}
STAGES = ("ingest", "verifier", "ledger-settlements", "ledger")
SETTLE_POLL_S = 0.25

WRITER = {"institution-events": "institution", "transitions": "ingest", "contracts": "operator",
          "payments": "verifier", "settlements": "finance", "outcomes": "verifier", "dead-letters": "ingest",
          "investments": "investor", "disputes": "frontdoor"}


def connects_as(topic: str) -> str:
    """The broker principal that writes `topic` (`<namespace>.<name>.v<n>`) in an installation;
    a tenant's own topic (`<namespace>.<name>.<segment>.v<n>`) its tenant's login."""
    parts = topic.split(".")
    if len(parts) == 4:
        return f"tenant-{parts[2]}-{WRITER[parts[1]]}"
    return WRITER[parts[1]]


AS_ITS_WRITER = "as its writer"


def signer_of(topic: str, value: bytes) -> str:
    """Whose development key signs `value` on `topic` by default (`shared/platform/trust.py`)."""
    return development_writer(topic, value)


async def produce(bootstrap: str, topic: str, values: Sequence[bytes],
                  keys: Sequence[bytes | None] | None = None, signed_as: str | None = AS_ITS_WRITER, *,
                  principal: str | None = None,
                  copied_headers: Sequence[list[tuple[str, bytes]]] | None = None) -> None:
    """Produce records signed as their topic's writer would sign them (the default), as
    `signed_as` (a principal whose development key signs), or unsigned (None), or with
    `copied_headers` (another record's signature headers, as a forger would copy them);
    connected to the broker as `principal` (by default the topic's writer)."""
    producer = make_producer(bootstrap, client_id="test-producer", principal=principal or connects_as(topic))
    await producer.start()
    try:
        sends = []
        for i, value in enumerate(values):
            key = keys[i] if keys else None
            signer = signer_of(topic, value) if signed_as == AS_ITS_WRITER else signed_as
            headers = RecordSigner.development(signer).headers(topic, key, value) if signer else None
            if copied_headers is not None:
                headers = copied_headers[i]
            sends.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[tuple[bytes | None, bytes]]:
    """Every record on the topic right now (key, value), reading up to the end offsets."""
    return [(r.key, r.value or b"") for r in await read_records(bootstrap, topic, timeout_s)]


async def read_records(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on the topic right now, headers and all, reading up to the end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **kafka_options("admin"))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(
            consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while [p for p in partitions if await consumer.position(p) < ends[p]]:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(items)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def settled(bootstrap: str, namespace: str, database_url: str, stages: Sequence[str] = STAGES) -> bool:
    """True when every stage has committed offsets at the end of its input topic and the
    verifier has nothing left to publish, checked in pipeline order: what a stage
    produces is complete before the next stage's input is measured, so once this holds,
    nothing more arrives anywhere (no waiting "long enough")."""
    try:
        async with LagProbe(bootstrap) as probe:
            for stage in stages:
                group, topic = STAGE_INPUTS[stage]
                if await probe.lag(f"{namespace}-{group}", in_namespace(topic, namespace).name) != 0:
                    return False
                if stage == "verifier" and await work_left_at(database_url) != 0:
                    return False
    except KafkaError:
        return False  # a fresh group's coordinator may not answer yet
    return True


# The watermarks the tests publish: past every fact the tests use (and its review window),
# one day later each time, so that facts published after one are corrections that the
# next decides (docs/contracts.md, "Finality").
WATERMARK_FIRST = dt.date(2100, 1, 1)  # tests/engine_replay.py decides as of it too
_watermarks: dict[str, dt.date] = {}


def next_watermark(namespace: str) -> dt.date:
    day = _watermarks.get(namespace, WATERMARK_FIRST - dt.timedelta(days=1)) + dt.timedelta(days=1)
    _watermarks[namespace] = day
    return day


async def publish_watermark(bootstrap: str, topic: str, day: dt.date) -> None:
    """A watermark on every partition of the transitions topic, signed and sent as an
    operator's `stafet clock` sends it: each partition reads it after the facts before it."""
    producer = make_producer(bootstrap, client_id="test-clock", principal="operator")
    await producer.start()
    try:
        value = ClockTick(today=day).model_dump_json().encode()
        headers = RecordSigner.development(DEVELOPMENT_OPERATOR).headers(topic, b"clock", value)
        await asyncio.gather(*[await producer.send(topic, value, key=b"clock", headers=headers, partition=p)
                               for p in sorted(await producer.partitions_for(topic))])
    finally:
        await producer.stop()


async def wait_settled(bootstrap: str, namespace: str, database_url: str, services: Sequence[ServiceProcess],
                       timeout_s: float, stages: Sequence[str] = STAGES, watermark: bool = True) -> None:
    """Wait until every stage has done its input. With `watermark` (and the verifier among
    the stages), once the stages before the verifier are done the operator's clock says
    that every fact is in: the next watermark, on every transitions partition."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    if watermark and "verifier" in stages:
        before = tuple(stages[:stages.index("verifier")])
        while before and not await settled(bootstrap, namespace, database_url, before):
            dead = [s.name for s in services if not s.running()]
            assert not dead, f"service(s) {dead} stopped"
            assert asyncio.get_running_loop().time() < deadline, f"not settled after {timeout_s}s"
            await asyncio.sleep(SETTLE_POLL_S)
        await publish_watermark(bootstrap, in_namespace(TRANSITIONS, namespace).name, next_watermark(namespace))
    while not await settled(bootstrap, namespace, database_url, stages):
        dead = [s.name for s in services if not s.running()]
        assert not dead, f"service(s) {dead} stopped"
        assert asyncio.get_running_loop().time() < deadline, f"not settled after {timeout_s}s"
        await asyncio.sleep(SETTLE_POLL_S)
